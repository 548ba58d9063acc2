//! The fault matrix: an AWS error injected into every `Fleet` method the cutover calls
//! (from its first call, and from its third), on a cluster whose run restarts agents over
//! SSM and drains and reboots one instance. For each cell: the run's exit code, what it
//! still owes on AWS, what it changed after the error (must be nothing new: only putting
//! back), and, once the error is gone, a `--resume` that must end with every agent on the
//! endpoints and nothing owed.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::tests::{cutover, Recorder};
use super::*;
use crate::clock::SimClock;
use crate::fleet::faulty::Faulty;
use crate::fleet::gated::METHODS;
use crate::fleet::sim::{Fault, Latencies, SimFleet, SimGroup, SimInstance, SimService};
use crate::journal::marks::OWES_ATTRIBUTE;
use crate::rollout::waves::{MaxUnavailable, WavePolicy};

const INSTANCES: usize = 6;
pub(super) const GROUP: &str = "nodes";

/// The two clusters of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// Restarts over SSM (one with noisy output, one whose command hangs and is
    /// cancelled, then rebooted), and one instance SSM does not manage, rebooted.
    Restarts,
    /// `--strategy reboot --use-standby`: every instance drained, held in Standby, its
    /// boot id read over SSM, rebooted.
    Reboots,
}

fn world(scenario: Scenario) -> SimFleet {
    match scenario {
        Scenario::Restarts => fleet(&[
            (1, Fault::NoisyOutput),
            (2, Fault::SsmOffline),
            (4, Fault::CommandHangs),
        ]),
        Scenario::Reboots => fleet(&[]),
    }
}

