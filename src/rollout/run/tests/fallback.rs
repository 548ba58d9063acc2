//! Scenarios of the drain-and-reboot fallback on `SimFleet`, in virtual time. Every
//! fleet here checks the invariants on each drain, reboot and send: never more instances
//! drained or rebooting than `--max-reboots`, never more unavailable than
//! `--max-unavailable`.

use std::collections::BTreeSet;

use super::*;
use crate::fleet::sim::{SimGroup, SimService};
use crate::journal::marks::OWES_ATTRIBUTE;
use crate::rollout::state::Proof;

const GROUP: &str = "nodes";

/// `n` instances in the Auto Scaling group, across three zones.
fn nodes(n: usize) -> Vec<SimInstance> {
    zones(n).into_iter().map(|i| i.in_group(GROUP)).collect()
}

/// The instances at `at` made ones SSM does not manage.
fn unmanaged(mut instances: Vec<SimInstance>, at: &[usize]) -> Vec<SimInstance> {
    for i in at {
        instances[*i] = instances[*i].clone().with_fault(Fault::SsmOffline);
    }
    instances
}

fn world(instances: Vec<SimInstance>, max_unavailable: usize, max_reboots: usize) -> SimFleet {
    SimFleet::new(instances, Latencies::default(), start())
        .with_max_unavailable(max_unavailable)
        .with_max_reboots(max_reboots)
        .with_group(GROUP, SimGroup::default())
}

fn fallback_config(max_unavailable: u32) -> RolloutConfig {
    RolloutConfig {
        waves: WavePolicy {
            max_unavailable: MaxUnavailable::Count(max_unavailable),
            canary: 1,
            by_az: false,
        },
        ..RolloutConfig::default()
    }
}

/// A replica service with one task on each of `on`.
fn web(on: &[&str]) -> (SimService, Vec<String>) {
    (
        SimService::new("web"),
        on.iter().map(|s| s.to_string()).collect(),
    )
}

/// Rolls every instance of `sim`, those SSM cannot reach waiting for a reboot as the
/// plan would have them.
async fn roll_all(sim: &SimFleet, config: &RolloutConfig) -> (Outcome, Vec<RolloutEvent>) {
    let targets = sim.targets();
    let preset = targets
        .iter()
        .filter_map(|t| {
            let reason = match (&t.no_ssm, config.fallback.strategy) {
                (Some(why), _) => why.clone(),
                (None, Strategy::Reboot) => "--strategy reboot".into(),
                (None, _) => return None,
            };
            Some((t.instance_id.clone(), InstanceState::NeedsReboot { reason }))
        })
        .collect();
    roll_on(sim, targets, preset, Vec::new(), config).await
}

/// The states an instance passed through, in order.
fn passage(events: &[RolloutEvent], id: &str) -> Vec<&'static str> {
    events
        .iter()
        .filter_map(|e| match e {
            RolloutEvent::StateChanged {
                instance_id, state, ..
            } if instance_id == id => Some(state.name()),
            _ => None,
        })
        .collect()
}

fn reason(outcome: &Outcome, id: &str) -> String {
    match &outcome.states[id] {
        InstanceState::Failed { reason }
        | InstanceState::Skipped { reason }
        | InstanceState::Gone { reason }
        | InstanceState::NeedsReboot { reason } => reason.clone(),
        other => format!("{other:?}"),
    }
}

/// Nothing the tool changed is left: ACTIVE (unless `draining_by_others`), unprotected,
/// not in Standby, no restore record, the group's processes as `suspended_before`.
fn assert_put_back(sim: &SimFleet, ids: &[&str], suspended_before: &[&str]) {
    for id in ids {
        let (protected, standby, status) = sim.instance_state(id).unwrap();
        assert_eq!(status, "ACTIVE", "{id}");
        assert!(
            !protected && !standby,
            "{id}: protected {protected}, standby {standby}"
        );
        assert!(
            !sim.marks(id).contains_key(OWES_ATTRIBUTE),
            "{id}: {:?}",
            sim.marks(id)
        );
    }
    let group = sim.group(GROUP).unwrap();
    let expected: BTreeSet<String> = suspended_before.iter().map(|s| s.to_string()).collect();
    assert_eq!(group.suspended, expected);
    assert_eq!(group.owes_tag, None);
}

