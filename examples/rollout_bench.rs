//! Rollout benchmark on `SimFleet` in virtual time, hosts of varying speed: makespan
//! against its lower bound, AWS
//! requests per instance and peak memory, at 100, 1,000 and 5,000 instances, beside the
//! one-at-a-time manual procedure on the same fleet; the rollout keeps its journal on disk
//! the way the cutover does (written before every action), and the cost of that is
//! measured in real time. Prints a Markdown table. A second table is the drain-and-reboot
//! path (`--strategy reboot`, one at a time) at 10 and 100 instances, against its lower
//! bound: per instance, a task moved, its replacement started, the reboot and the status
//! checks. A third is `--dry-run`'s rehearsal: its wall time (what the operator waits for
//! the estimate) and its estimate beside the first table's makespan.
//!
//! cargo run --release --example rollout_bench [-- reboot|rehearsal]   (only that table)

use std::time::{Duration, SystemTime};

use privlink_restart::clock::SimClock;
use privlink_restart::fleet::sim::{
    FallbackLatencies, Latencies, SimFleet, SimGroup, SimInstance, SimService,
};
use privlink_restart::fleet::Fleet;
use privlink_restart::journal::marks::RunId;
use privlink_restart::journal::{InstanceEntry, Journal, JournalKey, JournalStore};
use privlink_restart::rollout::run::{
    roll, FallbackConfig, Hooks, RolloutConfig, RolloutEvent, RolloutInput, Strategy,
};
use privlink_restart::rollout::state::InstanceState;
use privlink_restart::rollout::waves::{plan_waves, Candidate, MaxUnavailable, WavePolicy};

/// Hosts: every one at the fleet's latencies, or (`Hosts::Varied`) each scaled by its
/// own pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hosts {
    Uniform,
    Varied,
}

/// Instances whose latencies vary from 0.7x to 1.6x the fleet's, from a fixed seed so
/// every run measures the same fleet (or all at 1x).
fn instances(n: usize, hosts: Hosts) -> Vec<SimInstance> {
    let zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];
    let mut seed: u64 = 0x5eed;
    (0..n)
        .map(|i| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let unit = (seed >> 11) as f64 / (1u64 << 53) as f64;
            let pace = match hosts {
                Hosts::Uniform => 1.0,
                Hosts::Varied => 0.7 + 0.9 * unit,
            };
            SimInstance::healthy(format!("i-{i:05}"), zones[i % 3]).with_pace(pace)
        })
        .collect()
}

/// Resets the peak resident memory this process reports (Linux: `clear_refs` 5), so
/// the next [`peak_rss_mib`] is the peak of what runs in between.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory of this process since the last reset, in MiB (Linux).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

struct Run {
    makespan: Duration,
    requests: u64,
    done: usize,
    journal: JournalCost,
}

/// What keeping the journal cost: writes, the last file's size, real time spent writing.
#[derive(Default)]
struct JournalCost {
    saves: usize,
    bytes: u64,
    spent: Duration,
}

/// The cutover's journal keeping, measured.
struct Journaling {
    store: JournalStore,
    journal: Journal,
    dirty: bool,
    cost: JournalCost,
}

impl Hooks for Journaling {
    fn event(&mut self, event: RolloutEvent) {
        match event {
            RolloutEvent::StateChanged {
                instance_id,
                state,
                at,
            } => {
                self.journal.instances.insert(
                    instance_id,
                    InstanceEntry {
                        container_instance_arn: String::new(),
                        state: *state,
                        at,
                    },
                );
                self.dirty = true;
            }
            RolloutEvent::Verified {
                instance_id,
                verdict,
                ..
            } => {
                self.journal.verdicts.insert(instance_id, *verdict);
                self.dirty = true;
            }
            _ => {}
        }
    }

    fn checkpoint(&mut self) -> Result<(), String> {
        if std::mem::take(&mut self.dirty) {
            let began = std::time::Instant::now();
            self.store.save(&self.journal).map_err(|e| e.to_string())?;
            self.cost.spent += began.elapsed();
            self.cost.saves += 1;
        }
        Ok(())
    }
}

