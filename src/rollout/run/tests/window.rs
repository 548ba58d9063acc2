//! The time limits in virtual time: a step starts only if it is expected to end before
//! the window closes and before the deadline; what started is finished; the rollout then
//! stops with when the next window opens.

use super::*;
use crate::fleet::sim::{SimGroup, SimService};
use crate::window::{Schedule, TimeLimits, Window};

/// `start()` is Friday 2027-01-15 08:00 UTC.
const START: i64 = 1_800_000_000;

fn window(spec: &str) -> TimeLimits {
    TimeLimits {
        schedule: Schedule {
            windows: vec![Window::parse(spec).unwrap()],
        },
        deadline: None,
    }
}

/// When each instance reached a final state (done, failed, skipped, gone).
fn finished_at(events: &[RolloutEvent]) -> BTreeMap<String, i64> {
    events
        .iter()
        .filter_map(|e| match e {
            RolloutEvent::StateChanged {
                instance_id,
                state,
                at,
            } if state.is_final() => Some((instance_id.clone(), *at)),
            _ => None,
        })
        .collect()
}

/// Every wave that started ended (all its instances final) by `limit`; returns how many
/// waves started.
fn every_wave_ended_by(outcome: &Outcome, events: &[RolloutEvent], limit: i64) -> usize {
    let finished = finished_at(events);
    let mut waves = 0;
    for event in events {
        if let RolloutEvent::WaveStarted { instance_ids, .. } = event {
            waves += 1;
            for id in instance_ids {
                let at = finished.get(id).copied();
                assert!(
                    at.is_some_and(|at| at <= limit),
                    "{id} started and ended at {at:?}, after {limit}: {:?}",
                    outcome.states[id]
                );
            }
        }
    }
    waves
}

#[tokio::test(start_paused = true)]
async fn no_wave_starts_that_would_end_after_the_window_closes() {
    let instances = zones(30);
    let mut config = config(MaxUnavailable::Count(2), 1);
    config.limits = window("Fri 08:00-08:03 UTC");
    let (outcome, events, sim) = rollout(instances.clone(), config).await;
    let close = START + 180;
    let waves = every_wave_ended_by(&outcome, &events, close);
    assert!(waves >= 2, "the window has room for more than the canary");
    assert!(
        outcome.out_of_time && outcome.stopped,
        "{:?}",
        outcome.halted
    );
    let why = outcome.halted.clone().unwrap_or_default();
    assert!(why.contains("would end after the window closes"), "{why}");
    // The next Friday, 08:00.
    assert_eq!(outcome.resumes_at, Some(START + 7 * 86_400));
    // Nothing half done: each instance finished or untouched.
    let done = outcome.count("done");
    assert_eq!(done + outcome.count("pending"), 30, "{:?}", outcome.states);
    assert!(done < 30 && done > 1, "{done}");
    for instance in &instances {
        let sent = sim.restarts_sent(&instance.id);
        let expected = usize::from(outcome.states[&instance.id].name() == "done");
        assert_eq!(sent, expected, "{}", instance.id);
    }
}

#[tokio::test(start_paused = true)]
async fn the_deadline_is_honoured_and_says_no_window_follows() {
    let mut config = config(MaxUnavailable::Count(3), 1);
    config.limits = TimeLimits {
        deadline: Some(jiff::Timestamp::from_second(START + 150).unwrap()),
        ..TimeLimits::default()
    };
    let (outcome, events, _) = rollout(zones(30), config).await;
    every_wave_ended_by(&outcome, &events, START + 150);
    let why = outcome.halted.clone().unwrap_or_default();
    assert!(why.contains("deadline"), "{why}");
    assert!(outcome.out_of_time);
    assert_eq!(outcome.resumes_at, None);
    assert!(outcome.count("pending") > 0 && outcome.count("done") > 0);
}

