//! Random fleets and random faults, on the simulated cluster in virtual time: for each
//! seed a fleet of 3 to 12 instances over one to three zones, each instance with or
//! without a fault, some running a task outside any service, random `--max-unavailable`
//! and `--max-reboots`, and one AWS call failing from a random call on (the fault
//! schedule). The run, then a `--resume` with the AWS fault gone. Invariants:
//!
//! - never more instances unavailable than `--max-unavailable`, nor more drained or
//!   rebooting than `--max-reboots` (the simulated fleet asserts both on every send,
//!   drain and reboot);
//! - never a reboot of an instance with a task outside any service (not allowed here);
//! - nothing owed once the resume ended (instances ACTIVE, unprotected, not in Standby,
//!   no restore record, the group's processes as they were);
//! - no instance restarted or rebooted again after it was proven done.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::tests::{cutover, Recorder};
use super::*;
use crate::clock::SimClock;
use crate::fleet::faulty::Faulty;
use crate::fleet::gated::METHODS;
use crate::fleet::sim::{Draws, Fault, Latencies, SimFleet, SimGroup, SimInstance, SimService};
use crate::journal::marks::DONE_ATTRIBUTE;
use crate::rollout::waves::{MaxUnavailable, WavePolicy};

use super::fault_matrix::{owed, GROUP};
const ZONES: [&str; 3] = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];

fn pick<T: Copy>(draws: &mut Draws, from: &[T]) -> T {
    from[((draws.next_unit() * from.len() as f64) as usize).min(from.len() - 1)]
}

struct Case {
    sim: SimFleet,
    ids: Vec<String>,
    standalone: Vec<String>,
    plan: CutoverPlan,
    failing: &'static str,
    from_call: usize,
    described: String,
}

