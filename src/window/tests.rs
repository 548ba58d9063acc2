//! Windows as tables: across midnight, across daylight-saving changes in both
//! directions, several windows, and specs that do not parse.

use super::*;

fn at(raw: &str) -> Timestamp {
    raw.parse().unwrap_or_else(|e| panic!("{raw}: {e}"))
}

fn window(spec: &str) -> Window {
    Window::parse(spec).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn contains_and_closes_at_table() {
    // 2026-11-27 is a Friday.
    let cases = [
        ("Sat,Sun 02:00-05:00 UTC", "2026-11-28T01:59:59Z", None),
        (
            "Sat,Sun 02:00-05:00 UTC",
            "2026-11-28T02:00:00Z",
            Some("2026-11-28T05:00:00Z"),
        ),
        ("Sat,Sun 02:00-05:00 UTC", "2026-11-28T05:00:00Z", None),
        ("Sat,Sun 02:00-05:00 UTC", "2026-11-27T03:00:00Z", None),
        // Across midnight: belongs to the day it starts.
        (
            "Mon-Fri 22:00-06:00 UTC",
            "2026-11-27T23:00:00Z",
            Some("2026-11-28T06:00:00Z"),
        ),
        (
            "Mon-Fri 22:00-06:00 UTC",
            "2026-11-28T05:59:00Z",
            Some("2026-11-28T06:00:00Z"),
        ),
        ("Mon-Fri 22:00-06:00 UTC", "2026-11-28T23:00:00Z", None),
        ("Mon-Fri 22:00-06:00 UTC", "2026-11-30T03:00:00Z", None),
        // Local time: Berlin is UTC+1 in November.
        (
            "Fri 22:00-24:00 Europe/Berlin",
            "2026-11-27T21:30:00Z",
            Some("2026-11-27T23:00:00Z"),
        ),
        (
            "Fri 22:00-24:00 Europe/Berlin",
            "2026-11-27T20:59:00Z",
            None,
        ),
        // Wrapping day ranges.
        (
            "Fri-Mon 01:00-02:00 UTC",
            "2026-11-30T01:30:00Z",
            Some("2026-11-30T02:00:00Z"),
        ),
        ("Fri-Mon 01:00-02:00 UTC", "2026-12-01T01:30:00Z", None),
    ];
    for (spec, now, closes) in cases {
        let w = window(spec);
        assert_eq!(w.closes_at(at(now)), closes.map(at), "{spec} at {now}");
        assert_eq!(w.contains(at(now)), closes.is_some(), "{spec} at {now}");
    }
}

#[test]
fn next_open_table() {
    let cases = [
        (
            "Sat,Sun 02:00-05:00 Europe/Berlin",
            "2026-11-27T12:00:00Z",
            "2026-11-28T01:00:00Z",
        ),
        (
            "Sat,Sun 02:00-05:00 Europe/Berlin",
            "2026-11-28T02:00:00Z",
            "2026-11-28T02:00:00Z",
        ),
        (
            "Sat,Sun 02:00-05:00 Europe/Berlin",
            "2026-11-29T05:00:00Z",
            "2026-12-05T01:00:00Z",
        ),
        (
            "Mon-Fri 22:00-06:00 UTC",
            "2026-11-28T10:00:00Z",
            "2026-11-30T22:00:00Z",
        ),
    ];
    for (spec, now, opens) in cases {
        assert_eq!(
            window(spec).next_open(at(now)),
            Some(at(opens)),
            "{spec} at {now}"
        );
    }
}

#[test]
fn daylight_saving_changes_lengthen_and_shorten_the_night() {
    // Berlin: 2026-03-29 02:00 → 03:00 (an hour is skipped), 2026-10-25 03:00 → 02:00 (an
    // hour is repeated). The same local range lasts 2 h and 4 h on those nights.
    let w = window("Sun 01:00-04:00 Europe/Berlin");
    let spring = w.closes_at(at("2026-03-29T00:00:00Z")).unwrap();
    assert_eq!(spring, at("2026-03-29T02:00:00Z"));
    assert_eq!(
        w.next_open(at("2026-03-28T12:00:00Z")),
        Some(at("2026-03-29T00:00:00Z"))
    );
    let autumn_open = w.next_open(at("2026-10-24T12:00:00Z")).unwrap();
    assert_eq!(autumn_open, at("2026-10-24T23:00:00Z"));
    assert_eq!(w.closes_at(autumn_open), Some(at("2026-10-25T03:00:00Z")));
    // A window that starts in the skipped hour opens later by the gap: 02:30 does not
    // exist that night, it opens at 03:30 CEST.
    let skipped = window("Sun 02:30-05:00 Europe/Berlin");
    assert_eq!(
        skipped.next_open(at("2026-03-28T12:00:00Z")),
        Some(at("2026-03-29T01:30:00Z"))
    );
    // New York, the other way round in the same year.
    let ny = window("Sun 00:30-03:00 America/New_York");
    let open = ny.next_open(at("2026-11-01T00:00:00Z")).unwrap();
    assert_eq!(open, at("2026-11-01T04:30:00Z"));
    assert_eq!(ny.closes_at(open), Some(at("2026-11-01T08:00:00Z")));
}

#[test]
fn several_windows_make_one_schedule() {
    let schedule = Schedule {
        windows: vec![
            window("Sat 22:00-24:00 UTC"),
            window("Sun 00:00-04:00 UTC"),
            window("Wed 12:00-13:00 UTC"),
        ],
    };
    // Touching windows are one stretch: Saturday 22:00 to Sunday 04:00.
    assert_eq!(
        schedule.closes_at(at("2026-11-28T23:00:00Z")),
        Some(at("2026-11-29T04:00:00Z"))
    );
    assert_eq!(
        schedule.next_open(at("2026-11-29T05:00:00Z")),
        Some(at("2026-12-02T12:00:00Z"))
    );
    assert!(!schedule.contains(at("2026-11-29T05:00:00Z")));
    let always = Schedule::default();
    assert!(always.contains(at("2026-11-29T05:00:00Z")));
    assert_eq!(always.closes_at(at("2026-11-29T05:00:00Z")), None);
    // Windows that cover the whole week never close: the answer is at least a week away
    // (and comes at once, not after following the stretch to the year 9999).
    let week = Schedule {
        windows: vec![
            window("Mon-Sun 00:00-12:00 UTC"),
            window("Mon-Sun 12:00-24:00 UTC"),
        ],
    };
    let close = week.closes_at(at("2026-11-29T05:00:00Z")).unwrap();
    assert!(close >= at("2026-12-06T05:00:00Z"), "{close}");
    assert_eq!(
        may_start(
            &week,
            None,
            at("2026-11-29T05:00:00Z"),
            std::time::Duration::from_secs(3600)
        ),
        Start::Go
    );
}

#[test]
fn invalid_specs_point_at_the_offending_part() {
    let cases = [
        ("Sat,Sun 02:00-05:00", "Sat,Sun 02:00-05:00"),
        ("Sat,Sonday 02:00-05:00 UTC", "Sonday"),
        ("Mon-Fro 02:00-05:00 UTC", "Fro"),
        ("Sat 2:00-05:00 UTC", "2:00"),
        ("Sat +1:00-05:00 UTC", "+1:00"),
        ("Sat 02:00-25:00 UTC", "25:00"),
        ("Sat 02:00 UTC", "02:00"),
        ("Sat 02:00-02:00 UTC", "02:00-02:00"),
        ("Sat 02:00-05:00 Europe/Berlinn", "Europe/Berlinn"),
    ];
    for (spec, part) in cases {
        let error = Window::parse(spec).unwrap_err();
        assert_eq!(error.part, part, "{spec}: {error}");
        assert!(error.to_string().contains(&format!("{part:?}")), "{error}");
    }
}

#[test]
fn deadlines_are_times_or_durations_from_now() {
    let now = at("2026-11-27T10:00:00Z");
    assert_eq!(
        parse_deadline("2026-12-01T06:00Z", now),
        Ok(at("2026-12-01T06:00:00Z"))
    );
    assert_eq!(
        parse_deadline("2026-12-01T07:00:00+01:00", now),
        Ok(at("2026-12-01T06:00:00Z"))
    );
    assert_eq!(parse_deadline("90m", now), Ok(at("2026-11-27T11:30:00Z")));
    let error = parse_deadline("tomorrow", now).unwrap_err();
    assert!(error.contains("\"tomorrow\""), "{error}");
}

#[test]
fn a_step_starts_only_if_it_ends_inside_the_window_and_before_the_deadline() {
    use std::time::Duration;
    let schedule = Schedule {
        windows: vec![window("Sat,Sun 02:00-05:00 UTC")],
    };
    let minutes = |m: u64| Duration::from_secs(m * 60);
    // Inside, with room.
    assert_eq!(
        may_start(&schedule, None, at("2026-11-28T02:00:00Z"), minutes(20)),
        Start::Go
    );
    // Inside, but a 20-minute reboot would end after 05:00: stop, resume Sunday 02:00.
    match may_start(&schedule, None, at("2026-11-28T04:45:00Z"), minutes(20)) {
        Start::Stop { why, resumes_at } => {
            assert!(why.contains("window closes"), "{why}");
            assert_eq!(resumes_at, Some(at("2026-11-29T02:00:00Z")));
        }
        other => panic!("{other:?}"),
    }
    // Outside: wait for the next opening.
    assert_eq!(
        may_start(&schedule, None, at("2026-11-27T12:00:00Z"), minutes(1)),
        Start::WaitUntil(at("2026-11-28T02:00:00Z"))
    );
    // The deadline comes first, window or not.
    let deadline = Some(at("2026-11-28T02:10:00Z"));
    assert!(matches!(
        may_start(&schedule, deadline, at("2026-11-28T02:00:00Z"), minutes(20)),
        Start::Stop {
            resumes_at: None,
            ..
        }
    ));
    assert_eq!(
        may_start(
            &Schedule::default(),
            deadline,
            at("2026-11-28T02:00:00Z"),
            minutes(5)
        ),
        Start::Go
    );
    // Too late in Saturday's window, and Sunday's opens after the deadline: stop, with no
    // window to resume in.
    let sunday_deadline = Some(at("2026-11-29T01:00:00Z"));
    match may_start(
        &schedule,
        sunday_deadline,
        at("2026-11-28T04:45:00Z"),
        minutes(20),
    ) {
        Start::Stop { resumes_at, .. } => assert_eq!(resumes_at, None),
        other => panic!("{other:?}"),
    }
    // Outside, and the next window opens after the deadline: no point waiting.
    match may_start(&schedule, deadline, at("2026-11-27T12:00:00Z"), minutes(15)) {
        Start::Stop { why, resumes_at } => {
            assert!(why.contains("too late"), "{why}");
            assert_eq!(resumes_at, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn times_are_shown_in_the_zone_of_the_window_that_opens() {
    let schedule = Schedule {
        windows: vec![
            window("Sat 02:00-05:00 Europe/Berlin"),
            window("Tue 22:00-23:00 America/New_York"),
        ],
    };
    let saturday = schedule.next_open(at("2026-11-27T12:00:00Z")).unwrap();
    assert_eq!(schedule.local(saturday), "Sat 2026-11-28 02:00 CET");
    let tuesday = schedule.next_open(at("2026-11-30T12:00:00Z")).unwrap();
    assert_eq!(schedule.local(tuesday), "Tue 2026-12-01 22:00 EST");
    // Summer time in Berlin.
    assert_eq!(
        schedule.local(at("2026-07-04T00:00:00Z")),
        "Sat 2026-07-04 02:00 CEST"
    );
    assert_eq!(
        Schedule::default().local(at("2026-11-28T01:00:00Z")),
        "Sat 2026-11-28 01:00 UTC"
    );
}
