//! `--window` specs and `--deadline` values: whatever the text, parsing does not panic,
//! and a window that parses answers consistently: when it next opens it is open, and an
//! open window closes later than now.
#![no_main]

use jiff::{SignedDuration, Timestamp};
use libfuzzer_sys::fuzz_target;
use privlink_restart::window::{parse_deadline, Window};

fuzz_target!(|input: (u32, &str)| {
    let (offset, text) = input;
    // Any second within about 136 years of 2027-01-15.
    let Ok(at) = Timestamp::from_second(1_800_000_000 + i64::from(offset)) else {
        return;
    };
    let _ = parse_deadline(text, at);
    let Ok(window) = Window::parse(text) else {
        return;
    };
    for hours in [0, 1, 7, 25, 24 * 7 + 3] {
        let Ok(at) = at.checked_add(SignedDuration::from_hours(hours)) else {
            continue;
        };
        if let Some(closes) = window.closes_at(at) {
            assert!(closes > at, "{text:?} at {at}: open, closing at {closes}");
        }
        if let Some(opens) = window.next_open(at) {
            assert!(
                opens >= at,
                "{text:?} at {at}: next opens at {opens}, before"
            );
            assert!(
                window.contains(opens),
                "{text:?} at {at}: next opens at {opens}, but is not open then"
            );
        }
    }
});
