//! Scenario tests: the orchestrator against `SimFleet` in virtual time.

use std::time::{Duration, SystemTime};

use super::*;
use crate::clock::SimClock;
use crate::fleet::sim::{Fault, Latencies, SimFleet, SimInstance};

fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn zones(n: usize) -> Vec<SimInstance> {
    (0..n)
        .map(|i| {
            SimInstance::healthy(
                format!("i-{i:04}"),
                ["eu-west-1a", "eu-west-1b", "eu-west-1c"][i % 3],
            )
        })
        .collect()
}

fn targets(sim: &SimFleet, instances: &[SimInstance]) -> Vec<Target> {
    instances.iter().filter_map(|i| sim.target(&i.id)).collect()
}

/// Runs a rollout on `sim` with a simulated clock; returns the outcome and the events.
async fn roll_on(
    sim: &SimFleet,
    targets: Vec<Target>,
    preset: Vec<(String, InstanceState)>,
    bystanders: Vec<String>,
    config: &RolloutConfig,
) -> (Outcome, Vec<RolloutEvent>) {
    let clock = SimClock::starting_at(start());
    let mut events = Vec::new();
    let input = RolloutInput {
        cluster: "sim".into(),
        run: RunId::new(1_800_000_000, 1),
        targets,
        preset,
        bystanders,
        resumed: false,
        site: sim.probe_site(),
        estimates: Default::default(),
    };
    let outcome = roll(sim, &clock, input, config, &mut |e| events.push(e)).await;
    (outcome, events)
}

/// The SSM path alone (`--strategy restart`): what fails here fails, no reboot follows.
/// The fallback has its own scenarios (`fallback_tests`).
fn config(max_unavailable: MaxUnavailable, canary: usize) -> RolloutConfig {
    RolloutConfig {
        waves: WavePolicy {
            max_unavailable,
            canary,
            by_az: false,
        },
        fallback: FallbackConfig {
            strategy: Strategy::Restart,
            ..FallbackConfig::default()
        },
        ..RolloutConfig::default()
    }
}

/// Runs a rollout over `instances` and returns the outcome, the events and the fleet.
async fn rollout(
    instances: Vec<SimInstance>,
    config: RolloutConfig,
) -> (Outcome, Vec<RolloutEvent>, SimFleet) {
    let total = instances.len();
    let limit = config.waves.max_unavailable.resolve(total);
    let sim = SimFleet::new(instances, Latencies::default(), start()).with_max_unavailable(limit);
    let (outcome, events) = roll_on(&sim, sim.targets(), Vec::new(), Vec::new(), &config).await;
    (outcome, events, sim)
}

#[tokio::test(start_paused = true)]
async fn healthy_fleets_are_restarted_once_each_and_proven() {
    for n in [1, 10, 1000] {
        let instances = zones(n);
        let (outcome, events, sim) =
            rollout(instances.clone(), config(MaxUnavailable::Percent(10), 1)).await;
        assert_eq!(outcome.halted, None, "{n}");
        assert_eq!(
            outcome.count("done"),
            n,
            "{n}: {:?}",
            outcome.states.values().find(|s| s.name() != "done")
        );
        for instance in &instances {
            assert_eq!(sim.restarts_sent(&instance.id), 1, "{}", instance.id);
        }
        let done_events = events
            .iter()
            .filter(|e| {
                matches!(e, RolloutEvent::StateChanged { state, .. }
                    if matches!(**state, InstanceState::Done { .. }))
            })
            .count();
        assert_eq!(done_events, n);
        let requests: u64 = sim.request_counts().values().sum();
        eprintln!(
            "{n} instances: {} waves, {requests} requests",
            outcome.waves
        );
    }
}

