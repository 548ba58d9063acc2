//! The restart command's output and its evidence line: evidence or an error, never a
//! panic; evidence is judged without panicking either way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use privlink_restart::rollout::script::parse_evidence;
use privlink_restart::rollout::state::judge;

fuzz_target!(|text: &str| {
    if let Ok(evidence) = parse_evidence(text) {
        let _ = judge(&evidence, true);
        let _ = judge(&evidence, false);
    }
});