/// Six instances in one group, a service on each, with `faults` on the instances numbered.
fn fleet(faults: &[(usize, Fault)]) -> SimFleet {
    let instances: Vec<SimInstance> = (0..INSTANCES)
        .map(|i| {
            faults.iter().filter(|(on, _)| *on == i).fold(
                SimInstance::healthy(format!("i-{i:03}"), ["eu-west-1a", "eu-west-1b"][i % 2])
                    .in_group(GROUP),
                |instance, (_, fault)| instance.with_fault(*fault),
            )
        })
        .collect();
    let ids: Vec<String> = instances.iter().map(|i| i.id.clone()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    SimFleet::new(
        instances,
        Latencies::default(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    )
    .with_max_unavailable(2)
    .with_max_reboots(1)
    .with_group(GROUP, SimGroup::default())
    .with_service(SimService::new("web"), &ids)
}

fn plan(store: &JournalStore, scenario: Scenario) -> CutoverPlan {
    let mut plan = cutover(OutputFormat::Human);
    if scenario == Scenario::Reboots {
        plan.rollout.fallback.strategy = crate::rollout::run::Strategy::Reboot;
        plan.rollout.fallback.use_standby = true;
    }
    plan.assume_yes = true;
    // No canary: the instance whose command hangs would fail as one in every session
    // (a canary does not fall back to a reboot), and the resume could not finish.
    plan.rollout.waves = WavePolicy {
        max_unavailable: MaxUnavailable::Count(2),
        canary: 0,
        by_az: false,
    };
    plan.durability.journal = Some(store.clone());
    plan.durability.lease = LeaseTerms {
        renew_every: Duration::from_secs(5),
    };
    plan
}

/// What the tool still owes on AWS among `ids`: instances not ACTIVE, protected or in Standby,
/// restore records, the group's processes suspended or its restore tag.
pub(super) fn owed(sim: &SimFleet, ids: &[String]) -> Vec<String> {
    let mut owed = Vec::new();
    for id in ids {
        let Some((protected, standby, status)) = sim.instance_state(id) else {
            continue;
        };
        if sim.terminated(id) {
            // Gone: nothing can be owed on it.
            continue;
        }
        // Nobody but the tool drains in these fleets: DRAINING is owed.
        if status != "ACTIVE" || protected || standby {
            owed.push(format!(
                "{id}: {status}, protected {protected}, standby {standby}"
            ));
        }
        if sim.marks(id).contains_key(OWES_ATTRIBUTE) {
            owed.push(format!("{id}: restore record"));
        }
    }
    if let Some(group) = sim.group(GROUP) {
        if !group.suspended.is_empty() || group.owes_tag.is_some() {
            owed.push(format!(
                "{GROUP}: suspended {:?}, tag {:?}",
                group.suspended, group.owes_tag
            ));
        }
    }
    owed
}

fn all() -> Vec<String> {
    (0..INSTANCES).map(|i| format!("i-{i:03}")).collect()
}

/// The changes made once the rollout had halted (in the same instant or later).
fn after_halt(console: &Recorder, changes: Vec<(Instant, String)>) -> Vec<String> {
    changes
        .into_iter()
        .filter(|(at, _)| console.halted_at.is_some_and(|halted| *at >= halted))
        .map(|(_, change)| change)
        .collect()
}

struct Cell {
    scenario: Scenario,
    method: &'static str,
    from_call: usize,
    hit: bool,
    code: i32,
    owed_after_fault: usize,
    /// Changed after the fault was hit (the run may ride through some faults).
    changed_after_fault: Vec<String>,
    /// Changed after the rollout halted: must be nothing.
    changed_after_halt: Vec<String>,
    resumed: i32,
}

/// Where a cell's two runs keep their journal, on one clock.
struct Bench {
    clock: SimClock,
    store: JournalStore,
    _dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        Bench {
            clock: SimClock::starting_at(
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            ),
            store: JournalStore::new(dir.path().join("state")),
            _dir: dir,
        }
    }

    /// The cutover on `fleet` (the cluster behind its gate), its JSON watched for the
    /// halt: the console, and the exit code or the error.
    async fn first_run<F: Fleet + Sync>(
        &self,
        fleet: &F,
        scenario: Scenario,
    ) -> (Recorder, Result<i32, String>) {
        let mut console = Recorder::default();
        let mut first = plan(&self.store, scenario);
        first.output = OutputFormat::Json;
        let ended = run(
            fleet,
            &self.clock,
            &first,
            &mut console,
            &StopSignal::default(),
        )
        .await
        .map_err(|e| e.to_string());
        (console, ended)
    }

    /// A minute later the operator mends what was wrong and resumes, breaking the lease
    /// a failed run could not release (expired by then), as the refusal says. The resume
    /// must finish with nothing owed and every agent on the endpoints (restarted or
    /// rebooted once, in one run or the other; one already moved is found so by the
    /// resume's probe; a terminated one aside). Its exit code.
    async fn resume_finishes(
        &self,
        sim: &SimFleet,
        scenario: Scenario,
        mend: impl FnOnce(),
        label: &str,
        first: &Recorder,
    ) -> i32 {
        tokio::time::sleep(Duration::from_secs(60)).await;
        mend();
        let mut resume = plan(&self.store, scenario);
        resume.durability.resume = true;
        resume.durability.break_lease = true;
        let mut again = Recorder::default();
        let resumed = run(
            sim,
            &self.clock,
            &resume,
            &mut again,
            &StopSignal::default(),
        )
        .await
        .unwrap_or(exit::USAGE);
        assert_eq!(
            resumed,
            exit::OK,
            "{label}: the resume did not finish\n{}\n{}\n{}",
            first.err,
            again.err,
            again.out
        );
        assert_eq!(owed(sim, &all()), Vec::<String>::new(), "{label}");
        for id in all().iter().filter(|id| !sim.terminated(id)) {
            assert!(
                sim.on_endpoints(id),
                "{label}: {id} is not on the endpoints\n{}",
                again.out
            );
        }
        resumed
    }
}

async fn cell(scenario: Scenario, method: &'static str, from_call: usize) -> Cell {
    let sim = world(scenario);
    let bench = Bench::new();
    let faulty = Faulty::failing(&sim, method, from_call);
    let (console, ended) = bench.first_run(&faulty, scenario).await;
    let code = ended.unwrap_or(exit::USAGE);
    let owed_after_fault = owed(&sim, &all()).len();
    // The error is gone: nothing to mend.
    let label = format!("{method} from call {from_call}");
    let resumed = bench
        .resume_finishes(&sim, scenario, || {}, &label, &console)
        .await;
    Cell {
        scenario,
        method,
        from_call,
        hit: faulty.failed(),
        code,
        owed_after_fault,
        changed_after_fault: faulty
            .changes_after_failure()
            .into_iter()
            .map(|(_, c)| c)
            .collect(),
        changed_after_halt: after_halt(&console, faulty.changes_after_failure()),
        resumed,
    }
}

#[tokio::test(start_paused = true)]
async fn an_aws_error_on_any_call_leaves_nothing_new_touched_and_a_resume_finishes() {
    let mut rows = Vec::new();
    for (scenario, method) in [Scenario::Restarts, Scenario::Reboots]
        .into_iter()
        .flat_map(|s| METHODS.iter().map(move |m| (s, *m)))
    {
        for from_call in [0, 2] {
            let cell = cell(scenario, method, from_call).await;
            // Once the rollout halted, nothing new was started: no restart, no drain, no
            // hold, no reboot (putting back is not listed).
            assert_eq!(
                cell.changed_after_halt,
                Vec::<String>::new(),
                "{method} from call {from_call}"
            );
            rows.push(cell);
        }
    }
    // On a line of its own: the test harness prints the test's name without a newline.
    eprintln!();
    eprintln!(
        "| cluster | fleet call failing | from call | hit | exit | owed after | changes after the fault | after the halt | resumed |"
    );
    eprintln!("|---|---|---:|---|---:|---:|---:|---:|---:|");
    for c in &rows {
        eprintln!(
            "| {:?} | `{}` | {} | {} | {} | {} | {} | {} | {} |",
            c.scenario,
            c.method,
            c.from_call + 1,
            if c.hit { "yes" } else { "no" },
            c.code,
            c.owed_after_fault,
            c.changed_after_fault.len(),
            c.changed_after_halt.len(),
            c.resumed
        );
    }
    // Every call the adapter makes fails in at least one cell: a matrix of calls never
    // made would prove nothing.
    let missed: Vec<&str> = METHODS
        .iter()
        .filter(|m| !rows.iter().any(|c| c.method == **m && c.hit))
        .copied()
        .collect();
    assert_eq!(missed, Vec::<&str>::new(), "fleet calls never failed");
}

/// A fault of the fleet itself (not an AWS error) for the second matrix.
struct Kind {
    name: &'static str,
    scenario: Scenario,
    /// The faults, by instance number.
    faults: &'static [(usize, Fault)],
    /// What else the account does (throttling).
    account: fn(SimFleet) -> SimFleet,
}

/// The instance the faults of the second matrix are on.
const FAULTY: usize = 3;

fn as_it_is(sim: SimFleet) -> SimFleet {
    sim
}

const KINDS: &[Kind] = &[
    Kind {
        name: "throttling storm: 3 calls in a row",
        scenario: Scenario::Restarts,
        faults: &[],
        account: |sim| sim.with_throttling_storm(20, 3),
    },
    Kind {
        name: "throttling storm: 60 calls in a row",
        scenario: Scenario::Restarts,
        faults: &[],
        account: |sim| sim.with_throttling_storm(20, 60),
    },
    Kind {
        name: "every 10th call throttled, all run long",
        scenario: Scenario::Reboots,
        faults: &[],
        account: |sim| sim.with_throttling_every(10),
    },
    Kind {
        name: "SSM offline",
        scenario: Scenario::Restarts,
        faults: &[(FAULTY, Fault::SsmOffline)],
        account: as_it_is,
    },
    Kind {
        name: "command never delivered",
        scenario: Scenario::Restarts,
        faults: &[(FAULTY, Fault::NeverDelivered)],
        account: as_it_is,
    },
    Kind {
        name: "command fails",
        scenario: Scenario::Restarts,
        faults: &[(FAULTY, Fault::CommandFails)],
        account: as_it_is,
    },
    Kind {
        name: "command times out",
        scenario: Scenario::Restarts,
        faults: &[(FAULTY, Fault::CommandTimesOut)],
        account: as_it_is,
    },
    Kind {
        name: "command hangs",
        scenario: Scenario::Restarts,
        faults: &[(FAULTY, Fault::CommandHangs)],
        account: as_it_is,
    },
    Kind {
        name: "agent never reconnects",
        scenario: Scenario::Restarts,
        faults: &[(FAULTY, Fault::NeverReconnects)],
        account: as_it_is,
    },
    Kind {
        name: "agent reconnects 2 minutes late",
        scenario: Scenario::Restarts,
        faults: &[(FAULTY, Fault::SlowReconnect(Duration::from_secs(120)))],
        account: as_it_is,
    },
    Kind {
        name: "agent reconnects 10 minutes late",
        scenario: Scenario::Restarts,
        faults: &[(FAULTY, Fault::SlowReconnect(Duration::from_secs(600)))],
        account: as_it_is,
    },
    Kind {
        name: "agent stays on the public path",
        scenario: Scenario::Restarts,
        faults: &[(FAULTY, Fault::StaysPublic)],
        account: as_it_is,
    },
    Kind {
        name: "path probe hangs",
        scenario: Scenario::Restarts,
        faults: &[(FAULTY, Fault::ProbeHangs)],
        account: as_it_is,
    },
    Kind {
        name: "drain never finishes",
        scenario: Scenario::Reboots,
        faults: &[(FAULTY, Fault::DrainStuck)],
        account: as_it_is,
    },
    Kind {
        name: "reboot never returns",
        scenario: Scenario::Reboots,
        faults: &[(FAULTY, Fault::RebootNeverReturns)],
        account: as_it_is,
    },
    Kind {
        name: "agent never rejoins after the reboot",
        scenario: Scenario::Reboots,
        faults: &[(FAULTY, Fault::AgentNeverRejoins)],
        account: as_it_is,
    },
    Kind {
        name: "status checks fail after the reboot",
        scenario: Scenario::Reboots,
        faults: &[(FAULTY, Fault::StatusChecksFail)],
        account: as_it_is,
    },
    Kind {
        name: "spot interruption while draining",
        scenario: Scenario::Reboots,
        faults: &[(
            FAULTY,
            Fault::TerminatedWhenDrained(Duration::from_secs(20)),
        )],
        account: as_it_is,
    },
];

struct KindCell {
    name: &'static str,
    scenario: Scenario,
    code: i32,
    /// The faulty instance's final state in the first run, with its reason.
    faulty: String,
    owed: usize,
    changed_after_halt: Vec<String>,
    resumed: i32,
}

/// The first run's summary line for `id`: its state and reason.
fn final_state(json_lines: &str, id: &str) -> String {
    json_lines
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["kind"] == "summary")
        .flat_map(|v| v["instances"].as_array().cloned().unwrap_or_default())
        .find(|i| i["instance_id"] == id)
        .map(|i| {
            let state = i["state"].as_str().unwrap_or("?").to_string();
            match i["reason"].as_str() {
                Some(reason) => format!("{state}: {reason}"),
                None => state,
            }
        })
        .unwrap_or_else(|| "not in the summary".into())
}

