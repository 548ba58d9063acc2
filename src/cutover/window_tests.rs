//! The cutover inside maintenance windows, on `SimFleet` in virtual time: it waits for a
//! window, stops before a step that would not end in time, and the next run (`--resume`)
//! finishes in the next window.

use std::time::{Duration, SystemTime};

use super::tests::{cutover, Recorder};
use super::*;
use crate::clock::SimClock;
use crate::fleet::sim::{Latencies, SimFleet, SimInstance};
use crate::rollout::waves::{MaxUnavailable, WavePolicy};
use crate::window::{Schedule, TimeLimits, Window};

/// Friday 2027-01-15 08:00 UTC.
const START: i64 = 1_800_000_000;
const FRIDAY: &str = "Fri 08:05-08:09 UTC";
const SATURDAY: &str = "Sat 08:00-09:00 UTC";

fn sim(n: usize) -> SimFleet {
    let instances = (0..n)
        .map(|i| SimInstance::healthy(format!("i-{i:03}"), ["eu-west-1a", "eu-west-1b"][i % 2]))
        .collect();
    SimFleet::new(
        instances,
        Latencies::default(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(START as u64),
    )
    .with_max_unavailable(2)
}

fn limits(windows: &[&str]) -> TimeLimits {
    TimeLimits {
        schedule: Schedule {
            windows: windows.iter().map(|w| Window::parse(w).unwrap()).collect(),
        },
        deadline: None,
    }
}

fn plan(store: &JournalStore, limits: TimeLimits) -> CutoverPlan {
    let mut plan = cutover(OutputFormat::Json);
    plan.assume_yes = true;
    plan.rollout.waves = WavePolicy {
        max_unavailable: MaxUnavailable::Count(2),
        canary: 1,
        by_az: false,
    };
    plan.rollout.limits = limits;
    plan.durability.journal = Some(store.clone());
    plan
}

/// Each JSON event line's kind, time and instance (if any).
fn events(out: &str) -> Vec<(String, i64, String)> {
    out.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["kind"] == "event")
        .map(|v| {
            (
                v["event"].as_str().unwrap_or_default().to_string(),
                v["at"].as_i64().unwrap_or_default(),
                v["instance_id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn inside(limits: &TimeLimits, at: i64) -> bool {
    limits
        .schedule
        .contains(jiff::Timestamp::from_second(at).unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_rollout_needing_two_windows_finishes_in_two_runs_with_resume() {
    let sim = sim(40);
    let dir = tempfile::tempdir().unwrap();
    let store = JournalStore::new(dir.path().join("state"));
    let clock = SimClock::starting_at(SystemTime::UNIX_EPOCH + Duration::from_secs(START as u64));
    let windows = limits(&[FRIDAY, SATURDAY]);

    // Friday 08:00: the run waits five minutes, works until its steps no longer fit
    // before 08:09, and stops.
    let mut first = Recorder::default();
    let code = run(
        &sim,
        &clock,
        &plan(&store, windows.clone()),
        &mut first,
        &StopSignal::default(),
    )
    .await
    .unwrap();
    assert_eq!(code, exit::STOPPED, "{}", first.err);
    assert!(
        first.err.contains(
            "Waiting for the maintenance window: it opens at Fri 2027-01-15 08:05 UTC (in 5m)"
        ),
        "{}",
        first.err
    );
    assert!(
        first
            .err
            .contains("It resumes at the next window: Sat 2027-01-16 08:00 UTC."),
        "{}",
        first.err
    );
    assert!(
        first.err.contains(&format!(
            "--cluster sim --resume --window '{FRIDAY}' --window '{SATURDAY}'"
        )),
        "{}",
        first.err
    );
    let summary = first.out.lines().last().unwrap();
    assert!(
        summary.contains("\"resumes_at\":\"2027-01-16T08:00:00Z\""),
        "{summary}"
    );
    let done_first = (0..40)
        .filter(|i| sim.restarts_sent(&format!("i-{i:03}")) == 1)
        .count();
    assert!(done_first > 1 && done_first < 40, "{done_first}");

    // The operator resumes after Friday's window: the run waits for Saturday and
    // finishes.
    let friday_closed = START + 12 * 60 - crate::clock::unix_seconds(clock.now());
    tokio::time::sleep(Duration::from_secs(friday_closed as u64)).await;
    let mut resume = plan(&store, windows.clone());
    resume.durability.resume = true;
    let mut second = Recorder::default();
    let code = run(&sim, &clock, &resume, &mut second, &StopSignal::default())
        .await
        .unwrap();
    assert_eq!(code, exit::OK, "{}", second.err);
    // A day's wait that nobody watches on a terminal says it is alive every 30 minutes.
    let notes = second
        .err
        .matches("Still waiting: the window opens at Sat 2027-01-16 08:00 UTC, in ")
        .count();
    assert!((40..=48).contains(&notes), "{notes} notes in a 23h48m wait");
    assert!(
        second.err.contains("Waiting for the maintenance window"),
        "{}",
        second.err
    );
    for i in 0..40 {
        assert_eq!(sim.restarts_sent(&format!("i-{i:03}")), 1, "i-{i:03}");
    }
    // Every wave began, and every state changed, inside a window.
    for (kind, at, id) in events(&first.out).into_iter().chain(events(&second.out)) {
        assert!(
            inside(&windows, at),
            "{kind} {id} at {at} is outside the windows"
        );
    }
}

/// A run on four instances on Friday (START) with only Saturday's window, its plan
/// `adjust`ed, and what came of it.
struct Outside {
    sim: SimFleet,
    store: JournalStore,
    _dir: tempfile::TempDir,
    code: i32,
    console: Recorder,
    /// Virtual time the run took.
    took: Duration,
}

async fn outside_the_window(adjust: impl FnOnce(&mut CutoverPlan)) -> Outside {
    let sim = sim(4);
    let dir = tempfile::tempdir().unwrap();
    let store = JournalStore::new(dir.path().join("state"));
    let clock = SimClock::starting_at(SystemTime::UNIX_EPOCH + Duration::from_secs(START as u64));
    let mut plan = plan(&store, limits(&[SATURDAY]));
    adjust(&mut plan);
    let mut console = Recorder::default();
    let began = tokio::time::Instant::now();
    let code = run(&sim, &clock, &plan, &mut console, &StopSignal::default())
        .await
        .unwrap();
    Outside {
        sim,
        store,
        _dir: dir,
        code,
        console,
        took: began.elapsed(),
    }
}

#[tokio::test(start_paused = true)]
async fn no_wait_outside_a_window_exits_3_and_touches_nothing() {
    let Outside {
        sim,
        store,
        code,
        console,
        took,
        ..
    } = outside_the_window(|plan| plan.no_wait = true).await;
    assert_eq!(code, exit::STOPPED);
    assert!(
        console.err.contains(
            "Not started: outside the maintenance windows; the next opens at Sat 2027-01-16 08:00 UTC (in 1d). Nothing was changed."
        ),
        "{}",
        console.err
    );
    assert!(took < Duration::from_secs(60), "it did not wait");
    assert_no_changes(&sim, &store);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_before_the_next_window_starts_nothing() {
    let Outside {
        sim,
        store,
        code,
        console,
        ..
    } = outside_the_window(|plan| {
        plan.rollout.limits.deadline = Some(jiff::Timestamp::from_second(START + 3600).unwrap());
    })
    .await;
    assert_eq!(code, exit::STOPPED);
    assert!(
        console
            .err
            .contains("after the deadline 2027-01-15T09:00:00Z"),
        "{}",
        console.err
    );
    assert_no_changes(&sim, &store);
}

/// Nothing reached AWS, not even a read, and no journal was written.
fn assert_no_changes(sim: &SimFleet, store: &JournalStore) {
    let requests = sim.request_counts();
    assert!(requests.is_empty(), "{requests:?}");
    assert!(sim.sent_commands().is_empty(), "no restart was sent");
    let written = std::fs::read_dir(store.dir())
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(written, 0, "no journal");
}

#[tokio::test(start_paused = true)]
async fn the_prompt_says_the_run_waits_for_the_window() {
    let sim = sim(4);
    let dir = tempfile::tempdir().unwrap();
    let store = JournalStore::new(dir.path().join("state"));
    let clock = SimClock::starting_at(SystemTime::UNIX_EPOCH + Duration::from_secs(START as u64));
    let mut plan = plan(&store, limits(&[SATURDAY]));
    plan.assume_yes = false;
    let mut console = Recorder {
        answer: Some(false),
        ..Recorder::default()
    };
    let code = run(&sim, &clock, &plan, &mut console, &StopSignal::default())
        .await
        .unwrap();
    assert_eq!(code, exit::BLOCKED);
    assert_eq!(
        console.question,
        "Restart 4 ECS agent(s) in 3 wave(s) on cluster sim, once the window opens at Sat 2027-01-16 08:00 UTC? [y/N] "
    );
    assert!(!console.err.contains("Waiting"), "a no does not wait");
    // The probe for agents already on the endpoints went out (it only reads); no
    // restart, no journal.
    assert!(sim.sent_commands().is_empty());
    assert!(std::fs::read_dir(store.dir()).is_err());
}

#[test]
fn the_resume_command_keeps_the_windows_and_the_deadline() {
    let limits = limits(&[FRIDAY, SATURDAY]);
    let deadline = jiff::Timestamp::from_second(START + 2 * 86_400).ok();
    assert_eq!(
        resume_hint_within("eu-west-1", "prod", &limits.schedule, deadline),
        "Resume with: privlink-restart --region eu-west-1 --cluster prod --resume \
         --window 'Fri 08:05-08:09 UTC' --window 'Sat 08:00-09:00 UTC' \
         --deadline 2027-01-17T08:00:00Z\n"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_outside_its_window_shows_the_plan_and_waits_for_nothing() {
    let Outside {
        sim,
        code,
        console,
        took,
        ..
    } = outside_the_window(|plan| {
        plan.dry_run = true;
        plan.no_wait = true;
    })
    .await;
    assert_eq!(code, exit::OK, "{}", console.err);
    let doc: serde_json::Value = serde_json::from_str(console.out.trim()).unwrap();
    assert_eq!(doc["windows"][0], SATURDAY);
    // The rehearsal waits for Saturday in virtual time, not this run.
    assert_eq!(doc["estimate"]["windows"], 1, "{doc}");
    assert!(
        doc["estimate"]["ends_at"]
            .as_str()
            .unwrap()
            .starts_with("2027-01-16T08:0"),
        "{doc}"
    );
    assert!(took < Duration::from_secs(60), "it did not wait");
    assert!(sim.sent_commands().is_empty());
}
