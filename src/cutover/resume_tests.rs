//! Never lose a run: crashes at every point, resumes with and without the local journal,
//! interrupts, leases and debts left by an earlier run — on `SimFleet` in virtual time.

use std::time::{Duration, SystemTime};

use super::tests::{cutover, Recorder};
use super::*;
use crate::clock::SimClock;
use crate::fleet::crashing::Crashing;
use crate::fleet::sim::{Fault, Latencies, SimFleet, SimGroup, SimInstance, SimService};
use crate::journal::marks::{
    GroupOwed, InstanceDebt, InstanceOwed, DONE_ATTRIBUTE, OWES_ATTRIBUTE,
};
use crate::rollout::waves::{MaxUnavailable, WavePolicy};

const INSTANCES: usize = 6;
const LIMIT: u32 = 2;

fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// Slow hosts, so that restarts are still under way when a crashed run is resumed.
fn sim() -> SimFleet {
    let instances = (0..INSTANCES)
        .map(|i| {
            SimInstance::healthy(format!("i-{i:03}"), ["eu-west-1a", "eu-west-1b"][i % 2])
                .with_pace(4.0)
        })
        .collect();
    SimFleet::new(instances, Latencies::default(), start()).with_max_unavailable(LIMIT as usize)
}

fn plan(store: Option<JournalStore>) -> CutoverPlan {
    let mut plan = cutover(OutputFormat::Human);
    plan.assume_yes = true;
    plan.rollout.waves = WavePolicy {
        max_unavailable: MaxUnavailable::Count(LIMIT),
        canary: 1,
        by_az: false,
    };
    plan.durability.journal = store;
    plan.durability.lease = LeaseTerms {
        renew_every: Duration::from_secs(5),
    };
    plan
}

fn ids() -> Vec<String> {
    (0..INSTANCES).map(|i| format!("i-{i:03}")).collect()
}

