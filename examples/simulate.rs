//! The library API on a simulated cluster: build a `SimFleet`, plan the cutover and run
//! it in virtual time, then read the outcome — what a test of your own rollout settings
//! would do. No AWS account, no network.
//!
//! cargo run --example simulate

use std::time::{Duration, SystemTime};

use privlink_restart::clock::SimClock;
use privlink_restart::cutover::{self, Captured, CutoverPlan, Durability, StopSignal};
use privlink_restart::fleet::sim::{Fault, Latencies, SimFleet, SimInstance};
use privlink_restart::preflight::PreflightOptions;
use privlink_restart::report::OutputFormat;
use privlink_restart::rollout::plan::Selection;
use privlink_restart::rollout::run::RolloutConfig;
use privlink_restart::rollout::waves::{MaxUnavailable, WavePolicy};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // Virtual time: an hour of rollout takes milliseconds.
    tokio::time::pause();
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);

    // Twelve instances over three zones; one reconnects slowly, one is not managed by
    // SSM (it will be drained and rebooted).
    let zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];
    let mut instances: Vec<SimInstance> = (0..12)
        .map(|i| SimInstance::healthy(format!("i-{i:03}"), zones[i % 3]))
        .collect();
    instances[4] = instances[4]
        .clone()
        .with_fault(Fault::SlowReconnect(Duration::from_secs(40)));
    instances[9] = instances[9].clone().with_fault(Fault::SsmOffline);
    let fleet = SimFleet::new(instances, Latencies::default(), start);

    // The plan, as `privlink-restart --cluster sim --yes --max-unavailable 25% --by-az`
    // would make it; everything else at its default.
    let plan = CutoverPlan {
        cluster: fleet.cluster().to_string(),
        preflight: PreflightOptions::default(),
        selection: Selection::default(),
        rollout: RolloutConfig {
            waves: WavePolicy {
                max_unavailable: MaxUnavailable::Percent(25),
                canary: 1,
                by_az: true,
            },
            ..RolloutConfig::default()
        },
        dry_run: false,
        assume_yes: true,
        force: false,
        restart_all: false,
        no_wait: false,
        output: OutputFormat::Human,
        // No journal on disk: the simulated cluster keeps its own records.
        durability: Durability::default(),
    };

    let clock = SimClock::starting_at(start);
    let mut console = Captured::default();
    let began = tokio::time::Instant::now();
    let code = cutover::run(&fleet, &clock, &plan, &mut console, &StopSignal::default())
        .await
        .expect("the simulated fleet answers");
    eprint!("{}", console.err);
    print!("{}", console.out);
    println!(
        "\nexit {code} after {} s of virtual time; restart commands sent: {}",
        began.elapsed().as_secs(),
        fleet.sent_commands().len()
    );
}
