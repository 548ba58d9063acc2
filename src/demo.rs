//! The demo: a simulated cluster and a cutover plan for it, scaled to run faster than
//! real time, so a newcomer sees the whole flow without an AWS account.

use std::time::{Duration, SystemTime};

use crate::cutover::{CutoverPlan, Durability};
use crate::fleet::sim::{
    FallbackLatencies, Fault, Latencies, SimFleet, SimGroup, SimInstance, SimService,
};
use crate::preflight::PreflightOptions;
use crate::report::OutputFormat;
use crate::rollout::plan::Selection;
use crate::rollout::run::{FallbackConfig, RolloutConfig};
use crate::rollout::waves::{MaxUnavailable, WavePolicy};

/// What the demo shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemoSettings {
    pub instances: usize,
    /// How much faster than real time.
    pub speed: f64,
    /// Add an instance SSM cannot reach, a slow reconnect, a spot interruption and an
    /// agent already on the endpoints.
    pub faults: bool,
}

/// The simulated cluster and the plan to run on it; `start` is the wall-clock start.
pub fn demo(
    settings: DemoSettings,
    output: OutputFormat,
    start: SystemTime,
) -> (SimFleet, CutoverPlan) {
    let scale = |d: Duration| d.div_f64(settings.speed);
    let zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];
    let mut instances: Vec<SimInstance> = (0..settings.instances)
        .map(|i| {
            SimInstance::healthy(format!("i-0demo{i:05}"), zones[i % zones.len()])
                .in_group("demo-nodes")
        })
        .collect();
    if settings.faults {
        let mut fault = |index: usize, fault: Fault| {
            if let Some(instance) = instances.get_mut(index) {
                instance.faults.push(fault);
            }
        };
        fault(3, Fault::SsmOffline);
        fault(7, Fault::SlowReconnect(scale(Duration::from_secs(40))));
        fault(11, Fault::TerminatedAfter(scale(Duration::from_secs(45))));
        // Restarted by hand after the endpoints came: the probe finds it, it is skipped.
        if let Some(instance) = instances.get_mut(5) {
            instance.starts_private = true;
        }
    }
    let defaults = Latencies::default();
    let latencies = Latencies {
        delivery: scale(defaults.delivery),
        restart: scale(defaults.restart),
        reconnect: scale(defaults.reconnect),
        report: scale(defaults.report),
    };
    let ids: Vec<String> = instances.iter().map(|i| i.id.clone()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let world = FallbackLatencies::default();
    let sim = SimFleet::new(instances, latencies, start)
        .with_fallback_latencies(FallbackLatencies {
            task_move: scale(world.task_move),
            task_start: scale(world.task_start),
            reboot_down: scale(world.reboot_down),
            reboot_up: scale(world.reboot_up),
            status_lag: scale(world.status_lag),
            scale_in_after: scale(world.scale_in_after),
        })
        .with_group("demo-nodes", SimGroup::default())
        // A web service with a task on every instance: a drain has something to move.
        .with_service(SimService::new("web"), &ids);
    let defaults = RolloutConfig::default();
    let plan = CutoverPlan {
        cluster: sim.cluster().to_string(),
        preflight: PreflightOptions::default(),
        selection: Selection::default(),
        rollout: RolloutConfig {
            waves: WavePolicy {
                max_unavailable: MaxUnavailable::Percent(20),
                canary: 1,
                by_az: false,
            },
            max_failures: 1,
            agent_timeout: scale(defaults.agent_timeout),
            delivery_timeout: scale(defaults.delivery_timeout),
            poll_interval: scale(defaults.poll_interval),
            fallback: FallbackConfig {
                drain_timeout: scale(defaults.fallback.drain_timeout),
                reboot_timeout: scale(defaults.fallback.reboot_timeout),
                drain_poll: scale(defaults.fallback.drain_poll),
                rejoin_poll: scale(defaults.fallback.rejoin_poll),
                ..defaults.fallback.clone()
            },
            ..defaults
        },
        dry_run: false,
        assume_yes: true,
        force: false,
        restart_all: false,
        no_wait: false,
        output,
        // The simulated cluster keeps its own lease and records; no journal on disk.
        durability: Durability::default(),
    };
    (sim, plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimClock;
    use crate::cutover::run;
    use crate::cutover::Captured;
    use crate::exit;

    /// Runs the demo's plan (tuned by `tune`) on its cluster; the exit code and stdout.
    async fn run_demo(
        settings: DemoSettings,
        output: OutputFormat,
        tune: impl Fn(&mut CutoverPlan),
    ) -> (i32, String) {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let (sim, mut plan) = demo(settings, output, start);
        tune(&mut plan);
        let mut console = Captured::default();
        let code = run(
            &sim,
            &SimClock::starting_at(start),
            &plan,
            &mut console,
            &crate::cutover::StopSignal::default(),
        )
        .await
        .unwrap();
        (code, console.out)
    }

    async fn play(faults: bool) -> (i32, String) {
        let settings = DemoSettings {
            instances: 24,
            speed: 10.0,
            faults,
        };
        run_demo(settings, OutputFormat::Human, |_| {}).await
    }

    /// The demo with faults as JSON: the dry run's plan, then the run's events.
    async fn plan_then_run(faults: bool) -> (serde_json::Value, Vec<serde_json::Value>) {
        let settings = DemoSettings {
            instances: 24,
            speed: 10.0,
            faults,
        };
        let mut outputs = Vec::new();
        for dry_run in [true, false] {
            let (_, out) =
                run_demo(settings, OutputFormat::Json, |plan| plan.dry_run = dry_run).await;
            outputs.push(out);
        }
        let plan = serde_json::from_str(outputs[0].trim()).unwrap();
        let events = outputs[1]
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (plan, events)
    }

    #[tokio::test(start_paused = true)]
    async fn the_run_follows_the_waves_the_plan_showed() {
        for faults in [false, true] {
            let (plan, events) = plan_then_run(faults).await;
            let planned: Vec<Vec<String>> = serde_json::from_value(
                plan["waves"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|w| w["instance_ids"].clone())
                    .collect(),
            )
            .unwrap();
            let run: Vec<Vec<String>> = events
                .iter()
                .filter(|e| e["event"] == "wave-started" && e["reboot"] == false)
                .map(|e| serde_json::from_value(e["instance_ids"].clone()).unwrap())
                .collect();
            assert!(planned.len() > 3, "{plan}");
            if faults {
                // An instance away (the spot interruption) narrows the waves after it; the
                // order stays the plan's.
                assert_eq!(run.concat(), planned.concat());
            } else {
                assert_eq!(run, planned);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_plain_demo_moves_every_agent_without_asking() {
        let (code, out) = play(false).await;
        assert_eq!(code, exit::OK, "{out}");
        assert!(out.contains("24 done, 0 failed"), "{out}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_demo_with_faults_shows_a_reboot_a_slow_agent_and_a_departure() {
        let (code, out) = play(true).await;
        assert_eq!(code, exit::OK, "{out}");
        assert!(
            out.contains("22 done, 0 failed, 1 gone, 1 skipped"),
            "{out}"
        );
        let skipped = out
            .lines()
            .find(|l| l.starts_with("i-0demo00005"))
            .unwrap_or_default();
        assert!(
            skipped.contains("skipped") && skipped.contains("already on the endpoints"),
            "{out}"
        );
        let rebooted = out
            .lines()
            .find(|l| l.starts_with("i-0demo00003"))
            .unwrap_or_default();
        assert!(
            rebooted.contains("reboot")
                && rebooted.contains("agent disconnected, then connected again"),
            "{out}"
        );
    }
}