#[tokio::test(start_paused = true)]
async fn waves_never_exceed_the_bound_and_the_canary_goes_alone() {
    let (outcome, _, sim) = rollout(zones(25), config(MaxUnavailable::Count(4), 1)).await;
    assert_eq!(outcome.count("done"), 25);
    let commands = sim.sent_commands();
    assert_eq!(commands[0].len(), 1, "canary alone");
    assert!(commands.iter().all(|c| c.len() <= 4), "{commands:?}");
    // 1 canary + ceil(24 / 4) waves.
    assert_eq!(outcome.waves, 7);
}

#[tokio::test(start_paused = true)]
async fn a_failed_canary_halts_before_anything_else_is_touched() {
    let mut instances = zones(10);
    instances[0] = instances[0].clone().with_fault(Fault::CommandFails);
    let (outcome, events, sim) =
        rollout(instances.clone(), config(MaxUnavailable::Count(3), 1)).await;
    assert!(
        outcome.halted.as_deref().unwrap().contains("canary"),
        "{:?}",
        outcome.halted
    );
    assert_eq!(outcome.count("failed"), 1);
    assert_eq!(outcome.count("pending"), 9);
    assert_eq!(sim.sent_commands().len(), 1);
    assert!(instances[1..].iter().all(|i| sim.restarts_sent(&i.id) == 0));
    assert!(matches!(events.last(), Some(RolloutEvent::Halted { .. })));
    let Some(InstanceState::Failed { reason }) = outcome.states.get("i-0000") else {
        panic!()
    };
    assert!(
        reason.starts_with("needs reboot:") && reason.contains("restart-command-failed"),
        "{reason}"
    );
}

#[tokio::test(start_paused = true)]
async fn max_failures_halts_and_no_new_instance_is_touched_after() {
    let mut instances = zones(12);
    for i in [2, 3] {
        instances[i] = instances[i].clone().with_fault(Fault::NeverReconnects);
    }
    let mut config = config(MaxUnavailable::Count(2), 1);
    config.max_failures = 1;
    config.agent_timeout = Duration::from_secs(60);
    let (outcome, _, sim) = rollout(instances.clone(), config).await;
    assert!(
        outcome
            .halted
            .as_deref()
            .unwrap()
            .contains("--max-failures 1"),
        "{:?}",
        outcome.halted
    );
    assert_eq!(outcome.count("failed"), 2);
    let untouched: Vec<&SimInstance> = instances
        .iter()
        .filter(|i| sim.restarts_sent(&i.id) == 0)
        .collect();
    assert_eq!(untouched.len(), outcome.count("pending"));
    assert!(outcome.count("pending") > 0);
}

