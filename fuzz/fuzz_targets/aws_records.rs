//! The records the tool keeps on AWS, which anyone with access may have edited: the run
//! record and the lease (SSM parameters), the done and restore marks (ECS attributes,
//! Auto Scaling tags). Each parses or is refused, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use privlink_restart::cutover::prior::RunRecord;
use privlink_restart::journal::marks::{DoneMark, GroupOwed, InstanceOwed};
use privlink_restart::lease::LeaseRecord;

fuzz_target!(|text: &str| {
    let _ = RunRecord::parse(text);
    if let Some(lease) = LeaseRecord::parse(text) {
        let _ = lease.breakable_at();
    }
    let _ = DoneMark::parse(text);
    let _ = InstanceOwed::parse(text);
    let _ = GroupOwed::parse(text);
});