async fn run(
    n: usize,
    hosts: Hosts,
    policy: WavePolicy,
    latencies: Latencies,
    journal: bool,
) -> Run {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let fleet_instances = instances(n, hosts);
    let sim = SimFleet::new(fleet_instances, latencies, start);
    let clock = SimClock::starting_at(start);
    let targets = sim.targets();
    let config = RolloutConfig {
        waves: policy,
        ..RolloutConfig::default()
    };
    let began = tokio::time::Instant::now();
    let input = RolloutInput {
        cluster: sim.cluster().to_string(),
        run: RunId::new(1_800_000_000, 1),
        targets,
        preset: Vec::new(),
        bystanders: Vec::new(),
        resumed: false,
        site: sim.probe_site(),
        estimates: Default::default(),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let key = JournalKey {
        account: "123456789012".into(),
        region: "eu-west-1".into(),
        cluster: sim.cluster().to_string(),
    };
    let mut hooks = Journaling {
        store: JournalStore::new(dir.path()),
        journal: Journal::new(RunId::new(1_800_000_000, 1), &key, 1_800_000_000),
        dirty: false,
        cost: JournalCost::default(),
    };
    let outcome = if journal {
        roll(&sim, &clock, input, &config, &mut hooks).await
    } else {
        roll(&sim, &clock, input, &config, &mut |_| {}).await
    };
    let mut journal = hooks.cost;
    journal.bytes = std::fs::metadata(hooks.store.path(&key)).map_or(0, |m| m.len());
    Run {
        makespan: began.elapsed(),
        requests: sim.request_counts().values().sum(),
        done: outcome.count("done"),
        journal,
    }
}

/// The drain-and-reboot path: every instance of a group rebooted one at a time, each
/// with one task of a service to move.
async fn reboot_path(n: usize) -> (Duration, u64, usize) {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let fleet: Vec<SimInstance> = (0..n)
        .map(|i| {
            SimInstance::healthy(format!("i-{i:05}"), ["eu-west-1a", "eu-west-1b"][i % 2])
                .in_group("nodes")
        })
        .collect();
    let ids: Vec<String> = fleet.iter().map(|i| i.id.clone()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let sim = SimFleet::new(fleet, Latencies::default(), start)
        .with_group("nodes", SimGroup::default())
        .with_service(SimService::new("web"), &ids)
        .with_max_reboots(1);
    let clock = SimClock::starting_at(start);
    let targets = sim.targets();
    let preset = targets
        .iter()
        .map(|t| {
            let state = InstanceState::NeedsReboot {
                reason: "--strategy reboot".into(),
            };
            (t.instance_id.clone(), state)
        })
        .collect();
    let config = RolloutConfig {
        fallback: FallbackConfig {
            strategy: Strategy::Reboot,
            ..FallbackConfig::default()
        },
        ..RolloutConfig::default()
    };
    let input = RolloutInput {
        cluster: sim.cluster().to_string(),
        run: RunId::new(1_800_000_000, 1),
        targets,
        preset,
        bystanders: Vec::new(),
        resumed: false,
        site: sim.probe_site(),
        estimates: Default::default(),
    };
    let began = tokio::time::Instant::now();
    let outcome = roll(&sim, &clock, input, &config, &mut |_| {}).await;
    (
        began.elapsed(),
        sim.request_counts().values().sum(),
        outcome.count("done"),
    )
}

async fn reboot_table() {
    let world = FallbackLatencies::default();
    let per_instance = world.task_move + world.task_start + world.reboot_up + world.status_lag;
    println!("| instances (reboot path) | makespan | lower bound | ratio | requests/instance |");
    println!("|---:|---:|---:|---:|---:|");
    for n in [10usize, 100] {
        let (makespan, requests, done) = reboot_path(n).await;
        assert_eq!(done, n, "every instance must end done");
        let bound = per_instance * n as u32;
        println!(
            "| {n} | {:.0} s | {:.0} s | {:.2} | {:.1} |",
            makespan.as_secs_f64(),
            bound.as_secs_f64(),
            makespan.as_secs_f64() / bound.as_secs_f64(),
            requests as f64 / n as f64,
        );
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    tokio::time::pause();
    if std::env::args().any(|a| a == "reboot") {
        reboot_table().await;
        return;
    }
    if std::env::args().any(|a| a == "rehearsal") {
        rehearsal_table().await;
        return;
    }
    if std::env::args().any(|a| a == "uniform") {
        uniform_table().await;
        return;
    }
    let latencies = Latencies::default();
    let per_host = per_host(latencies);
    println!(
        "| instances | waves | makespan | bound, mean host | ratio | bound, slowest host per wave | ratio | \
         requests/instance | one at a time | journal writes | journal size | time writing it | peak RSS |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in [100usize, 1000, 5000] {
        let (policy, waves) = ten_percent(n);
        // The bound with the mean host (pace 0.7 + 0.9 / 2 = 1.15)...
        let bound = per_host.mul_f64(1.15) * waves as u32;
        // ...and the bound no wave-by-wave rollout can beat: each wave lasts as long as
        // its slowest host.
        let fleet = instances(n, Hosts::Varied);
        let candidates: Vec<Candidate> = fleet
            .iter()
            .map(|i| Candidate {
                instance_id: i.id.clone(),
                availability_zone: i.availability_zone.clone(),
            })
            .collect();
        let pace = |id: &str| fleet.iter().find(|i| i.id == id).map_or(1.0, |i| i.pace);
        let slowest_bound: Duration = plan_waves(&candidates, policy)
            .iter()
            .map(|w| per_host.mul_f64(w.instance_ids.iter().map(|id| pace(id)).fold(0.0, f64::max)))
            .sum();
        reset_peak_rss();
        let rolled = run(n, Hosts::Varied, policy, latencies, true).await;
        // The rollout's own peak (with the simulated fleet it runs against), before the
        // one-at-a-time run of the same fleet.
        let peak = peak_rss_mib();
        assert_eq!(rolled.done, n, "every instance must end done");
        let manual = run(
            n,
            Hosts::Varied,
            WavePolicy {
                max_unavailable: MaxUnavailable::Count(1),
                canary: 0,
                by_az: false,
            },
            latencies,
            false,
        )
        .await;
        println!(
            "| {n} | {waves} | {:.0} s | {:.0} s | {:.2} | {:.0} s | {:.2} | {:.2} | {:.0} s ({:.0}× longer) | {} | {:.0} KiB | {:.2} s | {:.1} MiB |",
            rolled.makespan.as_secs_f64(),
            bound.as_secs_f64(),
            rolled.makespan.as_secs_f64() / bound.as_secs_f64(),
            slowest_bound.as_secs_f64(),
            rolled.makespan.as_secs_f64() / slowest_bound.as_secs_f64(),
            rolled.requests as f64 / n as f64,
            manual.makespan.as_secs_f64(),
            manual.makespan.as_secs_f64() / rolled.makespan.as_secs_f64(),
            rolled.journal.saves,
            rolled.journal.bytes as f64 / 1024.0,
            rolled.journal.spent.as_secs_f64(),
            peak,
        );
    }
    println!();
    uniform_table().await;
    println!();
    reboot_table().await;
    println!();
    rehearsal_table().await;
}

/// Per host: the restart (delivered, the agent back, its ACS connection), then the path
/// probe (delivered, its record reported).
fn per_host(latencies: Latencies) -> Duration {
    latencies.delivery
        + latencies.restart
        + latencies.reconnect
        + latencies.delivery
        + latencies.report
}

/// The default waves, 10% at once after a canary of one, and how many there are for `n`.
fn ten_percent(n: usize) -> (WavePolicy, usize) {
    let policy = WavePolicy {
        max_unavailable: MaxUnavailable::Percent(10),
        canary: 1,
        by_az: false,
    };
    let width = policy.max_unavailable.resolve(n);
    (policy, 1 + (n - 1).div_ceil(width))
}

/// The cutover issue's bound as written, `(1 + ceil((N − canary) / wave)) × (delivery +
/// restart + reconnect + probe)`, holds for hosts that all take the same time: the same
/// rollout on such a fleet.
async fn uniform_table() {
    let latencies = Latencies::default();
    let per_host = per_host(latencies);
    println!(
        "| instances, every host alike | waves | makespan | bound | ratio | requests/instance |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for n in [100usize, 1000, 5000] {
        let (policy, waves) = ten_percent(n);
        let bound = per_host * waves as u32;
        let rolled = run(n, Hosts::Uniform, policy, latencies, false).await;
        assert_eq!(rolled.done, n, "every instance must end done");
        println!(
            "| {n} | {waves} | {:.0} s | {:.0} s | {:.2} | {:.2} |",
            rolled.makespan.as_secs_f64(),
            bound.as_secs_f64(),
            rolled.makespan.as_secs_f64() / bound.as_secs_f64(),
            rolled.requests as f64 / n as f64,
        );
    }
}

/// `--dry-run`'s rehearsal at 100, 1,000 and 5,000 instances: the wall time it takes
/// (in this build) and the makespan it estimates.
async fn rehearsal_table() {
    use privlink_restart::fleet::sim::Blueprint;
    use privlink_restart::rollout::rehearse::{rehearse, Script};
    let start = || SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    println!("| instances | estimated makespan | wall time of the rehearsal |");
    println!("|---:|---:|---:|");
    for n in [100usize, 1000, 5000] {
        let sim = SimFleet::new(instances(n, Hosts::Varied), Latencies::default(), start());
        let inventory = sim
            .discover("sim")
            .await
            .expect("the simulated fleet answers");
        let targets = sim.targets();
        let blueprint = Blueprint {
            inventory: &inventory,
            targets: &targets,
            workload: None,
        };
        let script = Script {
            targets: targets.iter().map(|t| t.instance_id.clone()).collect(),
            preset: Vec::new(),
            bystanders: Vec::new(),
        };
        let config = RolloutConfig {
            waves: WavePolicy {
                max_unavailable: MaxUnavailable::Percent(10),
                canary: 1,
                by_az: false,
            },
            ..RolloutConfig::default()
        };
        let began = std::time::Instant::now();
        let rehearsal = rehearse(
            &blueprint,
            &script,
            &config,
            &Default::default(),
            start(),
            0x5eed,
        );
        let wall = began.elapsed();
        assert_eq!(rehearsal.done, n, "{:?}", rehearsal.unfinished);
        println!(
            "| {n} | {:.0} s | {:.2} s |",
            rehearsal.makespan.as_secs_f64(),
            wall.as_secs_f64()
        );
    }
}