/// Presses Ctrl-C once `commands` restart commands are out; never ends.
async fn interrupt_after(sim: &SimFleet, stop: &StopSignal, commands: usize) {
    while sim.sent_commands().len() < commands {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.request();
    std::future::pending::<()>().await
}

/// A run with a journal in `store`, interrupted once its canary is out (the canary then
/// finishes); returns its plan.
async fn interrupted_after_the_canary(
    sim: &SimFleet,
    clock: &SimClock,
    store: &JournalStore,
) -> CutoverPlan {
    let stop = StopSignal::default();
    let mut console = Recorder::default();
    let plan = plan(Some(store.clone()));
    tokio::select! {
        code = run(sim, clock, &plan, &mut console, &stop) => assert_eq!(code.unwrap(), exit::STOPPED),
        () = interrupt_after(sim, &stop, 1) => unreachable!(),
    }
    plan
}

/// Runs the cutover (its plan tuned by `tune`) on `sim` crashing after `calls` AWS
/// calls, drops the journal unless `keep_journal`, waits until the dead run's lease can
/// be broken, and resumes on the same world; asserts the resumed run ends with exit 0 and
/// returns its output as context. `None` when the first run ended before its `calls`th
/// call: there is no later point to crash at.
async fn crash_and_resume(
    sim: &SimFleet,
    tune: impl Fn(&mut CutoverPlan),
    calls: usize,
    keep_journal: bool,
) -> Option<String> {
    let clock = SimClock::starting_at(start());
    let dir = tempfile::tempdir().unwrap();
    let store = JournalStore::new(dir.path().join("state"));
    let mut first = plan(Some(store.clone()));
    tune(&mut first);
    let crashing = Crashing::after(sim, calls);
    let mut console = Recorder::default();
    let stop = StopSignal::default();
    let ended = tokio::select! {
        code = run(&crashing, &clock, &first, &mut console, &stop) => Some(code),
        () = crashing.crashed() => None,
    };
    if let Some(code) = ended {
        assert_eq!(code.unwrap(), exit::OK, "{}", console.err);
        return None;
    }
    if !keep_journal {
        std::fs::remove_dir_all(store.dir()).ok();
    }
    // Long enough for the dead run's lease to be breakable; its restarts may still run.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let mut second = first.clone();
    second.durability.resume = true;
    second.durability.break_lease = true;
    let mut console = Recorder::default();
    let code = run(sim, &clock, &second, &mut console, &stop)
        .await
        .unwrap();
    let context = format!(
        "crash after {calls} calls, journal kept: {keep_journal}\n{}{}",
        console.err, console.out
    );
    assert_eq!(code, exit::OK, "{context}");
    Some(context)
}

/// Crash after `calls` calls on the slow fleet, resume, and check every agent is
/// restarted once (twice at most without the journal), marked and owed nothing.
async fn crash_then_resume(calls: usize, keep_journal: bool) -> Option<()> {
    let sim = sim();
    let context = crash_and_resume(&sim, |_| {}, calls, keep_journal).await?;
    for id in ids() {
        assert_eq!(
            sim.restarts_after_done(&id),
            0,
            "{id} restarted after it was marked done; {context}"
        );
        let sent = sim.restarts_sent(&id);
        // With the journal a restart under way is followed, never sent again; without it
        // the resumed run cannot know of a restart the crash kept from being proven.
        let most = if keep_journal { 1 } else { 2 };
        assert!(
            (1..=most).contains(&sent),
            "{id} restarted {sent} times; {context}"
        );
        assert!(!sim.marks(&id).contains_key(OWES_ATTRIBUTE), "{context}");
        // Proven done, and marked so on AWS for any later run from anywhere; or found
        // on the endpoints by the resumed run's probe (a restart the crash kept from
        // being marked), and rightly skipped.
        assert!(
            sim.marks(&id).contains_key(DONE_ATTRIBUTE) || sim.on_endpoints(&id),
            "{id} unmarked and not on the endpoints; {context}"
        );
    }
    // A run that finds nothing to resume leaves a dead run's lease to expire on its own.
    if !context.contains("Nothing to resume") {
        assert!(
            sim.parameter("/privlink-restart/lease/sim").is_none(),
            "lease released; {context}"
        );
    }
    let record = sim.parameter("/privlink-restart/run/sim").unwrap();
    assert!(record.contains("\"finished\""), "{record}");
    Some(())
}

#[tokio::test(start_paused = true)]
async fn a_crash_between_any_two_aws_calls_resumes_to_completion_with_the_journal() {
    let mut points = 0;
    while crash_then_resume(points, true).await.is_some() {
        points += 1;
    }
    assert!(
        points > 30,
        "only {points} crash points: the run made too few calls to test"
    );
}

#[tokio::test(start_paused = true)]
async fn a_crash_between_any_two_aws_calls_resumes_from_the_records_on_aws_alone() {
    let mut points = 0;
    while crash_then_resume(points, false).await.is_some() {
        points += 1;
    }
    assert!(points > 30, "only {points} crash points");
}

#[tokio::test(start_paused = true)]
async fn an_interrupt_stops_new_work_lets_restarts_finish_and_resumes_later() {
    let sim = sim();
    let clock = SimClock::starting_at(start());
    let dir = tempfile::tempdir().unwrap();
    let store = JournalStore::new(dir.path());
    let stop = StopSignal::default();
    let mut console = Recorder::default();
    let plan = plan(Some(store.clone()));
    // Ctrl-C while the second wave is under way.
    let interrupt = interrupt_after(&sim, &stop, 2);
    let code = tokio::select! {
        code = run(&sim, &clock, &plan, &mut console, &stop) => code.unwrap(),
        () = interrupt => unreachable!(),
    };
    assert_eq!(code, exit::STOPPED, "{}", console.err);
    assert!(console.err.contains("--resume"), "{}", console.err);
    assert_eq!(
        sim.sent_commands().len(),
        2,
        "nothing new after the interrupt"
    );
    let key = JournalKey {
        account: "123456789012".into(),
        region: "eu-west-1".into(),
        cluster: "sim".into(),
    };
    let journal = store.load(&key).unwrap().unwrap();
    assert_eq!(journal.status, RunStatus::Stopped);
    assert_eq!(
        journal.count("done"),
        3,
        "the canary and the wave under way finished"
    );
    assert_eq!(journal.count("pending"), 3);
    assert!(
        sim.parameter("/privlink-restart/lease/sim").is_none(),
        "lease released"
    );

    let mut resumed = plan.clone();
    resumed.durability.resume = true;
    let mut console = Recorder::default();
    let code = run(&sim, &clock, &resumed, &mut console, &StopSignal::default())
        .await
        .unwrap();
    assert_eq!(code, exit::OK, "{}", console.err);
    assert!(ids().iter().all(|id| sim.restarts_sent(id) == 1));
    assert_eq!(
        store.load(&key).unwrap().unwrap().status,
        RunStatus::Finished
    );
}

#[tokio::test(start_paused = true)]
async fn an_unfinished_run_is_not_resumed_or_restarted_without_being_told() {
    let sim = sim();
    let clock = SimClock::starting_at(start());
    let dir = tempfile::tempdir().unwrap();
    let store = JournalStore::new(dir.path());
    let stop = StopSignal::default();
    stop.request();
    let mut console = Recorder::default();
    // Interrupted before its first wave: a run on record, nothing done.
    let code = run(
        &sim,
        &clock,
        &plan(Some(store.clone())),
        &mut console,
        &stop,
    )
    .await
    .unwrap();
    assert_eq!(code, exit::STOPPED);
    let mut console = Recorder::default();
    let code = run(
        &sim,
        &clock,
        &plan(Some(store.clone())),
        &mut console,
        &StopSignal::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        code,
        exit::USAGE,
        "--yes alone does not decide: {}",
        console.err
    );
    assert!(console.err.contains("--resume") && console.err.contains("--fresh"));
    assert!(sim.sent_commands().is_empty());
    // --fresh under --dry-run changes nothing, not even the journal.
    let mut rehearsal = plan(Some(store.clone()));
    rehearsal.durability.fresh = true;
    rehearsal.dry_run = true;
    let mut console = Recorder::default();
    let code = run(
        &sim,
        &clock,
        &rehearsal,
        &mut console,
        &StopSignal::default(),
    )
    .await
    .unwrap();
    assert_eq!(code, exit::OK);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "the journal stays"
    );
    // --fresh archives the journal and starts a new run.
    let mut fresh = plan(Some(store.clone()));
    fresh.durability.fresh = true;
    let mut console = Recorder::default();
    let code = run(&sim, &clock, &fresh, &mut console, &StopSignal::default())
        .await
        .unwrap();
    assert_eq!(code, exit::OK, "{}", console.err);
    assert!(console.err.contains("archived"), "{}", console.err);
}

