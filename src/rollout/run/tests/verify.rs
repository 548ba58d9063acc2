//! The path verdict in the rollout, on `SimFleet`: its agents are on the public hosts
//! until restarted or rebooted (the endpoints exist from the start), unless a fault keeps
//! them there.

use super::*;
use crate::fleet::sim::SimGroup;
use crate::rollout::state::Proof;
use crate::verify::{Path, VerifyMode};

fn verified(events: &[RolloutEvent]) -> Vec<(String, Path)> {
    events
        .iter()
        .filter_map(|e| match e {
            RolloutEvent::Verified {
                instance_id,
                verdict,
                ..
            } => Some((instance_id.clone(), verdict.path)),
            _ => None,
        })
        .collect()
}

fn with_mode(mut config: RolloutConfig, mode: Option<VerifyMode>) -> RolloutConfig {
    config.verify = mode;
    config
}

#[tokio::test(start_paused = true)]
async fn each_restarted_agent_is_probed_onto_the_endpoints_before_it_is_done() {
    let (outcome, events, sim) = rollout(zones(6), config(MaxUnavailable::Count(2), 1)).await;
    assert_eq!(outcome.count("done"), 6, "{:?}", outcome.states);
    let verdicts = verified(&events);
    assert_eq!(verdicts.len(), 6);
    assert!(verdicts.iter().all(|(_, p)| *p == Path::Private));
    for (id, verdict) in &outcome.verdicts {
        assert_eq!(verdict.path, Path::Private, "{id}");
        assert!(
            verdict.acs.is_some() && verdict.tcs.is_some(),
            "{verdict:?}"
        );
        assert!(sim.on_endpoints(id));
    }
    // Verifying comes between the restart's proof and done.
    let states: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            RolloutEvent::StateChanged {
                instance_id, state, ..
            } if instance_id == "i-0000" => Some(state.name()),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        ["restarting", "reconnecting", "verifying", "done"],
        "{states:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_canary_still_public_after_its_restart_halts_and_nobody_else_is_touched() {
    let mut instances = zones(6);
    instances[0] = instances[0].clone().with_fault(Fault::StaysPublic);
    let (outcome, _, sim) = rollout(instances, config(MaxUnavailable::Count(2), 1)).await;
    assert_eq!(
        outcome.halted.as_deref(),
        Some("the canary wave (i-0000) failed (1 of 1): nothing else was touched; mend what its detail says, then run again")
    );
    let InstanceState::Failed { reason } = &outcome.states["i-0000"] else {
        panic!("{:?}", outcome.states["i-0000"]);
    };
    assert!(
        reason.starts_with("not on the endpoints after the restart: public: ACS and TCS"),
        "{reason}"
    );
    assert!(
        reason.contains("ecs-t-1.eu-west-1.amazonaws.com"),
        "{reason}"
    );
    assert_eq!(
        sim.sent_commands().len(),
        1,
        "only the canary was restarted"
    );
    assert_eq!(outcome.count("pending"), 5);
}

