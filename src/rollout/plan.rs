//! From the inventory, the preflight and the operator's selection to the rollout's plan:
//! which instances restart over SSM, which are skipped and why, which need a reboot, the
//! waves, and which blocking findings stand in the way (or were overridden with --force).

use serde::Serialize;

use super::run::{Strategy, Target};
use super::state::InstanceState;
use super::waves::{plan_waves, Candidate, Wave, WavePolicy};
use crate::inventory::{ContainerInstance, Inventory};
use crate::preflight::{
    ids, parse_agent_version, scope_of, Finding, Preflight, Severity, MIN_AGENT_VERSION,
};

/// Which instances the operator wants (`--instances`, `--exclude`, `--asg`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Only these EC2 instance ids, when not empty.
    pub instances: Vec<String>,
    pub exclude: Vec<String>,
    /// Only instances of this Auto Scaling group.
    pub asg: Option<String>,
}

/// What the rollout will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutPlan {
    pub targets: Vec<Target>,
    /// Instances decided before the run: skipped, or failed because SSM cannot reach them.
    pub preset: Vec<(String, InstanceState)>,
    pub waves: Vec<Wave>,
    /// Blocking findings that stop the run (unless forced).
    pub blocking: Vec<Finding>,
    /// Container-instance ARNs of the in-scope instances that are not targets: their
    /// disconnected agents count against `--max-unavailable` too.
    pub bystanders: Vec<String>,
}

/// A blocking finding the operator overrode with `--force`, kept in the run's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Override {
    pub id: &'static str,
    pub summary: String,
}

/// Findings the plan resolves itself by skipping the instances they name: they do not
/// block the rollout of the others.
const HANDLED_BY_SKIPPING: [&str; 3] = [
    ids::AGENT_TOO_OLD,
    ids::AGENT_VERSION_UNKNOWN,
    ids::OUT_OF_SCOPE,
];

pub fn plan(
    inventory: &Inventory,
    preflight: &Preflight,
    selection: &Selection,
    policy: WavePolicy,
    strategy: Strategy,
) -> RolloutPlan {
    let mut targets = Vec::new();
    let mut preset = Vec::new();
    for instance in &inventory.container_instances {
        match decide(inventory, instance, selection) {
            Ok(target) => {
                // Where SSM cannot restart the agent, the fallback reboots it (or, with
                // `--strategy restart`, nothing can).
                let fallback = match (&target.no_ssm, strategy) {
                    (Some(why), Strategy::Restart) => Some(InstanceState::Failed {
                        reason: format!("needs reboot: {why} (--strategy restart)"),
                    }),
                    (Some(why), _) => Some(InstanceState::NeedsReboot {
                        reason: why.clone(),
                    }),
                    (None, Strategy::Reboot) => Some(InstanceState::NeedsReboot {
                        reason: "--strategy reboot".into(),
                    }),
                    (None, _) => None,
                };
                if let Some(state) = fallback {
                    preset.push((target.instance_id.clone(), state));
                }
                targets.push(target);
            }
            Err(Preset::Skip(reason)) => preset.push((
                instance.ec2_instance_id.clone(),
                InstanceState::Skipped { reason },
            )),
        }
    }
    let candidates: Vec<Candidate> = targets
        .iter()
        .filter(|t| !preset.iter().any(|(id, _)| id == &t.instance_id))
        .map(|t: &Target| Candidate {
            instance_id: t.instance_id.clone(),
            availability_zone: t.availability_zone.clone(),
        })
        .collect();
    let blocking = preflight
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error && !HANDLED_BY_SKIPPING.contains(&f.id))
        .cloned()
        .collect();
    let bystanders = inventory
        .container_instances
        .iter()
        .filter(|ci| scope_of(ci).is_in_scope())
        .filter(|ci| !targets.iter().any(|t| t.container_instance_arn == ci.arn))
        .map(|ci| ci.arn.clone())
        .collect();
    RolloutPlan {
        waves: plan_waves(&candidates, policy),
        targets,
        preset,
        blocking,
        bystanders,
    }
}

impl RolloutPlan {
    /// Targets still to restart: those without a preset state (done or under way).
    pub fn to_restart(&self) -> usize {
        self.targets
            .iter()
            .filter(|t| !self.preset.iter().any(|(id, _)| id == &t.instance_id))
            .count()
    }

