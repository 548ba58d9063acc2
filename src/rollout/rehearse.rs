//! The estimate of `--dry-run`: the plan rehearsed on a simulated copy of the cluster
//! (`SimFleet::copy_of`) in virtual time, with the real configuration — waves, timeouts,
//! the fallback, `--window` and `--deadline` — so the estimate comes from the same code
//! that will run. Where the time limits stop a session, the rehearsal waits (virtually)
//! for the next window and resumes, as an operator would with `--resume`, and counts the
//! windows.
//!
//! It runs on a thread of its own with its own paused tokio runtime, so hours of rollout
//! take seconds and the caller's runtime is not touched.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::estimate::Estimates;
use super::run::{roll, RolloutConfig, RolloutEvent, RolloutInput};
use super::state::InstanceState;
use crate::clock::{rfc3339, unix_seconds, Clock, SimClock};
use crate::fleet::sim::{Blueprint, SimFleet};
use crate::journal::marks::RunId;
use crate::window::Start;

/// Sessions after which a rehearsal gives up: a plan that needs more windows than this
/// is not one to run as planned.
const MAX_SESSIONS: usize = 60;
const WEEK: i64 = 7 * 86_400;

/// What the rehearsal found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rehearsal {
    /// Working time: from the start of each session to its end, added up (waits for
    /// windows left out).
    #[serde(rename = "makespan_seconds", serialize_with = "seconds")]
    pub makespan: Duration,
    /// Windows the rollout works in (sessions that start a step); 1 without
    /// `--window`.
    pub windows: usize,
    /// When the last session ends, waits included (RFC 3339).
    #[serde(serialize_with = "time")]
    pub ends_at: i64,
    /// Why the rollout would not finish, if it would not.
    pub unfinished: Option<String>,
    /// Instances done at the end, and how many the plan had to do.
    pub done: usize,
    pub targets: usize,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

fn time<S: serde::Serializer>(t: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

/// What is rehearsed: the plan's targets and what was decided before the run.
pub struct Script {
    pub targets: Vec<String>,
    pub preset: Vec<(String, InstanceState)>,
    /// Instance ids of the cluster's other in-scope instances.
    pub bystanders: Vec<String>,
}

/// Rehearses `script` on a copy of `blueprint`'s cluster from `start`, latencies drawn
/// from `seed`.
pub fn rehearse(
    blueprint: &Blueprint<'_>,
    script: &Script,
    config: &RolloutConfig,
    estimates: &Estimates,
    start: SystemTime,
    seed: u64,
) -> Rehearsal {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .start_paused(true)
                    .build();
                match runtime {
                    Ok(runtime) => runtime
                        .block_on(sessions(blueprint, script, config, estimates, start, seed)),
                    Err(error) => not_rehearsed(start, script, &error.to_string()),
                }
            })
            .join()
            .unwrap_or_else(|_| not_rehearsed(start, script, "the rehearsal failed"))
    })
}

fn not_rehearsed(start: SystemTime, script: &Script, why: &str) -> Rehearsal {
    Rehearsal {
        makespan: Duration::ZERO,
        windows: 0,
        ends_at: unix_seconds(start),
        unfinished: Some(format!("not rehearsed: {why}")),
        done: 0,
        targets: script.targets.len(),
    }
}

async fn sessions(
    blueprint: &Blueprint<'_>,
    script: &Script,
    config: &RolloutConfig,
    estimates: &Estimates,
    start: SystemTime,
    seed: u64,
) -> Rehearsal {
    let sim = SimFleet::copy_of(blueprint, seed, start);
    let clock = SimClock::starting_at(start);
    let targets: Vec<_> = script
        .targets
        .iter()
        .filter_map(|id| sim.target(id))
        .collect();
    let bystanders: Vec<String> = script
        .bystanders
        .iter()
        .map(|id| sim.container_instance_arn(id))
        .collect();
    let mut preset = script.preset.clone();
    let mut estimates = estimates.clone();
    let mut rehearsal = Rehearsal {
        makespan: Duration::ZERO,
        windows: 0,
        ends_at: unix_seconds(start),
        unfinished: None,
        done: 0,
        targets: targets.len(),
    };
    let mut states: BTreeMap<String, InstanceState> = BTreeMap::new();
    // Since when no session has started a step: a whole week of windows without a step
    // that fits means none ever will.
    let mut idle_since: Option<i64> = None;
    let mut sessions = 0;
    loop {
        // Outside the windows: wait for the next, as the cutover does.
        if let Err(why) = wait_for_window(&clock, config).await {
            rehearsal.unfinished = Some(why);
            break;
        }
        if sessions == MAX_SESSIONS {
            rehearsal.unfinished = Some(format!("it needs more than {MAX_SESSIONS} windows"));
            break;
        }
        sessions += 1;
        let input = RolloutInput {
            cluster: sim.cluster().to_string(),
            run: RunId::new(unix_seconds(start), 0),
            targets: targets.clone(),
            preset: preset.clone(),
            bystanders: bystanders.clone(),
            resumed: sessions > 1,
            site: sim.probe_site(),
            estimates: estimates.clone(),
        };
        let began = tokio::time::Instant::now();
        let outcome = roll(&sim, &clock, input, config, &mut |_: RolloutEvent| {}).await;
        rehearsal.makespan += began.elapsed();
        estimates = outcome.estimates.clone();
        states = outcome.states.clone();
        let now = unix_seconds(clock.now());
        if outcome.waves > 0 {
            rehearsal.windows += 1;
            idle_since = None;
        } else if now - *idle_since.get_or_insert(now) > WEEK {
            rehearsal.unfinished = Some(format!(
                "no window in a week is long enough for a step: {}",
                outcome.halted.as_deref().unwrap_or("out of time")
            ));
            break;
        }
        if !outcome.out_of_time {
            rehearsal.unfinished = outcome.halted.clone();
            break;
        }
        let Some(resumes_at) = outcome.resumes_at else {
            rehearsal.unfinished = outcome.halted.clone();
            break;
        };
        // The next session goes on from here (`--resume`), when the next window opens:
        // what is done, skipped or gone stays so, the plan's own decisions stand, and a
        // failure is tried again, as a resumed run does.
        let wait = resumes_at - now;
        tokio::time::sleep(Duration::from_secs(u64::try_from(wait).unwrap_or(0))).await;
        let settled = states.iter().filter(|(_, s)| {
            matches!(
                s,
                InstanceState::Done { .. }
                    | InstanceState::Skipped { .. }
                    | InstanceState::Gone { .. }
            )
        });
        let decided: BTreeMap<String, InstanceState> = script
            .preset
            .iter()
            .cloned()
            .chain(settled.map(|(id, s)| (id.clone(), s.clone())))
            .collect();
        preset = decided.into_iter().collect();
    }
    rehearsal.ends_at = unix_seconds(clock.now());
    rehearsal.done = states.values().filter(|s| s.name() == "done").count();
    rehearsal
}

