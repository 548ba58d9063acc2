//! Agent versions as ECS reports them: a version read is the one its canonical form reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use privlink_restart::preflight::parse_agent_version;

fuzz_target!(|text: &str| {
    if let Some((major, minor, patch)) = parse_agent_version(text) {
        assert_eq!(
            parse_agent_version(&format!("{major}.{minor}.{patch}")),
            Some((major, minor, patch)),
            "{text:?}"
        );
    }
});