    /// The instances the run moves: restarts to send, reboots to do, and what an earlier
    /// run left under way. `--max-unavailable N%` is a share of these, for the plan as for
    /// the run.
    pub fn moves(&self) -> usize {
        self.to_restart()
            + self
                .preset
                .iter()
                .filter(|(_, s)| matches!(s, InstanceState::NeedsReboot { .. }) || s.is_in_flight())
                .count()
    }

    /// The findings `--force` overrides, one per id.
    pub fn overrides(&self) -> Vec<Override> {
        let mut overrides: Vec<Override> = Vec::new();
        for finding in &self.blocking {
            if !overrides.iter().any(|o| o.id == finding.id) {
                overrides.push(Override {
                    id: finding.id,
                    summary: finding.summary.clone(),
                });
            }
        }
        overrides
    }
}

/// How an instance that is not a target starts.
enum Preset {
    Skip(String),
}

fn skipped(reason: impl Into<String>) -> Preset {
    Preset::Skip(reason.into())
}

/// A target, or the state the instance is in from the start.
fn decide(
    inventory: &Inventory,
    instance: &ContainerInstance,
    selection: &Selection,
) -> Result<Target, Preset> {
    let id = &instance.ec2_instance_id;
    if !selection.instances.is_empty() && !selection.instances.contains(id) {
        return Err(skipped("not in --instances"));
    }
    if selection.exclude.contains(id) {
        return Err(skipped("excluded by --exclude"));
    }
    if let Some(reason) = scope_of(instance).reason() {
        return Err(skipped(format!("out of scope: {reason}")));
    }
    let Some(ec2) = inventory.ec2_of(instance) else {
        return Err(skipped("EC2 instance not found (terminated?)"));
    };
    if let Some(group) = &selection.asg {
        if ec2.auto_scaling_group.as_ref() != Some(group) {
            return Err(skipped(format!("not in Auto Scaling group {group}")));
        }
    }
    if instance.status == "DRAINING" {
        return Err(skipped("DRAINING before the run: left alone"));
    }
    match instance
        .agent_version
        .as_deref()
        .and_then(parse_agent_version)
    {
        Some(version) if version >= MIN_AGENT_VERSION => {}
        Some(_) => return Err(skipped("agent older than 1.25.1: update the agent first")),
        None => return Err(skipped("agent version unknown: check the agent first")),
    }
    // SSM's list unreadable blocks the run in preflight (fail closed); here it is
    // taken as reachable.
    let no_ssm = crate::verify::command::ssm_unreachable(inventory, id);
    Ok(Target {
        instance_id: id.clone(),
        container_instance_arn: instance.arn.clone(),
        availability_zone: ec2.availability_zone.clone(),
        platform: instance.platform,
        no_ssm,
        auto_scaling_group: ec2.auto_scaling_group.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preflight::testkit::*;
    use crate::preflight::{run, PreflightOptions};
    use crate::rollout::waves::MaxUnavailable;

    fn policy() -> WavePolicy {
        WavePolicy {
            max_unavailable: MaxUnavailable::Count(1),
            canary: 1,
            by_az: false,
        }
    }

    fn plan_for(inventory: &Inventory, selection: &Selection) -> RolloutPlan {
        let preflight = run(inventory, PreflightOptions::default());
        plan(inventory, &preflight, selection, policy(), Strategy::Auto)
    }

    fn reason_of(plan: &RolloutPlan, id: &str) -> String {
        match plan.preset.iter().find(|(i, _)| i == id).map(|(_, s)| s) {
            Some(InstanceState::Skipped { reason } | InstanceState::Failed { reason }) => {
                reason.clone()
            }
            other => panic!("{id}: {other:?}"),
        }
    }

    #[test]
    fn a_ready_cluster_targets_every_instance_in_waves() {
        let plan = plan_for(&ready_inventory(), &Selection::default());
        assert_eq!(plan.targets.len(), 3);
        assert!(plan.preset.is_empty() && plan.blocking.is_empty());
        assert_eq!(plan.waves.len(), 3);
        assert!(plan.waves[0].canary);
    }

    #[test]
    fn selection_table() {
        let inventory = ready_inventory();
        let only = Selection {
            instances: vec!["i-a".into()],
            ..Default::default()
        };
        let plan = plan_for(&inventory, &only);
        assert_eq!(plan.targets.len(), 1);
        assert_eq!(reason_of(&plan, "i-b"), "not in --instances");
        let exclude = Selection {
            exclude: vec!["i-c".into()],
            ..Default::default()
        };
        assert_eq!(
            reason_of(&plan_for(&inventory, &exclude), "i-c"),
            "excluded by --exclude"
        );
        let asg = Selection {
            asg: Some("other".into()),
            ..Default::default()
        };
        let plan = plan_for(&inventory, &asg);
        assert!(plan.targets.is_empty());
        assert_eq!(reason_of(&plan, "i-a"), "not in Auto Scaling group other");
        let asg = Selection {
            asg: Some("asg-prod".into()),
            ..Default::default()
        };
        assert_eq!(plan_for(&inventory, &asg).targets.len(), 3);
    }

    #[test]
    fn instances_the_cutover_must_not_touch_are_skipped_with_their_reason() {
        let mut inventory = ready_inventory();
        inventory.container_instances[0].status = "DRAINING".into();
        inventory.container_instances[1].agent_version = Some("1.20.0".into());
        inventory.container_instances[2].agent_update_status = Some("UPDATING".into());
        let plan = plan_for(&inventory, &Selection::default());
        assert!(plan.targets.is_empty());
        assert!(reason_of(&plan, "i-a").contains("DRAINING"));
        assert!(reason_of(&plan, "i-b").contains("update the agent first"));
        assert!(reason_of(&plan, "i-c").contains("agent update in progress"));
        assert!(
            plan.blocking.is_empty(),
            "old agents do not block the others: {:?}",
            plan.blocking
        );
    }

    #[test]
    fn instances_ssm_cannot_reach_wait_for_a_reboot_or_fail_without_one() {
        let mut inventory = ready_inventory();
        let ssm = inventory.ssm_instances.as_mut().unwrap();
        ssm.remove("i-a");
        ssm.get_mut("i-b").unwrap().ping_status = "ConnectionLost".into();
        let preflight = run(&inventory, PreflightOptions::default());
        let state_of = |plan: &RolloutPlan, id: &str| {
            plan.preset
                .iter()
                .find(|(i, _)| i == id)
                .map(|(_, s)| s.clone())
        };
        let auto = plan(
            &inventory,
            &preflight,
            &Selection::default(),
            policy(),
            Strategy::Auto,
        );
        assert_eq!(auto.targets.len(), 3, "all three are the rollout's");
        assert_eq!(auto.to_restart(), 1, "one restarts over SSM");
        let waved: Vec<&str> = auto
            .waves
            .iter()
            .flat_map(|w| w.instance_ids.iter().map(String::as_str))
            .collect();
        assert_eq!(waved, ["i-c"]);
        assert_eq!(
            state_of(&auto, "i-a"),
            Some(InstanceState::NeedsReboot {
                reason: "SSM does not manage the instance".into()
            })
        );
        assert_eq!(
            state_of(&auto, "i-b"),
            Some(InstanceState::NeedsReboot {
                reason: "SSM ping is ConnectionLost".into()
            })
        );
        let restart = plan(
            &inventory,
            &preflight,
            &Selection::default(),
            policy(),
            Strategy::Restart,
        );
        assert_eq!(
            reason_of(&restart, "i-a"),
            "needs reboot: SSM does not manage the instance (--strategy restart)"
        );
        let reboot = plan(
            &inventory,
            &preflight,
            &Selection::default(),
            policy(),
            Strategy::Reboot,
        );
        assert!(reboot.waves.is_empty(), "nothing restarts over SSM");
        assert_eq!(
            state_of(&reboot, "i-c"),
            Some(InstanceState::NeedsReboot {
                reason: "--strategy reboot".into()
            })
        );
    }

    #[test]
    fn blocking_findings_are_listed_once_per_id_for_force() {
        let mut inventory = ready_inventory();
        remove_endpoint(&mut inventory, "ecs-agent");
        remove_endpoint(&mut inventory, "ecs-telemetry");
        let plan = plan_for(&inventory, &Selection::default());
        assert_eq!(plan.blocking.len(), 2);
        let overrides = plan.overrides();
        assert_eq!(overrides.len(), 1);
        assert_eq!(overrides[0].id, ids::INTERFACE_ENDPOINT_MISSING);
    }
}