#[tokio::test(start_paused = true)]
async fn slow_reconnects_pass_within_the_timeout_and_fail_beyond_it() {
    let instances = vec![
        SimInstance::healthy("i-slow", "a")
            .with_fault(Fault::SlowReconnect(Duration::from_secs(40))),
        SimInstance::healthy("i-too-slow", "a")
            .with_fault(Fault::SlowReconnect(Duration::from_secs(400))),
    ];
    let mut config = config(MaxUnavailable::Count(2), 0);
    config.agent_timeout = Duration::from_secs(120);
    config.max_failures = 5;
    let (outcome, _, _) = rollout(instances, config).await;
    assert!(
        matches!(outcome.states["i-slow"], InstanceState::Done { .. }),
        "{:?}",
        outcome.states["i-slow"]
    );
    let InstanceState::Failed { reason } = &outcome.states["i-too-slow"] else {
        panic!("{:?}", outcome.states)
    };
    assert!(reason.contains("acs-not-connected"), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn a_restart_too_fast_for_ecs_to_notice_still_counts() {
    let instances = vec![SimInstance::healthy("i-fast", "a").with_fault(Fault::FastRestart)];
    let (outcome, _, _) = rollout(instances, config(MaxUnavailable::Count(1), 1)).await;
    assert!(matches!(
        outcome.states["i-fast"],
        InstanceState::Done { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_hung_command_is_cancelled_before_the_instance_is_given_up() {
    let instances = vec![SimInstance::healthy("i-hung", "a").with_fault(Fault::CommandHangs)];
    let (outcome, _, sim) = rollout(instances, config(MaxUnavailable::Count(1), 0)).await;
    let InstanceState::Failed { reason } = &outcome.states["i-hung"] else {
        panic!()
    };
    assert!(reason.contains("cancelled"), "{reason}");
    assert_eq!(sim.request_counts()["ssm:CancelCommand"], 1);
}

#[tokio::test(start_paused = true)]
async fn an_instance_ssm_refuses_fails_and_the_rest_of_its_batch_goes_on() {
    let instances = vec![
        SimInstance::healthy("i-offline", "a").with_fault(Fault::SsmOffline),
        SimInstance::healthy("i-ok", "a"),
    ];
    let mut config = config(MaxUnavailable::Count(2), 0);
    config.max_failures = 1;
    let (outcome, _, _) = rollout(instances, config).await;
    let InstanceState::Failed { reason } = &outcome.states["i-offline"] else {
        panic!()
    };
    assert!(reason.contains("SSM refuses commands"), "{reason}");
    assert!(
        matches!(outcome.states["i-ok"], InstanceState::Done { .. }),
        "the rest of the batch goes on"
    );
}

#[tokio::test(start_paused = true)]
async fn instances_that_leave_are_gone_not_failed() {
    let instances = vec![
        SimInstance::healthy("i-0", "a"),
        SimInstance::healthy("i-spot", "a")
            .with_fault(Fault::TerminatedAfter(Duration::from_secs(4))),
        SimInstance::healthy("i-early", "a").with_fault(Fault::TerminatedAfter(Duration::ZERO)),
    ];
    let (outcome, _, sim) = rollout(instances, config(MaxUnavailable::Count(2), 0)).await;
    assert_eq!(outcome.halted, None);
    assert!(
        matches!(outcome.states["i-spot"], InstanceState::Gone { .. }),
        "{:?}",
        outcome.states["i-spot"]
    );
    assert!(matches!(
        outcome.states["i-early"],
        InstanceState::Gone { .. }
    ));
    assert_eq!(
        sim.restarts_sent("i-early"),
        0,
        "gone before its wave: never sent"
    );
}

#[tokio::test(start_paused = true)]
async fn by_az_keeps_every_command_in_one_zone() {
    let instances = zones(18);
    let mut config = config(MaxUnavailable::Count(4), 1);
    config.waves.by_az = true;
    let (outcome, _, sim) = rollout(instances.clone(), config).await;
    assert_eq!(outcome.count("done"), 18);
    let zone_of = |id: &String| {
        instances
            .iter()
            .find(|i| &i.id == id)
            .unwrap()
            .availability_zone
            .clone()
    };
    for command in sim.sent_commands() {
        let zones: BTreeSet<String> = command.iter().map(zone_of).collect();
        assert_eq!(zones.len(), 1, "{command:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn throttling_is_absorbed() {
    let instances = zones(30);
    let limit = 5;
    let sim = SimFleet::new(instances.clone(), Latencies::default(), start())
        .with_max_unavailable(limit)
        .with_throttling_every(4);
    let (outcome, _) = roll_on(
        &sim,
        sim.targets(),
        Vec::new(),
        Vec::new(),
        &config(MaxUnavailable::Count(5), 1),
    )
    .await;
    assert_eq!(outcome.halted, None);
    assert_eq!(outcome.count("done"), 30);
}

#[tokio::test(start_paused = true)]
async fn docker_method_is_refused_on_a_supervised_host() {
    let mut config = config(MaxUnavailable::Count(1), 1);
    config.method = RestartMethod::Docker;
    let (outcome, _, _) = rollout(vec![SimInstance::healthy("i-1", "a")], config).await;
    let InstanceState::Failed { reason } = &outcome.states["i-1"] else {
        panic!()
    };
    assert!(
        reason.contains("docker-restart-on-supervised-host"),
        "{reason}"
    );
}

#[tokio::test(start_paused = true)]
async fn preset_instances_are_reported_and_never_touched() {
    let instances = zones(3);
    let sim = SimFleet::new(instances.clone(), Latencies::default(), start());
    let preset = vec![(
        "i-0002".to_string(),
        InstanceState::Skipped {
            reason: "DRAINING before the run".into(),
        },
    )];
    let config = config(MaxUnavailable::Count(1), 1);
    let (outcome, events) = roll_on(
        &sim,
        targets(&sim, &instances[..2]),
        preset,
        Vec::new(),
        &config,
    )
    .await;
    assert_eq!(outcome.count("done"), 2);
    assert_eq!(outcome.count("skipped"), 1);
    assert_eq!(sim.restarts_sent("i-0002"), 0);
    assert!(
        matches!(&events[0], RolloutEvent::StateChanged { instance_id, .. } if instance_id == "i-0002")
    );
}

#[tokio::test(start_paused = true)]
async fn event_times_come_from_the_clock() {
    let (_, events, _) = rollout(zones(2), config(MaxUnavailable::Count(1), 1)).await;
    let times: Vec<i64> = events
        .iter()
        .map(|e| match e {
            RolloutEvent::WaveStarted { at, .. }
            | RolloutEvent::StateChanged { at, .. }
            | RolloutEvent::Notice { at, .. }
            | RolloutEvent::Verified { at, .. }
            | RolloutEvent::Halted { at, .. } => *at,
        })
        .collect();
    assert_eq!(times[0], 1_800_000_000);
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    assert!(
        *times.last().unwrap() > 1_800_000_000 + 10,
        "restarts take virtual time: {times:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn evidence_cut_off_by_the_listing_is_read_whole() {
    let instances = vec![SimInstance::healthy("i-noisy", "a").with_fault(Fault::NoisyOutput)];
    let (outcome, _, sim) = rollout(instances, config(MaxUnavailable::Count(1), 1)).await;
    assert!(
        matches!(outcome.states["i-noisy"], InstanceState::Done { .. }),
        "{:?}",
        outcome.states
    );
    assert_eq!(sim.request_counts()["ssm:GetCommandInvocation"], 1);
}

#[tokio::test(start_paused = true)]
async fn a_moving_version_counter_without_a_restart_does_not_count() {
    // Tasks churn (the version moves) and ECS shows the agent connected, but the agent
    // never restarted: the instance's evidence decides, and it fails.
    let instances = vec![SimInstance::healthy("i-stale", "a")
        .with_fault(Fault::TaskChurn)
        .with_fault(Fault::RestartIneffective)];
    let (outcome, _, sim) = rollout(instances, config(MaxUnavailable::Count(1), 1)).await;
    let InstanceState::Failed { reason } = &outcome.states["i-stale"] else {
        panic!("{:?}", outcome.states)
    };
    assert!(reason.contains("did not restart"), "{reason}");
    let arn = sim.container_instance_arn("i-stale");
    let state = sim.agent_states("sim", &[arn]).await.unwrap();
    assert!(
        state[0].connected && state[0].version > Some(2),
        "the counter moved: {state:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn undelivered_commands_fail_with_ssm_s_reason() {
    let instances = vec![SimInstance::healthy("i-deaf", "a").with_fault(Fault::NeverDelivered)];
    let (outcome, _, _) = rollout(instances, config(MaxUnavailable::Count(1), 0)).await;
    let InstanceState::Failed { reason } = &outcome.states["i-deaf"] else {
        panic!()
    };
    assert!(reason.contains("DeliveryTimedOut"), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn an_instance_set_draining_during_the_run_is_left_alone() {
    let instances = vec![
        SimInstance::healthy("i-0", "a"),
        SimInstance::healthy("i-1", "a").with_fault(Fault::DrainedAfter(Duration::from_secs(1))),
    ];
    let (outcome, _, sim) = rollout(instances, config(MaxUnavailable::Count(1), 1)).await;
    let InstanceState::Skipped { reason } = &outcome.states["i-1"] else {
        panic!("{:?}", outcome.states)
    };
    assert!(reason.contains("DRAINING"), "{reason}");
    assert_eq!(sim.restarts_sent("i-1"), 0);
}

#[tokio::test(start_paused = true)]
async fn losing_aws_mid_wave_fails_what_was_in_flight_and_starts_nothing_more() {
    let instances = zones(6);
    // The fleet stops answering after a few calls, mid-wave.
    let sim = SimFleet::new(instances.clone(), Latencies::default(), start()).with_outage_after(4);
    let (outcome, _) = roll_on(
        &sim,
        sim.targets(),
        Vec::new(),
        Vec::new(),
        &config(MaxUnavailable::Count(2), 1),
    )
    .await;
    assert!(outcome.aws_error, "{:?}", outcome.halted);
    assert!(outcome.halted.as_deref().unwrap().contains("AWS error"));
    assert!(
        outcome.states.values().all(|s| !s.is_in_flight()),
        "nothing left in flight: {:?}",
        outcome.states
    );
    let touched = instances
        .iter()
        .filter(|i| sim.restarts_sent(&i.id) > 0)
        .count();
    assert_eq!(outcome.count("pending"), instances.len() - touched);
}

#[tokio::test(start_paused = true)]
async fn disconnected_agents_outside_the_rollout_use_up_the_bound() {
    let mut instances = zones(5);
    instances[4] = instances[4].clone().with_fault(Fault::AgentDown);
    let sim = SimFleet::new(instances.clone(), Latencies::default(), start());
    let bystander = vec![sim.container_instance_arn(&instances[4].id)];
    let config = config(MaxUnavailable::Count(2), 0);
    let (outcome, _) = roll_on(
        &sim,
        targets(&sim, &instances[..4]),
        Vec::new(),
        bystander,
        &config,
    )
    .await;
    assert_eq!(outcome.count("done"), 4);
    assert!(
        sim.sent_commands().iter().all(|c| c.len() == 1),
        "room for one only: {:?}",
        sim.sent_commands()
    );
}

#[tokio::test(start_paused = true)]
async fn waves_are_spaced_by_the_wave_pause() {
    let mut config = config(MaxUnavailable::Count(1), 1);
    config.wave_pause = Duration::from_secs(120);
    let (outcome, events, _) = rollout(zones(3), config).await;
    assert_eq!(outcome.count("done"), 3);
    let starts: Vec<i64> = events
        .iter()
        .filter_map(|e| match e {
            RolloutEvent::WaveStarted { at, .. } => Some(*at),
            _ => None,
        })
        .collect();
    assert_eq!(starts.len(), 3);
    assert!(starts.windows(2).all(|w| w[1] - w[0] >= 120), "{starts:?}");
}

mod fallback;
mod verify;
mod window;

#[tokio::test(start_paused = true)]
async fn the_waves_run_are_the_waves_planned() {
    for by_az in [false, true] {
        let mut config = config(MaxUnavailable::Count(4), 2);
        config.waves.by_az = by_az;
        let (outcome, events, sim) = rollout(zones(23), config.clone()).await;
        assert_eq!(outcome.count("done"), 23);
        let candidates: Vec<Candidate> = sim
            .targets()
            .into_iter()
            .map(|t| Candidate {
                instance_id: t.instance_id,
                availability_zone: t.availability_zone,
            })
            .collect();
        let planned: Vec<Vec<String>> = plan_waves(&candidates, config.waves)
            .into_iter()
            .map(|w| w.instance_ids)
            .collect();
        let run: Vec<Vec<String>> = events
            .iter()
            .filter_map(|e| match e {
                RolloutEvent::WaveStarted { instance_ids, .. } => Some(instance_ids.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(run, planned, "by_az {by_az}");
    }
}