/// Waits (virtually) until a window is open; `Err` when none will be before the deadline.
async fn wait_for_window(clock: &SimClock, config: &RolloutConfig) -> Result<(), String> {
    let limits = &config.limits;
    if limits.is_none() {
        return Ok(());
    }
    let now = jiff::Timestamp::try_from(clock.now()).map_err(|e| e.to_string())?;
    if limits.deadline.is_some_and(|deadline| now >= deadline) {
        return Err("the deadline has passed".into());
    }
    match limits.may_start(now, Duration::ZERO) {
        Start::Go => Ok(()),
        Start::WaitUntil(opens) => {
            let wait = Duration::try_from(opens.duration_since(now)).unwrap_or_default();
            tokio::time::sleep(wait).await;
            Ok(())
        }
        Start::Stop { why, .. } => Err(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::sim::{Fault, Latencies, SimGroup, SimInstance, SimService};
    use crate::fleet::Fleet;
    use crate::window::{Schedule, TimeLimits, Window};

    /// Monday 2027-01-18 08:00 UTC.
    const MONDAY: u64 = 1_800_000_000 + 3 * 86_400;

    #[tokio::test(start_paused = true)]
    async fn short_weekday_windows_are_passed_over_until_one_fits() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(MONDAY);
        let instances: Vec<SimInstance> = (0..3)
            .map(|i| {
                SimInstance::healthy(format!("i-{i}"), "eu-west-1a")
                    .in_group("nodes")
                    .with_fault(Fault::SsmOffline)
            })
            .collect();
        let world = SimFleet::new(instances, Latencies::default(), start)
            .with_group("nodes", SimGroup::default())
            .with_service(SimService::new("web"), &["i-0", "i-1", "i-2"]);
        let inventory = world.discover("sim").await.unwrap();
        let workload = world.workload("sim").await.unwrap();
        let targets = world.targets();
        let script = Script {
            targets: targets.iter().map(|t| t.instance_id.clone()).collect(),
            preset: targets
                .iter()
                .map(|t| {
                    let reason = "SSM does not manage the instance".to_string();
                    (t.instance_id.clone(), InstanceState::NeedsReboot { reason })
                })
                .collect(),
            bystanders: Vec::new(),
        };
        // A drain and reboot is expected to take 10 minutes at first: the five-minute
        // weekday windows never fit one; Saturday's does.
        let config = RolloutConfig {
            limits: TimeLimits {
                schedule: Schedule {
                    windows: vec![
                        Window::parse("Mon-Fri 22:00-22:05 UTC").unwrap(),
                        Window::parse("Sat 00:00-06:00 UTC").unwrap(),
                    ],
                },
                deadline: None,
            },
            ..RolloutConfig::default()
        };
        let blueprint = Blueprint {
            inventory: &inventory,
            targets: &targets,
            workload: Some(&workload),
        };
        let rehearsal = rehearse(
            &blueprint,
            &script,
            &config,
            &Estimates::default(),
            start,
            1,
        );
        assert_eq!(rehearsal.unfinished, None, "{rehearsal:?}");
        assert_eq!((rehearsal.done, rehearsal.targets), (3, 3));
        assert_eq!(rehearsal.windows, 1, "only Saturday's window does work");
        let ends = rfc3339(rehearsal.ends_at);
        assert!(ends.starts_with("2027-01-23T0"), "{ends}");
        // A window too short for any step, every day: it says so instead of looping.
        let never = RolloutConfig {
            limits: TimeLimits {
                schedule: Schedule {
                    windows: vec![Window::parse("Mon-Sun 22:00-22:05 UTC").unwrap()],
                },
                deadline: None,
            },
            ..RolloutConfig::default()
        };
        let rehearsal = rehearse(&blueprint, &script, &never, &Estimates::default(), start, 1);
        let why = rehearsal.unfinished.unwrap_or_default();
        assert!(
            why.starts_with("no window in a week is long enough for a step"),
            "{why}"
        );
        assert_eq!(rehearsal.done, 0);
    }
}
