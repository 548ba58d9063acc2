//! The path probe's output (what SSM returns from the instance, up to 24,000 characters):
//! a record or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use privlink_restart::verify::record::ProbeRecord;

fuzz_target!(|text: &str| {
    if let Ok(record) = ProbeRecord::parse(text) {
        // What a verdict reads of it.
        let _ = format!("{record:?}");
    }
});