async fn kind_cell(kind: &Kind) -> KindCell {
    let sim = (kind.account)(fleet(kind.faults));
    let bench = Bench::new();
    let watched = Faulty::watching(&sim);
    let (console, ended) = bench.first_run(&watched, kind.scenario).await;
    let (code, error) = match ended {
        Ok(code) => (code, None),
        Err(error) => (exit::USAGE, Some(error)),
    };
    let owed_after = owed(&sim, &all()).len();
    let mend = || {
        sim.calm();
        for id in all() {
            sim.mend(&id);
        }
    };
    let resumed = bench
        .resume_finishes(&sim, kind.scenario, mend, kind.name, &console)
        .await;
    KindCell {
        name: kind.name,
        scenario: kind.scenario,
        code,
        faulty: error.map_or_else(
            || final_state(&console.out, &format!("i-{FAULTY:03}")),
            |e| format!("error: {e}"),
        ),
        owed: owed_after,
        changed_after_halt: after_halt(&console, watched.changes_after_failure()),
        resumed,
    }
}

#[tokio::test(start_paused = true)]
async fn every_kind_of_fleet_fault_leaves_nothing_owed_and_a_resume_finishes() {
    let mut rows = Vec::new();
    for kind in KINDS {
        let cell = kind_cell(kind).await;
        assert_eq!(
            cell.changed_after_halt,
            Vec::<String>::new(),
            "{}: changed after the halt",
            kind.name
        );
        // AWS answered every call: whatever the fleet did, the run put back all it
        // changed before it ended.
        assert_eq!(cell.owed, 0, "{}: owed after the run", kind.name);
        rows.push(cell);
    }
    eprintln!();
    eprintln!("| fault | cluster | exit | the faulty instance after the run | owed after | after the halt | resumed |");
    eprintln!("|---|---|---:|---|---:|---:|---:|");
    for c in &rows {
        eprintln!(
            "| {} | {:?} | {} | {} | {} | {} | {} |",
            c.name,
            c.scenario,
            c.code,
            c.faulty.replace('|', "\\|"),
            c.owed,
            c.changed_after_halt.len(),
            c.resumed
        );
    }
}

/// With room for one instance away, an agent that never came back after its restart uses
/// up the bound: its reboot comes first (it costs nothing more), then the waves go on. It
/// neither halts the run for good nor lets a second instance go while it is away.
#[tokio::test(start_paused = true)]
async fn an_agent_that_never_came_back_is_rebooted_first_when_it_uses_up_the_bound() {
    let sim = fleet(&[(1, Fault::NeverReconnects)]).with_max_unavailable(1);
    let bench = Bench::new();
    let mut plan = plan(&bench.store, Scenario::Restarts);
    plan.rollout.waves.max_unavailable = MaxUnavailable::Count(1);
    let mut console = Recorder::default();
    let code = run(
        &sim,
        &bench.clock,
        &plan,
        &mut console,
        &StopSignal::default(),
    )
    .await
    .unwrap();
    assert_eq!(code, exit::OK, "{}\n{}", console.err, console.out);
    assert_eq!(sim.reboots_of("i-001"), 1);
    for id in all() {
        assert!(sim.on_endpoints(&id), "{id}\n{}", console.out);
        if id != "i-001" {
            assert_eq!(sim.reboots_of(&id), 0, "{id} was rebooted");
        }
    }
    assert_eq!(owed(&sim, &all()), Vec::<String>::new());
}