#[tokio::test(start_paused = true)]
async fn a_rollout_inside_a_wide_window_is_not_held_back() {
    let mut config = config(MaxUnavailable::Count(3), 1);
    config.limits = window("Mon-Fri 07:00-19:00 Europe/London");
    let (outcome, _, _) = rollout(zones(30), config).await;
    assert_eq!(outcome.halted, None);
    assert_eq!(outcome.count("done"), 30);
    assert!(!outcome.out_of_time);
}

const GROUP: &str = "nodes";

/// `n` instances SSM does not reach, each running one task of a service, in a group.
fn unmanaged_with_tasks(n: usize) -> SimFleet {
    let instances: Vec<SimInstance> = zones(n)
        .into_iter()
        .map(|i| i.in_group(GROUP).with_fault(Fault::SsmOffline))
        .collect();
    let ids: Vec<String> = instances.iter().map(|i| i.id.clone()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    SimFleet::new(instances, Latencies::default(), start())
        .with_max_unavailable(1)
        .with_max_reboots(1)
        .with_group(GROUP, SimGroup::default())
        .with_service(SimService::new("web"), &ids)
}

async fn roll_reboots(sim: &SimFleet, limits: TimeLimits) -> (Outcome, Vec<RolloutEvent>) {
    let config = RolloutConfig {
        waves: WavePolicy {
            max_unavailable: MaxUnavailable::Count(1),
            canary: 1,
            by_az: false,
        },
        limits,
        ..RolloutConfig::default()
    };
    let targets = sim.targets();
    let preset = targets
        .iter()
        .map(|t| {
            let reason = t.no_ssm.clone().unwrap_or_default();
            (t.instance_id.clone(), InstanceState::NeedsReboot { reason })
        })
        .collect();
    roll_on(sim, targets, preset, Vec::new(), &config).await
}

fn nothing_held(sim: &SimFleet, ids: &[String]) {
    for id in ids {
        let (protected, standby, status) = sim.instance_state(id).unwrap();
        assert_eq!(
            (protected, standby, status.as_str()),
            (false, false, "ACTIVE"),
            "{id}"
        );
    }
    assert!(sim.group(GROUP).unwrap().suspended.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_reboot_that_would_not_end_before_the_close_is_not_begun() {
    // The first batch is expected to take a whole drain (5 minutes) and a reboot (5
    // minutes); the window has 5 minutes: nothing is drained, nothing is held.
    let sim = unmanaged_with_tasks(2);
    let (outcome, events) = roll_reboots(&sim, window("Fri 08:00-08:05 UTC")).await;
    assert!(outcome.out_of_time, "{:?}", outcome.halted);
    assert_eq!(outcome.count("needs-reboot"), 2, "{:?}", outcome.states);
    assert!(!events
        .iter()
        .any(|e| matches!(e, RolloutEvent::WaveStarted { .. })));
    let changes = sim.request_counts();
    for action in [
        "ecs:UpdateContainerInstancesState",
        "ec2:RebootInstances",
        "autoscaling:SetInstanceProtection",
        "autoscaling:SuspendProcesses",
    ] {
        assert_eq!(changes.get(action), None, "{action}");
    }
    let ids: Vec<String> = sim.targets().into_iter().map(|t| t.instance_id).collect();
    nothing_held(&sim, &ids);
}

#[tokio::test(start_paused = true)]
async fn reboots_go_on_while_their_measured_duration_fits_then_stop_put_back() {
    let sim = unmanaged_with_tasks(6);
    let close = START + 12 * 60;
    let (outcome, events) = roll_reboots(&sim, window("Fri 08:00-08:12 UTC")).await;
    let batches = every_wave_ended_by(&outcome, &events, close);
    // The first batch starts on the defaults; the later ones on what it took.
    assert!(batches >= 2, "{batches}: {:?}", outcome.states);
    assert!(outcome.out_of_time, "{:?}", outcome.halted);
    assert!(outcome.count("needs-reboot") >= 1, "{:?}", outcome.states);
    assert_eq!(
        outcome.count("done") + outcome.count("needs-reboot"),
        6,
        "{:?}",
        outcome.states
    );
    let ids: Vec<String> = sim.targets().into_iter().map(|t| t.instance_id).collect();
    nothing_held(&sim, &ids);
}