#[tokio::test(start_paused = true)]
async fn an_agent_behind_a_proxy_fails_with_the_proxy_named_and_the_rollout_goes_on() {
    let mut instances = zones(6);
    instances[4] = instances[4].clone().with_fault(Fault::ProxyInPath);
    let mut config = config(MaxUnavailable::Count(2), 1);
    config.max_failures = 1;
    let (outcome, _, _) = rollout(instances, config).await;
    assert_eq!(outcome.halted, None);
    assert_eq!(outcome.count("done"), 5);
    let InstanceState::Failed { reason } = &outcome.states["i-0004"] else {
        panic!("{:?}", outcome.states["i-0004"]);
    };
    assert!(
        reason.contains("through the proxy (HTTPS_PROXY=http://10.0.32.3:3128)")
            && reason.contains("a restart will not move it"),
        "{reason}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_sees_nothing_is_unknown_and_fails_closed() {
    let mut instances = zones(3);
    instances[1] = instances[1].clone().with_fault(Fault::ProbeBlind);
    let mut config = config(MaxUnavailable::Count(1), 1);
    config.max_failures = 1;
    let (outcome, _, _) = rollout(instances, config).await;
    let InstanceState::Failed { reason } = &outcome.states["i-0001"] else {
        panic!("{:?}", outcome.states["i-0001"]);
    };
    assert!(
        reason.contains("unknown: the probe could not list the agent's connections"),
        "{reason}"
    );
    assert_eq!(outcome.verdicts["i-0001"].path, Path::Unknown);
}

#[tokio::test(start_paused = true)]
async fn under_verify_connected_the_verdict_is_evidence_only() {
    let mut instances = zones(3);
    instances[0] = instances[0].clone().with_fault(Fault::StaysPublic);
    let config = with_mode(
        config(MaxUnavailable::Count(1), 1),
        Some(VerifyMode::Connected),
    );
    let (outcome, events, _) = rollout(instances, config).await;
    assert_eq!(outcome.count("done"), 3, "{:?}", outcome.states);
    assert_eq!(outcome.verdicts["i-0000"].path, Path::Public);
    assert_eq!(verified(&events).len(), 3, "probed all the same");
}

#[tokio::test(start_paused = true)]
async fn under_verify_none_nothing_is_probed() {
    let config = with_mode(config(MaxUnavailable::Count(1), 1), Some(VerifyMode::None));
    let (outcome, events, sim) = rollout(zones(3), config).await;
    assert_eq!(outcome.count("done"), 3);
    assert!(verified(&events).is_empty());
    assert!(outcome.verdicts.is_empty());
    let sends = sim.request_counts()["ssm:SendCommand"];
    assert_eq!(sends as usize, sim.sent_commands().len(), "restarts only");
}

#[tokio::test(start_paused = true)]
async fn a_rebooted_instance_is_probed_where_ssm_reaches_it_and_trusted_where_not() {
    // i-0001's restart fails on the host (SSM reaches it): rebooted, then probed. i-0002
    // is not managed by SSM: rebooted, and done once connected (nothing can probe it).
    let mut instances: Vec<SimInstance> =
        zones(3).into_iter().map(|i| i.in_group("nodes")).collect();
    instances[1] = instances[1].clone().with_fault(Fault::CommandFails);
    instances[2] = instances[2].clone().with_fault(Fault::SsmOffline);
    let sim = SimFleet::new(instances, Latencies::default(), start())
        .with_max_unavailable(1)
        .with_group("nodes", SimGroup::default());
    let targets = sim.targets();
    let preset = vec![(
        "i-0002".to_string(),
        InstanceState::NeedsReboot {
            reason: "SSM does not manage the instance".into(),
        },
    )];
    let mut config = config(MaxUnavailable::Count(1), 1);
    config.fallback.strategy = Strategy::Auto;
    let (outcome, events) = roll_on(&sim, targets, preset, Vec::new(), &config).await;
    for id in ["i-0001", "i-0002"] {
        assert!(
            matches!(
                &outcome.states[id],
                InstanceState::Done {
                    evidence: Proof::Reboot(_)
                }
            ),
            "{id}: {:?}",
            outcome.states[id]
        );
    }
    let verdicts = verified(&events);
    assert!(verdicts.contains(&("i-0001".to_string(), Path::Private)));
    assert!(
        !verdicts.iter().any(|(id, _)| id == "i-0002"),
        "no probe where SSM cannot reach: {verdicts:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_restart_proven_by_an_earlier_run_is_probed_not_sent_again() {
    let sim = SimFleet::new(zones(2), Latencies::default(), start());
    // The earlier run proved i-0000's restart but died before the probe: the agent was in
    // fact restarted, so its probe finds it on the endpoints.
    let earlier = SimFleet::new(zones(2), Latencies::default(), start());
    let (first, _) = roll_on(
        &earlier,
        earlier.targets(),
        Vec::new(),
        Vec::new(),
        &with_mode(config(MaxUnavailable::Count(1), 1), Some(VerifyMode::None)),
    )
    .await;
    let InstanceState::Done { evidence } = first.states["i-0000"].clone() else {
        panic!("{:?}", first.states["i-0000"]);
    };
    let preset = vec![(
        "i-0000".to_string(),
        InstanceState::Verifying { proof: evidence },
    )];
    let (outcome, events) = roll_on(
        &sim,
        sim.targets(),
        preset,
        Vec::new(),
        &config(MaxUnavailable::Count(1), 1),
    )
    .await;
    assert_eq!(sim.restarts_sent("i-0000"), 0, "followed, not sent again");
    // This fleet never restarted it: the probe says public, and the restart is failed
    // rather than taken on trust.
    assert_eq!(
        verified(&events).first(),
        Some(&("i-0000".to_string(), Path::Public))
    );
    assert!(matches!(
        outcome.states["i-0000"],
        InstanceState::Failed { .. }
    ));
    assert_eq!(outcome.count("done"), 1);
}

#[tokio::test(start_paused = true)]
async fn an_agent_whose_telemetry_connects_late_is_probed_again_not_failed() {
    let mut instances = zones(3);
    instances[0] = instances[0]
        .clone()
        .with_fault(Fault::TelemetryLate(Duration::from_secs(12)));
    // Beyond --agent-timeout the late TCS fails it, with the reason.
    instances[1] = instances[1]
        .clone()
        .with_fault(Fault::TelemetryLate(Duration::from_secs(3600)));
    let mut config = config(MaxUnavailable::Count(1), 1);
    config.max_failures = 1;
    let (outcome, events, _) = rollout(instances, config).await;
    assert!(
        matches!(outcome.states["i-0000"], InstanceState::Done { .. }),
        "{:?}",
        outcome.states["i-0000"]
    );
    assert_eq!(outcome.verdicts["i-0000"].path, Path::Private);
    // Judged once, after it settled: the probes in between were not verdicts.
    assert_eq!(
        verified(&events)
            .iter()
            .filter(|(id, _)| id == "i-0000")
            .count(),
        1
    );
    let InstanceState::Failed { reason } = &outcome.states["i-0001"] else {
        panic!("{:?}", outcome.states["i-0001"]);
    };
    assert!(reason.contains("TCS not connected"), "{reason}");
}