#[tokio::test(start_paused = true)]
async fn a_second_run_while_the_lease_is_held_exits_4_naming_the_holder() {
    let sim = sim();
    let clock = SimClock::starting_at(start());
    let holder = lease::acquire(
        &sim,
        &clock,
        "sim",
        Owner {
            user: "alice".into(),
            host: "bastion".into(),
            pid: 7,
            run: RunId::new(1_800_000_000, 7),
        },
        LeaseTerms::default(),
        false,
    )
    .await
    .unwrap();
    let mut console = Recorder::default();
    let code = run(
        &sim,
        &clock,
        &plan(None),
        &mut console,
        &StopSignal::default(),
    )
    .await
    .unwrap();
    assert_eq!(code, exit::LEASE_HELD);
    assert!(
        console.err.contains("alice@bastion (pid 7"),
        "{}",
        console.err
    );
    assert!(sim.sent_commands().is_empty());
    assert_eq!(
        sim.parameter("/privlink-restart/lease/sim"),
        Some(serde_json::to_string(holder.record()).unwrap())
    );
}

#[tokio::test(start_paused = true)]
async fn a_lease_lost_mid_run_stops_new_work_with_exit_3() {
    let sim = sim();
    let clock = SimClock::starting_at(start());
    let mut console = Recorder::default();
    let thief = async {
        while sim.sent_commands().is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Someone overwrites the lease (an operator with --break-lease on a wrong clock).
        let _ = sim
            .write_record("sim", Record::Lease, "{\"schema\":1}", true)
            .await;
        std::future::pending::<()>().await
    };
    let (plan, stop) = (plan(None), StopSignal::default());
    let code = tokio::select! {
        code = run(&sim, &clock, &plan, &mut console, &stop) => code.unwrap(),
        () = thief => unreachable!(),
    };
    assert_eq!(code, exit::STOPPED, "{}", console.err);
    assert!(
        console.err.contains("lost the lease"),
        "{}{}",
        console.err,
        console.out
    );
    // The other run goes on: this one does not suggest a resume that would be refused.
    assert!(
        console.err.contains("Another run holds cluster sim now")
            && !console.err.contains("Resume with"),
        "{}",
        console.err
    );
    assert!(sim.sent_commands().len() < INSTANCES);
}