fn case(seed: u64, store: &JournalStore) -> Case {
    let mut draws = Draws::new(seed);
    let n = 3 + (draws.next_unit() * 10.0) as usize;
    let zones = 1 + (draws.next_unit() * 3.0) as usize;
    let faults = [
        Fault::SsmOffline,
        Fault::SlowReconnect(Duration::from_secs(40)),
        Fault::CommandFails,
        Fault::NeverDelivered,
        Fault::TelemetryLate(Duration::from_secs(8)),
        Fault::NoisyOutput,
        Fault::TaskChurn,
        Fault::DrainStuck,
        Fault::StatusChecksFail,
        Fault::AgentNeverRejoins,
    ];
    let mut instances = Vec::new();
    let mut described = Vec::new();
    for i in 0..n {
        let mut instance =
            SimInstance::healthy(format!("i-{i:03}"), ZONES[i % zones]).in_group(GROUP);
        instance.pace = 0.7 + 0.9 * draws.next_unit();
        if draws.next_unit() < 0.3 {
            let fault = pick(&mut draws, &faults);
            described.push(format!("{} {fault:?}", instance.id));
            instance.faults.push(fault);
        }
        instances.push(instance);
    }
    let ids: Vec<String> = instances.iter().map(|i| i.id.clone()).collect();
    let standalone: Vec<String> = ids
        .iter()
        .filter(|_| draws.next_unit() < 0.15)
        .cloned()
        .collect();
    let max_unavailable = 1 + (draws.next_unit() * 3.0) as usize;
    let max_reboots = 1 + (draws.next_unit() * max_unavailable as f64) as usize;
    let max_reboots = max_reboots.min(max_unavailable);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut sim = SimFleet::new(
        instances,
        Latencies::default(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    )
    .with_max_unavailable(max_unavailable)
    .with_max_reboots(max_reboots)
    .with_group(GROUP, SimGroup::default())
    .with_service(SimService::new("web"), &refs);
    for id in &standalone {
        sim = sim.with_standalone_task(id, "nightly");
    }
    let mut plan = cutover(OutputFormat::Human);
    plan.assume_yes = true;
    plan.rollout.waves = WavePolicy {
        max_unavailable: MaxUnavailable::Count(u32::try_from(max_unavailable).unwrap_or(1)),
        canary: usize::from(draws.next_unit() < 0.5),
        by_az: draws.next_unit() < 0.3,
    };
    plan.rollout.max_failures = n;
    plan.rollout.fallback.max_reboots = max_reboots;
    plan.rollout.fallback.drain_timeout = Duration::from_secs(300);
    plan.rollout.fallback.reboot_timeout = Duration::from_secs(300);
    plan.durability.journal = Some(store.clone());
    plan.durability.lease = LeaseTerms {
        renew_every: Duration::from_secs(5),
    };
    let failing = pick(&mut draws, METHODS);
    let from_call = (draws.next_unit() * 6.0) as usize;
    let described = format!(
        "seed {seed}: {n} instances in {zones} zone(s), --max-unavailable {max_unavailable}, --max-reboots {max_reboots}, standalone tasks on {standalone:?}, faults [{}], {failing} failing from call {}",
        described.join(", "),
        from_call + 1
    );
    Case {
        sim,
        ids,
        standalone,
        plan,
        failing,
        from_call,
        described,
    }
}

#[tokio::test(start_paused = true)]
async fn random_fleets_and_faults_keep_the_invariants() {
    // What the seeds exercised, so that the invariants are not held vacuously.
    let (mut hit, mut reboots, mut owed_between, mut standalone, mut done_then_resumed) =
        (0, 0, 0, 0, 0);
    for seed in 0..40 {
        let dir = tempfile::tempdir().unwrap();
        let store = JournalStore::new(dir.path().join("state"));
        let case = case(seed, &store);
        let clock =
            SimClock::starting_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let faulty = Faulty::failing(&case.sim, case.failing, case.from_call);
        let mut first = Recorder::default();
        let _ = run(
            &faulty,
            &clock,
            &case.plan,
            &mut first,
            &StopSignal::default(),
        )
        .await;
        hit += usize::from(faulty.failed());
        owed_between += usize::from(!owed(&case.sim, &case.ids).is_empty());
        standalone += case.standalone.len();
        // Proven done in the first run: restarted and rebooted how often by then.
        let done: BTreeMap<&String, (usize, usize)> = case
            .ids
            .iter()
            .filter(|id| case.sim.marks(id).contains_key(DONE_ATTRIBUTE))
            .map(|id| (id, (case.sim.restarts_sent(id), case.sim.reboots_of(id))))
            .collect();
        tokio::time::sleep(Duration::from_secs(60)).await;
        let mut resume = case.plan.clone();
        resume.durability.resume = true;
        resume.durability.break_lease = true;
        let mut again = Recorder::default();
        let resumed = run(
            &case.sim,
            &clock,
            &resume,
            &mut again,
            &StopSignal::default(),
        )
        .await;
        let context = format!(
            "{}\n--- first run\n{}{}\n--- resume\n{}{}",
            case.described, first.err, first.out, again.err, again.out
        );
        // The resume ran to its end: everything done, or some instances failed by the
        // fleet's own faults (a drain stuck, a host that never rejoins), which stay.
        // Not refused, stopped or unable to reach the fleet.
        assert!(
            matches!(resumed, Ok(exit::OK | exit::BLOCKED)),
            "the resume ended {resumed:?}\n{context}"
        );
        assert_eq!(
            owed(&case.sim, &case.ids),
            Vec::<String>::new(),
            "{context}"
        );
        for id in &case.standalone {
            assert_eq!(
                case.sim.reboots_of(id),
                0,
                "{id} runs a standalone task\n{context}"
            );
        }
        reboots += case
            .ids
            .iter()
            .map(|id| case.sim.reboots_of(id))
            .sum::<usize>();
        done_then_resumed += usize::from(!done.is_empty());
        for (id, (restarts, reboots)) in done {
            assert_eq!(
                (case.sim.restarts_sent(id), case.sim.reboots_of(id)),
                (restarts, reboots),
                "{id} was done, then touched again\n{context}"
            );
        }
    }
    eprintln!(
        "40 seeds: AWS fault hit in {hit}, debts left between the runs in {owed_between}, {reboots} reboots, {standalone} instances with standalone tasks, {done_then_resumed} runs with instances done before the resume"
    );
    assert!(
        hit >= 10
            && owed_between >= 1
            && reboots >= 10
            && standalone >= 3
            && done_then_resumed >= 10,
        "the seeds exercise too little"
    );
}