fn calls(sim: &SimFleet, action: &str) -> u64 {
    sim.request_counts().get(action).copied().unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn an_unmanaged_instance_is_drained_rebooted_proven_and_put_back() {
    let instances = unmanaged(nodes(4), &[3]);
    let (service, on) = web(&["i-0000", "i-0001", "i-0002", "i-0003"]);
    let on: Vec<&str> = on.iter().map(String::as_str).collect();
    let sim = world(instances, 1, 1).with_service(service, &on);
    let (outcome, events) = roll_all(&sim, &fallback_config(1)).await;
    assert_eq!(outcome.halted, None);
    assert_eq!(outcome.count("done"), 4, "{:?}", outcome.states);
    assert_eq!(
        passage(&events, "i-0003"),
        [
            "needs-reboot",
            "draining",
            "rebooting",
            "rejoining",
            "restoring",
            "done"
        ]
    );
    let InstanceState::Done {
        evidence: Proof::Reboot(proof),
    } = &outcome.states["i-0003"]
    else {
        panic!("{:?}", outcome.states["i-0003"]);
    };
    assert!(proof.disconnect_seen && proof.boot_id_before.is_none());
    assert!(proof.back_at > proof.rebooted_at);
    assert_eq!(sim.reboots_of("i-0003"), 1);
    assert_eq!(sim.restarts_sent("i-0003"), 0, "SSM cannot reach it");
    // Its service task moved away before the reboot: nothing was killed.
    assert!(!sim.tasks_on("i-0003").contains(&"web".to_string()));
    assert!(sim.killed_tasks().is_empty());
    assert_put_back(&sim, &["i-0000", "i-0001", "i-0002", "i-0003"], &[]);
    // Held while it was away, and put back: once each.
    assert_eq!(calls(&sim, "autoscaling:SuspendProcesses"), 1);
    assert_eq!(calls(&sim, "autoscaling:ResumeProcesses"), 1);
    assert_eq!(calls(&sim, "autoscaling:SetInstanceProtection"), 2);
    assert_eq!(calls(&sim, "ecs:UpdateContainerInstancesState"), 2);
    assert!(sim.terminated_by_auto_scaling().is_empty());
    assert_eq!(sim.peak_held(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_restart_falls_back_and_the_reboot_is_proven_by_a_new_boot_id() {
    let mut instances = nodes(3);
    instances[2] = instances[2].clone().with_fault(Fault::CommandFails);
    let sim = world(instances, 1, 1);
    let (outcome, events) = roll_all(&sim, &fallback_config(1)).await;
    assert_eq!(outcome.count("done"), 3, "{:?}", outcome.states);
    assert_eq!(
        passage(&events, "i-0002")[..2],
        ["restarting", "needs-reboot"]
    );
    let InstanceState::Done {
        evidence: Proof::Reboot(proof),
    } = &outcome.states["i-0002"]
    else {
        panic!("{:?}", outcome.states["i-0002"]);
    };
    assert_eq!(proof.boot_id_before.as_deref(), Some("i-0002-boot-0"));
    assert_eq!(proof.boot_id_after.as_deref(), Some("i-0002-boot-1"));
    assert_put_back(&sim, &["i-0002"], &[]);
}

#[tokio::test(start_paused = true)]
async fn with_strategy_restart_nothing_is_rebooted() {
    let mut instances = nodes(3);
    instances[2] = instances[2].clone().with_fault(Fault::CommandFails);
    let sim = world(instances, 1, 1);
    let mut config = fallback_config(1);
    config.fallback.strategy = Strategy::Restart;
    config.max_failures = 1;
    let (outcome, _) = roll_all(&sim, &config).await;
    assert!(
        reason(&outcome, "i-0002").starts_with("needs reboot: "),
        "{outcome:?}"
    );
    assert_eq!(sim.reboots_of("i-0002"), 0);
}

#[tokio::test(start_paused = true)]
async fn strategy_reboot_reboots_every_instance_one_at_a_time() {
    let sim = world(nodes(4), 1, 1);
    let mut config = fallback_config(2);
    config.fallback.strategy = Strategy::Reboot;
    let (outcome, _) = roll_all(&sim, &config).await;
    assert_eq!(outcome.count("done"), 4, "{:?}", outcome.states);
    for id in ["i-0000", "i-0001", "i-0002", "i-0003"] {
        assert_eq!(sim.reboots_of(id), 1, "{id}");
        assert_eq!(sim.restarts_sent(id), 0, "{id}");
    }
    assert_eq!(sim.peak_held(), 1);
    assert_put_back(&sim, &["i-0000", "i-0001", "i-0002", "i-0003"], &[]);
}

#[tokio::test(start_paused = true)]
async fn max_reboots_two_holds_two_at_once_and_never_more() {
    let sim = world(nodes(5), 2, 2);
    let mut config = fallback_config(2);
    config.fallback.strategy = Strategy::Reboot;
    config.fallback.max_reboots = 2;
    let (outcome, _) = roll_all(&sim, &config).await;
    assert_eq!(outcome.count("done"), 5, "{:?}", outcome.states);
    assert_eq!(sim.peak_held(), 2);
}

#[tokio::test(start_paused = true)]
async fn too_little_room_elsewhere_stops_before_anything_is_drained() {
    let sized: Vec<SimInstance> = nodes(3)
        .into_iter()
        .map(|i| i.with_resources(1024, 1024))
        .collect();
    let instances = unmanaged(sized, &[2]);
    let mut service = SimService::new("api");
    service.memory = 768;
    let sim = world(instances, 1, 1).with_service(service, &["i-0000", "i-0001", "i-0002"]);
    let (outcome, _) = roll_all(&sim, &fallback_config(1)).await;
    let why = reason(&outcome, "i-0002");
    assert!(
        why.contains("service api") && why.contains("not enough memory on 2"),
        "{why}"
    );
    assert!(
        outcome.halted.is_some(),
        "a failure beyond --max-failures 0"
    );
    assert_eq!(calls(&sim, "ecs:UpdateContainerInstancesState"), 0);
    assert_eq!(calls(&sim, "autoscaling:SuspendProcesses"), 0);
    assert_eq!(sim.reboots_of("i-0002"), 0);
    assert_put_back(&sim, &["i-0002"], &[]);
}

#[tokio::test(start_paused = true)]
async fn a_service_that_cannot_drain_blocks_its_instance_unless_overridden() {
    let instances = unmanaged(nodes(3), &[2]);
    let mut rigid = SimService::new("ledger");
    rigid.minimum_healthy_percent = 100;
    rigid.maximum_percent = 100;
    let build =
        || world(instances.clone(), 1, 1).with_service(rigid.clone(), &["i-0000", "i-0002"]);
    let sim = build();
    let (outcome, _) = roll_all(&sim, &fallback_config(1)).await;
    let why = reason(&outcome, "i-0002");
    assert!(
        why.contains("service ledger has minimumHealthyPercent 100 and maximumPercent 100"),
        "{why}"
    );
    assert_eq!(calls(&sim, "ecs:UpdateContainerInstancesState"), 0);

    // --skip-capacity-check drains anyway; ECS cannot move the task, so the drain times
    // out and the instance is put back.
    let sim = build();
    let mut config = fallback_config(1);
    config.fallback.skip_capacity_check = true;
    config.fallback.drain_timeout = Duration::from_secs(120);
    let (outcome, events) = roll_all(&sim, &config).await;
    assert!(events
        .iter()
        .any(|e| matches!(e, RolloutEvent::Notice { message, .. }
        if message.contains("--skip-capacity-check"))));
    assert!(reason(&outcome, "i-0002").contains("--drain-timeout 120s"));
    assert_put_back(&sim, &["i-0002"], &[]);
}

#[tokio::test(start_paused = true)]
async fn an_outage_is_warned_of_when_every_task_of_a_service_runs_there() {
    let instances = unmanaged(nodes(3), &[2]);
    let sim = world(instances, 1, 1).with_service(SimService::new("solo"), &["i-0002"]);
    let (outcome, events) = roll_all(&sim, &fallback_config(1)).await;
    assert_eq!(outcome.count("done"), 3, "{:?}", outcome.states);
    assert!(events.iter().any(
        |e| matches!(e, RolloutEvent::Notice { instance_id, message, .. }
        if instance_id == "i-0002" && message.contains("every task of service solo"))
    ));
}

#[tokio::test(start_paused = true)]
async fn standalone_tasks_skip_the_instance_unless_their_loss_is_accepted() {
    let instances = unmanaged(nodes(3), &[2]);
    let build = || world(instances.clone(), 1, 1).with_standalone_task("i-0002", "nightly");
    let sim = build();
    let (outcome, _) = roll_all(&sim, &fallback_config(1)).await;
    let why = reason(&outcome, "i-0002");
    assert_eq!(outcome.states["i-0002"].name(), "skipped");
    assert!(
        why.contains("outside any service") && why.contains("task/sim/"),
        "{why}"
    );
    assert_eq!(calls(&sim, "ecs:UpdateContainerInstancesState"), 0);
    assert_eq!(sim.reboots_of("i-0002"), 0);

    let sim = build();
    let mut config = fallback_config(1);
    config.fallback.reboot_standalone_tasks = true;
    let (outcome, _) = roll_all(&sim, &config).await;
    assert_eq!(outcome.states["i-0002"].name(), "done");
    assert_eq!(sim.killed_tasks().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_drain_that_times_out_is_put_back_or_rebooted_when_asked() {
    let mut instances = nodes(3);
    instances[2] = instances[2]
        .clone()
        .with_fault(Fault::SsmOffline)
        .with_fault(Fault::DrainStuck);
    let build = || {
        world(instances.clone(), 1, 1).with_service(SimService::new("web"), &["i-0000", "i-0002"])
    };
    let sim = build();
    let mut config = fallback_config(1);
    config.fallback.drain_timeout = Duration::from_secs(120);
    let (outcome, _) = roll_all(&sim, &config).await;
    let why = reason(&outcome, "i-0002");
    assert!(
        why.contains("1 service task(s) still ran after --drain-timeout 120s"),
        "{why}"
    );
    assert_eq!(sim.reboots_of("i-0002"), 0);
    assert_put_back(&sim, &["i-0002"], &[]);

    let sim = build();
    config.fallback.reboot_after_drain_timeout = true;
    let (outcome, _) = roll_all(&sim, &config).await;
    assert_eq!(outcome.states["i-0002"].name(), "done", "{outcome:?}");
    assert_eq!(sim.reboots_of("i-0002"), 1);
    assert_put_back(&sim, &["i-0002"], &[]);
}

#[tokio::test(start_paused = true)]
async fn a_service_below_its_desired_count_delays_the_drain_and_the_reboot() {
    let instances = unmanaged(nodes(3), &[2]);
    let mut service = SimService::new("web");
    service.desired = 3;
    let sim = world(instances, 1, 1)
        .with_service(service, &["i-0000", "i-0002"])
        .with_starting_task("web", "i-0001", Duration::from_secs(300));
    let (outcome, events) = roll_all(&sim, &fallback_config(1)).await;
    assert_eq!(outcome.states["i-0002"].name(), "done", "{outcome:?}");
    let draining_at = events
        .iter()
        .find_map(|e| match e {
            RolloutEvent::StateChanged {
                instance_id,
                state,
                at,
            } if instance_id == "i-0002" && state.name() == "draining" => Some(*at),
            _ => None,
        })
        .unwrap();
    assert!(
        draining_at >= 1_800_000_000 + 300,
        "drained at +{}s, before web was whole",
        draining_at - 1_800_000_000
    );
    let notices: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            RolloutEvent::Notice { message, .. } => Some(message.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        notices
            .iter()
            .any(|m| m.starts_with("waiting before draining: service web runs 2 of 3")),
        "{notices:?}"
    );
    // Its task's replacement takes a while to start: the reboot waits for it too.
    assert!(
        notices
            .iter()
            .any(|m| m.starts_with("waiting before rebooting: service web")),
        "{notices:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reboot_that_never_returns_halts_the_rollout_with_everything_put_back() {
    let mut instances = nodes(4);
    instances[2] = instances[2]
        .clone()
        .with_fault(Fault::SsmOffline)
        .with_fault(Fault::RebootNeverReturns);
    instances[3] = instances[3].clone().with_fault(Fault::SsmOffline);
    let sim = world(instances, 1, 1);
    let mut config = fallback_config(1);
    config.fallback.reboot_timeout = Duration::from_secs(300);
    config.max_failures = 5;
    let (outcome, _) = roll_all(&sim, &config).await;
    let why = reason(&outcome, "i-0002");
    assert!(
        why.contains("did not come back after the reboot within --reboot-timeout 300s"),
        "{why}"
    );
    assert!(
        outcome
            .halted
            .as_deref()
            .unwrap_or_default()
            .contains("nothing else is rebooted"),
        "{:?}",
        outcome.halted
    );
    assert_eq!(outcome.states["i-0003"].name(), "needs-reboot");
    assert_eq!(sim.reboots_of("i-0003"), 0);
    // Its failing status checks did not get it replaced: HealthCheck was suspended.
    assert!(sim.terminated_by_auto_scaling().is_empty());
    assert_put_back(&sim, &["i-0002", "i-0003"], &[]);
}

#[tokio::test(start_paused = true)]
async fn holds_an_operator_set_before_stay_in_place() {
    let instances = unmanaged(nodes(3), &[2]);
    let sim = world(instances, 1, 1)
        .with_group(
            GROUP,
            SimGroup {
                suspended: ["AZRebalance", "Launch"].map(String::from).into(),
                ..SimGroup::default()
            },
        )
        .with_instance_held("i-0002", true, false);
    let (outcome, _) = roll_all(&sim, &fallback_config(1)).await;
    assert_eq!(outcome.states["i-0002"].name(), "done", "{outcome:?}");
    let group = sim.group(GROUP).unwrap();
    assert_eq!(
        group.suspended,
        ["AZRebalance", "Launch"].map(String::from).into()
    );
    let (protected, _, status) = sim.instance_state("i-0002").unwrap();
    assert!(protected, "the operator's protection stays");
    assert_eq!(status, "ACTIVE");
    assert_eq!(calls(&sim, "autoscaling:SetInstanceProtection"), 0);
}

#[tokio::test(start_paused = true)]
async fn under_managed_termination_protection_standby_holds_the_instance() {
    let instances = unmanaged(nodes(3), &[2]);
    let sim = world(instances, 1, 1).with_group(
        GROUP,
        SimGroup {
            managed_termination_protection: true,
            managed_scaling: true,
            ..SimGroup::default()
        },
    );
    let (outcome, _) = roll_all(&sim, &fallback_config(1)).await;
    assert_eq!(outcome.states["i-0002"].name(), "done", "{outcome:?}");
    assert_eq!(calls(&sim, "autoscaling:EnterStandby"), 1);
    assert_eq!(calls(&sim, "autoscaling:ExitStandby"), 1);
    // Emptied and unprotected but in Standby: managed scaling left it alone.
    assert!(sim.terminated_by_auto_scaling().is_empty());
    assert_put_back(&sim, &["i-0002"], &[]);
}

#[tokio::test(start_paused = true)]
async fn an_instance_terminated_mid_drain_is_gone_and_nothing_is_reactivated() {
    let mut instances = nodes(3);
    instances[2] = instances[2]
        .clone()
        .with_fault(Fault::SsmOffline)
        .with_fault(Fault::DrainStuck)
        .with_fault(Fault::TerminatedWhenDrained(Duration::from_secs(25)));
    let sim = world(instances, 1, 1).with_service(SimService::new("web"), &["i-0002"]);
    let (outcome, _) = roll_all(&sim, &fallback_config(1)).await;
    assert_eq!(outcome.states["i-0002"].name(), "gone", "{outcome:?}");
    assert!(reason(&outcome, "i-0002").contains("terminated while draining"));
    assert_eq!(outcome.halted, None, "gone is not a failure");
    // DRAINING once; never ACTIVE again.
    assert_eq!(calls(&sim, "ecs:UpdateContainerInstancesState"), 1);
    assert_eq!(sim.reboots_of("i-0002"), 0);
    // The group's processes are still resumed, and its record cleared.
    let group = sim.group(GROUP).unwrap();
    assert!(group.suspended.is_empty() && group.owes_tag.is_none());
}

#[tokio::test(start_paused = true)]
async fn an_instance_an_operator_drains_during_the_run_is_left_alone() {
    let mut instances = nodes(3);
    instances[2] = instances[2]
        .clone()
        .with_fault(Fault::SsmOffline)
        .with_fault(Fault::DrainedAfter(Duration::from_secs(1)));
    let sim = world(instances, 1, 1);
    let (outcome, _) = roll_all(&sim, &fallback_config(1)).await;
    assert_eq!(outcome.states["i-0002"].name(), "skipped", "{outcome:?}");
    assert!(reason(&outcome, "i-0002").contains("set DRAINING by someone else"));
    assert_eq!(calls(&sim, "ecs:UpdateContainerInstancesState"), 0);
    assert_eq!(sim.reboots_of("i-0002"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_group_carrying_another_clusters_record_is_not_touched() {
    let instances = unmanaged(nodes(3), &[2]);
    let sim = world(instances, 1, 1).with_group(
        GROUP,
        SimGroup {
            owes_tag: Some("v1 20260101T000000Z-0001 cluster:other resume:HealthCheck".into()),
            ..SimGroup::default()
        },
    );
    let (outcome, _) = roll_all(&sim, &fallback_config(1)).await;
    assert!(
        reason(&outcome, "i-0002").contains("restore record of cluster other"),
        "{outcome:?}"
    );
    assert_eq!(calls(&sim, "autoscaling:SuspendProcesses"), 0);
    assert_eq!(
        sim.group(GROUP).unwrap().owes_tag.as_deref(),
        Some("v1 20260101T000000Z-0001 cluster:other resume:HealthCheck")
    );
}

#[tokio::test(start_paused = true)]
async fn an_instance_that_never_passes_its_status_checks_or_never_rejoins_halts_the_rollout() {
    for fault in [Fault::StatusChecksFail, Fault::AgentNeverRejoins] {
        let mut instances = nodes(4);
        instances[2] = instances[2]
            .clone()
            .with_fault(Fault::SsmOffline)
            .with_fault(fault);
        instances[3] = instances[3].clone().with_fault(Fault::SsmOffline);
        let sim = world(instances, 1, 1);
        let mut config = fallback_config(1);
        config.fallback.reboot_timeout = Duration::from_secs(300);
        let (outcome, _) = roll_all(&sim, &config).await;
        let why = reason(&outcome, "i-0002");
        let expected = match fault {
            Fault::StatusChecksFail => "EC2 status checks are not OK",
            _ => "ECS does not show the agent connected",
        };
        assert!(
            why.contains("did not come back") && why.contains(expected),
            "{fault:?}: {why}"
        );
        assert_eq!(
            sim.reboots_of("i-0003"),
            0,
            "{fault:?}: nothing else is rebooted"
        );
        assert!(sim.terminated_by_auto_scaling().is_empty(), "{fault:?}");
        assert_put_back(&sim, &["i-0002", "i-0003"], &[]);
    }
}

#[tokio::test(start_paused = true)]
async fn standby_is_refused_where_it_would_take_the_group_below_its_minimum() {
    let instances = unmanaged(nodes(3), &[2]);
    let sim = world(instances, 1, 1).with_group(
        GROUP,
        SimGroup {
            min_size: 3,
            ..SimGroup::default()
        },
    );
    let mut config = fallback_config(1);
    config.fallback.use_standby = true;
    let (outcome, _) = roll_all(&sim, &config).await;
    assert_eq!(outcome.states["i-0002"].name(), "skipped");
    assert!(
        reason(&outcome, "i-0002").contains("below its minimum (3 desired, minimum 3)"),
        "{outcome:?}"
    );
    assert_eq!(calls(&sim, "autoscaling:EnterStandby"), 0);
    assert_eq!(calls(&sim, "ecs:UpdateContainerInstancesState"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_restore_that_fails_keeps_its_debt_halts_and_names_the_command() {
    let instances = unmanaged(nodes(4), &[2, 3]);
    let sim = world(instances, 1, 1).with_failing("autoscaling:ResumeProcesses");
    let (outcome, _) = roll_all(&sim, &fallback_config(1)).await;
    let why = reason(&outcome, "i-0002");
    assert!(
        why.contains("aws autoscaling resume-processes --auto-scaling-group-name nodes --scaling-processes AZRebalance HealthCheck ReplaceUnhealthy"),
        "{why}"
    );
    assert!(
        outcome
            .halted
            .as_deref()
            .unwrap_or_default()
            .contains("putting back what the tool changed failed"),
        "{:?}",
        outcome.halted
    );
    assert_eq!(sim.reboots_of("i-0003"), 0, "nothing more is touched");
    // What was put back is put back; what was not stays owed, on AWS.
    let (protected, _, status) = sim.instance_state("i-0002").unwrap();
    assert!(!protected);
    assert_eq!(status, "ACTIVE");
    let group = sim.group(GROUP).unwrap();
    assert_eq!(group.suspended.len(), 3);
    let tag = group.owes_tag.unwrap_or_default();
    assert!(
        tag.contains("cluster:sim")
            && tag.contains("resume:AZRebalance/HealthCheck/ReplaceUnhealthy"),
        "{tag}"
    );
}

#[tokio::test(start_paused = true)]
async fn standby_that_cannot_be_left_stays_owed_with_the_command_to_finish_it() {
    let instances = unmanaged(nodes(3), &[2]);
    // Someone lowered the maximum below what leaving Standby needs.
    let sim = world(instances, 1, 1).with_group(
        GROUP,
        SimGroup {
            max_size: 2,
            ..SimGroup::default()
        },
    );
    let mut config = fallback_config(1);
    config.fallback.use_standby = true;
    let (outcome, _) = roll_all(&sim, &config).await;
    let why = reason(&outcome, "i-0002");
    assert!(
        why.contains("above its maximum")
            && why.contains("aws autoscaling exit-standby --auto-scaling-group-name nodes --instance-ids i-0002"),
        "{why}"
    );
    let (_, standby, status) = sim.instance_state("i-0002").unwrap();
    assert!(standby, "still in Standby: nothing forced it out");
    assert_eq!(status, "ACTIVE");
    let group = sim.group(GROUP).unwrap();
    assert!(group.suspended.is_empty(), "the processes were resumed");
    assert!(
        group
            .owes_tag
            .as_deref()
            .unwrap_or_default()
            .contains("standby:i-0002"),
        "{:?}",
        group.owes_tag
    );
}

/// Hooks that ask the rollout to stop once the instance is DRAINING.
struct StopWhenDraining {
    id: &'static str,
    draining: bool,
    events: Vec<RolloutEvent>,
}

impl Hooks for StopWhenDraining {
    fn event(&mut self, event: RolloutEvent) {
        if let RolloutEvent::StateChanged {
            instance_id, state, ..
        } = &event
        {
            self.draining |= instance_id == self.id && state.name() == "draining";
        }
        self.events.push(event);
    }

    fn stop_reason(&mut self) -> Option<String> {
        self.draining
            .then(|| "interrupted (Ctrl-C or SIGTERM)".into())
    }
}

#[tokio::test(start_paused = true)]
async fn an_interrupt_during_a_drain_puts_the_instance_back_without_rebooting_it() {
    let instances = unmanaged(nodes(3), &[2]);
    let sim = world(instances, 1, 1).with_service(SimService::new("web"), &["i-0002"]);
    let config = fallback_config(1);
    let targets = sim.targets();
    let preset = vec![(
        "i-0002".to_string(),
        InstanceState::NeedsReboot {
            reason: "SSM does not manage the instance".into(),
        },
    )];
    let input = RolloutInput {
        cluster: "sim".into(),
        run: RunId::new(1_800_000_000, 1),
        targets,
        preset,
        bystanders: Vec::new(),
        resumed: false,
        site: sim.probe_site(),
        estimates: Default::default(),
    };
    let mut hooks = StopWhenDraining {
        id: "i-0002",
        draining: false,
        events: Vec::new(),
    };
    let clock = SimClock::starting_at(start());
    let outcome = roll(&sim, &clock, input, &config, &mut hooks).await;
    assert!(outcome.stopped, "{outcome:?}");
    assert_eq!(sim.reboots_of("i-0002"), 0, "no reboot after the interrupt");
    let why = reason(&outcome, "i-0002");
    assert_eq!(outcome.states["i-0002"].name(), "needs-reboot", "{why}");
    assert!(why.contains("put back, not rebooted: interrupted"), "{why}");
    assert_put_back(&sim, &["i-0002"], &[]);
    // Put back at once, not after waiting out the drain (its task takes 35 s to move).
    let at = |name: &str| {
        hooks.events.iter().rev().find_map(|e| match e {
            RolloutEvent::StateChanged {
                instance_id,
                state,
                at,
            } if instance_id == "i-0002" && state.name() == name => Some(*at),
            _ => None,
        })
    };
    let (drained, back) = (at("draining").unwrap(), at("needs-reboot").unwrap());
    assert!(
        back - drained < 5,
        "put back {}s after the interrupt",
        back - drained
    );
}

#[tokio::test(start_paused = true)]
async fn an_agent_that_registers_anew_after_the_reboot_is_not_taken_for_gone() {
    let mut instances = nodes(3);
    instances[2] = instances[2]
        .clone()
        .with_fault(Fault::SsmOffline)
        .with_fault(Fault::ReregistersAfterReboot);
    let sim = world(instances, 1, 1);
    let mut config = fallback_config(1);
    config.fallback.reboot_timeout = Duration::from_secs(300);
    let (outcome, _) = roll_all(&sim, &config).await;
    assert_eq!(outcome.states["i-0002"].name(), "failed", "{outcome:?}");
    assert!(reason(&outcome, "i-0002").contains("did not come back"));
    // Its EC2 instance runs on: what the tool changed on it is put back.
    let (protected, _, _) = sim.instance_state("i-0002").unwrap();
    assert!(!protected, "scale-in protection removed");
    let group = sim.group(GROUP).unwrap();
    assert!(group.suspended.is_empty() && group.owes_tag.is_none());
}

#[tokio::test(start_paused = true)]
async fn an_instance_its_group_does_not_list_is_not_rebooted_unheld() {
    let mut instances = nodes(3);
    instances[2] = instances[2]
        .clone()
        .with_fault(Fault::SsmOffline)
        .with_fault(Fault::UnlistedByAutoScaling);
    let sim = world(instances, 1, 1);
    let (outcome, _) = roll_all(&sim, &fallback_config(1)).await;
    assert_eq!(outcome.states["i-0002"].name(), "skipped", "{outcome:?}");
    assert!(
        reason(&outcome, "i-0002")
            .contains("names Auto Scaling group nodes, which does not list it"),
        "{outcome:?}"
    );
    assert_eq!(calls(&sim, "ecs:UpdateContainerInstancesState"), 0);
    assert_eq!(sim.reboots_of("i-0002"), 0);
}

#[tokio::test(start_paused = true)]
async fn an_operator_draining_the_instance_while_the_guards_wait_is_left_alone() {
    let mut instances = nodes(3);
    instances[2] = instances[2]
        .clone()
        .with_fault(Fault::SsmOffline)
        .with_fault(Fault::DrainedAfter(Duration::from_secs(100)));
    let mut service = SimService::new("web");
    service.desired = 3;
    let sim = world(instances, 1, 1)
        .with_service(service, &["i-0000", "i-0002"])
        .with_starting_task("web", "i-0001", Duration::from_secs(300));
    let (outcome, _) = roll_all(&sim, &fallback_config(1)).await;
    assert_eq!(outcome.states["i-0002"].name(), "skipped", "{outcome:?}");
    assert_eq!(
        calls(&sim, "ecs:UpdateContainerInstancesState"),
        0,
        "never set ACTIVE"
    );
    assert_eq!(calls(&sim, "autoscaling:SuspendProcesses"), 0);
}

#[tokio::test(start_paused = true)]
async fn losing_aws_after_the_reboot_leaves_the_debts_recorded_for_the_next_run() {
    let instances = unmanaged(nodes(3), &[2]);
    let sim = world(instances, 1, 1).with_outage_after_action("ec2:RebootInstances");
    let (outcome, _) = roll_all(&sim, &fallback_config(1)).await;
    assert!(outcome.aws_error, "{outcome:?}");
    let why = reason(&outcome, "i-0002");
    assert!(
        why.contains("while following its reboot") && why.contains("--resume"),
        "{why}"
    );
    // Nothing resumed under a host that may still be down; every debt still on record.
    let (protected, _, status) = sim.instance_state("i-0002").unwrap();
    assert!(protected);
    assert_eq!(status, "DRAINING");
    assert!(sim.marks("i-0002")[OWES_ATTRIBUTE].contains("activate unprotect"));
    let group = sim.group(GROUP).unwrap();
    assert_eq!(group.suspended.len(), 3);
    assert!(group.owes_tag.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_batch_is_placed_as_a_whole() {
    let instances: Vec<SimInstance> = nodes(3)
        .into_iter()
        .map(|i| i.with_resources(1024, 1024))
        .collect();
    let mut service = SimService::new("api");
    service.memory = 768;
    service.minimum_healthy_percent = 50;
    let sim = world(instances, 2, 2).with_service(service, &["i-0000", "i-0001"]);
    let mut config = fallback_config(2);
    config.fallback.strategy = Strategy::Reboot;
    config.fallback.max_reboots = 2;
    let (outcome, _) = roll_all(&sim, &config).await;
    // Each task alone fits on i-0002; both together do not.
    assert_eq!(outcome.states["i-0000"].name(), "done", "{outcome:?}");
    let why = reason(&outcome, "i-0001");
    assert!(why.contains("not enough memory"), "{why}");
}

#[tokio::test(start_paused = true)]
async fn standby_for_a_batch_counts_every_member_against_the_minimum() {
    let sim = world(nodes(3), 2, 2).with_group(
        GROUP,
        SimGroup {
            min_size: 2,
            ..SimGroup::default()
        },
    );
    let mut config = fallback_config(2);
    config.fallback.strategy = Strategy::Reboot;
    config.fallback.max_reboots = 2;
    config.fallback.use_standby = true;
    let (outcome, _) = roll_all(&sim, &config).await;
    assert_eq!(outcome.states["i-0000"].name(), "done", "{outcome:?}");
    assert!(
        reason(&outcome, "i-0001").contains("below its minimum (2 desired, minimum 2)"),
        "{outcome:?}"
    );
}