#[tokio::test(start_paused = true)]
async fn debts_left_by_an_earlier_run_are_paid_first_and_operator_state_is_kept() {
    let earlier = RunId::new(1_799_999_000, 3);
    let owed = InstanceOwed {
        run: earlier.clone(),
        debts: InstanceDebt::ALL.into_iter().collect(),
    }
    .encode()
    .unwrap();
    let group_owed = GroupOwed {
        run: Some(earlier),
        cluster: "sim".into(),
        resume: ["AZRebalance", "HealthCheck"].map(String::from).into(),
        exit_standby: ["i-001".to_string()].into(),
    }
    .encode()
    .unwrap();
    let instances = vec![
        // The tool drained and protected it, then died.
        SimInstance::healthy("i-000", "eu-west-1a")
            .in_group("blue")
            .with_status("DRAINING")
            .with_mark(OWES_ATTRIBUTE, &owed),
        SimInstance::healthy("i-001", "eu-west-1b").in_group("blue"),
        // An operator drained this one: not the tool's to undo.
        SimInstance::healthy("i-002", "eu-west-1a")
            .in_group("blue")
            .with_status("DRAINING"),
    ];
    let sim = SimFleet::new(instances, Latencies::default(), start())
        .with_group(
            "blue",
            SimGroup {
                // ScheduledActions was suspended by the operator before.
                suspended: ["AZRebalance", "HealthCheck", "ScheduledActions"]
                    .map(String::from)
                    .into(),
                owes_tag: Some(group_owed),
                ..SimGroup::default()
            },
        )
        .with_instance_held("i-000", true, false)
        .with_instance_held("i-001", false, true);
    let clock = SimClock::starting_at(start());
    let mut console = Recorder::default();
    let mut plan = plan(None);
    plan.durability.resume = true;
    let code = run(&sim, &clock, &plan, &mut console, &StopSignal::default())
        .await
        .unwrap();
    assert_eq!(code, exit::OK, "{}", console.err);
    assert!(console.err.contains("Owed to i-000"), "{}", console.err);
    assert_eq!(
        sim.instance_state("i-000"),
        Some((false, false, "ACTIVE".into()))
    );
    assert_eq!(
        sim.instance_state("i-001"),
        Some((false, false, "ACTIVE".into()))
    );
    assert_eq!(
        sim.instance_state("i-002").unwrap().2,
        "DRAINING",
        "the operator's drain stays"
    );
    let group = sim.group("blue").unwrap();
    assert_eq!(group.suspended, ["ScheduledActions".to_string()].into());
    assert_eq!(group.owes_tag, None);
    assert!(!sim.marks("i-000").contains_key(OWES_ATTRIBUTE));
    assert_eq!(sim.restarts_sent("i-002"), 0);
    assert_eq!(
        sim.restarts_sent("i-000"),
        1,
        "ACTIVE again, so planned anew and restarted"
    );
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_journal_is_reported_and_the_records_on_aws_carry_the_resume() {
    let sim = sim();
    let clock = SimClock::starting_at(start());
    let dir = tempfile::tempdir().unwrap();
    let store = JournalStore::new(dir.path());
    let plan = interrupted_after_the_canary(&sim, &clock, &store).await;
    let path = dir.path().join("123456789012.eu-west-1.sim.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &text[..text.len() / 3]).unwrap();
    let mut resumed = plan.clone();
    resumed.durability.resume = true;
    let mut console = Recorder::default();
    let code = run(&sim, &clock, &resumed, &mut console, &StopSignal::default())
        .await
        .unwrap();
    assert_eq!(code, exit::OK, "{}", console.err);
    assert!(
        console.err.contains("unreadable") && console.err.contains("kept as"),
        "{}",
        console.err
    );
    assert_eq!(
        sim.restarts_sent("i-000"),
        1,
        "the canary, done before, was not restarted again"
    );
}

#[tokio::test(start_paused = true)]
async fn status_shows_a_stopped_run_with_its_instances_and_exits_1_until_finished() {
    let sim = sim();
    let clock = SimClock::starting_at(start());
    let dir = tempfile::tempdir().unwrap();
    let store = JournalStore::new(dir.path());
    interrupted_after_the_canary(&sim, &clock, &store).await;
    let mut console = Recorder::default();
    let code = status::status(&sim, "sim", Some(&store), OutputFormat::Json, &mut console)
        .await
        .unwrap();
    assert_eq!(code, exit::BLOCKED, "a stopped run is unfinished");
    let doc: serde_json::Value = serde_json::from_str(console.out.trim()).unwrap();
    assert_eq!(doc["kind"], "status");
    assert_eq!(doc["run"]["status"], "stopped");
    assert!(doc["run"]["journal"]
        .as_str()
        .unwrap()
        .ends_with("123456789012.eu-west-1.sim.json"));
    assert!(doc["lease"].is_null(), "released");
    let states: Vec<&str> = doc["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.iter().filter(|s| **s == "done").count(), 1, "{doc}");
    assert_eq!(
        states.iter().filter(|s| **s == "pending").count(),
        INSTANCES - 1
    );
    // The canary's path verdict, from the journal, with its evidence.
    let canary = doc["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["state"] == "done")
        .unwrap();
    assert_eq!(canary["verdict"]["path"], "private", "{canary}");
    assert!(canary["verdict"]["acs"].is_string(), "{canary}");
    let mut console = Recorder::default();
    status::status(&sim, "sim", Some(&store), OutputFormat::Human, &mut console)
        .await
        .unwrap();
    assert!(console.out.contains("· path private"), "{}", console.out);

    // From another machine (no journal) the run and its done instance still show.
    let mut console = Recorder::default();
    let other = JournalStore::new(dir.path().join("elsewhere"));
    status::status(&sim, "sim", Some(&other), OutputFormat::Human, &mut console)
        .await
        .unwrap();
    assert!(console.out.contains(": stopped"), "{}", console.out);
    assert!(
        console.out.contains("marker on the container instance"),
        "{}",
        console.out
    );
    assert!(console.out.contains("--resume"), "{}", console.out);
}

/// A run record and a lease this version cannot read are said, not taken for none.
#[tokio::test(start_paused = true)]
async fn status_says_when_it_cannot_read_the_run_record_or_the_lease() {
    let sim = sim();
    for record in [Record::Run, Record::Lease] {
        sim.write_record("sim", record, "{\"schema\":99}", true)
            .await
            .unwrap();
    }
    let mut console = Recorder::default();
    status::status(&sim, "sim", None, OutputFormat::Human, &mut console)
        .await
        .unwrap();
    let said = format!("{}{}", console.out, console.err);
    for parameter in ["/privlink-restart/run/sim", "/privlink-restart/lease/sim"] {
        assert!(
            said.contains(&format!(
                "{parameter} holds something this version cannot read"
            )),
            "{said}"
        );
    }
}

/// A small fleet whose one unmanaged instance goes through the whole fallback.
fn fallback_sim() -> SimFleet {
    let instances = (0..3)
        .map(|i| {
            let instance =
                SimInstance::healthy(format!("i-{i:03}"), "eu-west-1a").in_group("nodes");
            if i == 2 {
                instance.with_fault(Fault::SsmOffline)
            } else {
                instance
            }
        })
        .collect();
    SimFleet::new(instances, Latencies::default(), start())
        .with_max_unavailable(1)
        .with_max_reboots(1)
        .with_group(
            "nodes",
            SimGroup {
                // Suspended by an operator: it must stay so.
                suspended: ["Launch".to_string()].into(),
                ..SimGroup::default()
            },
        )
        .with_service(SimService::new("web"), &["i-000", "i-002"])
}

/// Crashes the cutover after `calls` AWS calls on the fallback fleet, then resumes it;
/// `None` when the first run ended before that.
async fn crash_mid_fallback_then_resume(calls: usize, keep_journal: bool) -> Option<()> {
    let sim = fallback_sim();
    let one_at_a_time = |plan: &mut CutoverPlan| {
        plan.rollout.waves.max_unavailable = MaxUnavailable::Count(1);
    };
    let context = crash_and_resume(&sim, one_at_a_time, calls, keep_journal).await?;
    for id in ["i-000", "i-001", "i-002"] {
        let (protected, standby, status) = sim.instance_state(id).unwrap();
        assert_eq!(status, "ACTIVE", "{id}; {context}");
        assert!(!protected && !standby, "{id}; {context}");
        assert!(
            !sim.marks(id).contains_key(OWES_ATTRIBUTE),
            "{id}; {context}"
        );
        assert!(
            sim.marks(id).contains_key(DONE_ATTRIBUTE) || sim.on_endpoints(id),
            "{id}; {context}"
        );
    }
    let reboots = sim.reboots_of("i-002");
    assert!(
        (1..=2).contains(&reboots),
        "rebooted {reboots} times; {context}"
    );
    let group = sim.group("nodes").unwrap();
    assert_eq!(group.suspended, ["Launch".to_string()].into(), "{context}");
    assert_eq!(group.owes_tag, None, "{context}");
    assert!(sim.terminated_by_auto_scaling().is_empty(), "{context}");
    Some(())
}

#[tokio::test(start_paused = true)]
async fn a_crash_at_any_step_of_a_drain_and_reboot_resumes_with_everything_put_back() {
    for keep_journal in [true, false] {
        let mut points = 0;
        while crash_mid_fallback_then_resume(points, keep_journal)
            .await
            .is_some()
        {
            points += 1;
        }
        assert!(points > 40, "only {points} crash points");
    }
}
