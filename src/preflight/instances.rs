//! Rules per container instance: which instances the cutover covers at all, agent
//! versions and connectivity, SSM reachability, and instances an operator is draining.

use std::collections::BTreeMap;

use super::{ids, some_of, Finding};
use crate::inventory::{ContainerInstance, Inventory};

/// The first agent release that works through PrivateLink endpoints.
pub const MIN_AGENT_VERSION: (u32, u32, u32) = (1, 25, 1);

/// Whether the cutover covers a container instance, and if not, why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceScope {
    InScope,
    /// ECS Anywhere (`mi-…`): not in a VPC, nothing to move.
    Anywhere,
    /// A status other than ACTIVE or DRAINING.
    Status(String),
    /// The agent is updating itself; a restart now would interfere.
    AgentUpdating(String),
}

impl InstanceScope {
    pub fn is_in_scope(&self) -> bool {
        *self == InstanceScope::InScope
    }

    pub fn reason(&self) -> Option<String> {
        match self {
            InstanceScope::InScope => None,
            InstanceScope::Anywhere => Some("ECS Anywhere instance (mi-…)".into()),
            InstanceScope::Status(status) => Some(format!("status {status}")),
            InstanceScope::AgentUpdating(status) => {
                Some(format!("agent update in progress ({status})"))
            }
        }
    }
}

pub fn scope_of(instance: &ContainerInstance) -> InstanceScope {
    if instance.ec2_instance_id.starts_with("mi-") {
        return InstanceScope::Anywhere;
    }
    if !matches!(instance.status.as_str(), "ACTIVE" | "DRAINING") {
        return InstanceScope::Status(instance.status.clone());
    }
    match instance.agent_update_status.as_deref() {
        Some(status @ ("PENDING" | "STAGING" | "STAGED" | "UPDATING")) => {
            InstanceScope::AgentUpdating(status.into())
        }
        _ => InstanceScope::InScope,
    }
}

/// Parses an agent version leniently: `1.25.1`, `v1.80.0`, `1.51.0-abcdef`, `1.9`.
pub fn parse_agent_version(raw: &str) -> Option<(u32, u32, u32)> {
    let trimmed = raw.trim().trim_start_matches(['v', 'V']);
    let numeric: String = trimmed
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = numeric
        .split('.')
        .filter(|p| !p.is_empty())
        .map(str::parse::<u32>);
    let major = parts.next()?.ok()?;
    let minor = parts.next().unwrap_or(Ok(0)).ok()?;
    let patch = parts.next().unwrap_or(Ok(0)).ok()?;
    Some((major, minor, patch))
}

pub(super) fn check(inventory: &Inventory, findings: &mut Vec<Finding>) {
    let cluster = &inventory.cluster;
    let ec2 = inventory.ec2_instances.as_ref().ok();
    if inventory
        .container_instances
        .iter()
        .all(|ci| ci.ec2_instance_id.starts_with("mi-"))
    {
        findings.push(
            Finding::new(
                ids::NOTHING_TO_RESTART,
                format!(
                    "cluster {} has no EC2 container instances: nothing to restart",
                    cluster.name
                ),
            )
            .resources([cluster.arn.clone()]),
        );
    }
    let mut out_of_scope: BTreeMap<String, Vec<&ContainerInstance>> = BTreeMap::new();
    let mut too_old: Vec<(String, &ContainerInstance)> = Vec::new();
    let mut unknown_version: Vec<(String, &ContainerInstance)> = Vec::new();
    let mut disconnected = Vec::new();
    let mut draining = Vec::new();
    let mut not_online: Vec<(String, &str)> = Vec::new();
    for instance in &inventory.container_instances {
        let id = &instance.ec2_instance_id;
        if let Some(reason) = scope_of(instance).reason() {
            out_of_scope.entry(reason).or_default().push(instance);
            continue;
        }
        if ec2.is_some_and(|known| !known.contains_key(id)) {
            out_of_scope
                .entry("EC2 instance not found (terminated?)".into())
                .or_default()
                .push(instance);
            continue;
        }
        match instance
            .agent_version
            .as_deref()
            .and_then(parse_agent_version)
        {
            Some(version) if version < MIN_AGENT_VERSION => too_old.push((
                format!(
                    "{id} ({})",
                    instance.agent_version.as_deref().unwrap_or_default()
                ),
                instance,
            )),
            Some(_) => {}
            None => unknown_version.push((
                format!(
                    "{id} ({})",
                    instance.agent_version.as_deref().unwrap_or("none")
                ),
                instance,
            )),
        }
        if !instance.agent_connected {
            disconnected.push(id.clone());
        }
        if instance.status == "DRAINING" {
            draining.push(id.clone());
        }
        if let Ok(ssm) = &inventory.ssm_instances {
            match ssm.get(id) {
                None => not_online.push((id.clone(), "not managed by SSM")),
                Some(record) if record.ping_status != "Online" => {
                    not_online.push((id.clone(), "SSM ping not Online"))
                }
                Some(_) => {}
            }
        }
    }
    for failure in &inventory.container_instance_failures {
        let finding = if failure.reason == "MISSING" {
            // Deregistered between the list and the describe: gone, nothing to do.
            Finding::new(
                ids::OUT_OF_SCOPE,
                format!(
                    "{} was deregistered during discovery and is skipped",
                    failure.arn
                ),
            )
        } else {
            Finding::new(
                ids::UNREADABLE,
                format!(
                    "could not read ecs:DescribeContainerInstances for {}: {}; its checks cannot pass",
                    failure.arn, failure.reason
                ),
            )
            .fix("run check again; if it persists, look at the instance in the ECS console")
        };
        findings.push(finding.resources([failure.arn.clone()]));
    }
    for (reason, instances) in out_of_scope {
        let ids: Vec<String> = instances
            .iter()
            .map(|i| i.ec2_instance_id.clone())
            .collect();
        findings.push(
            Finding::new(
                ids::OUT_OF_SCOPE,
                format!(
                    "{} instance(s) skipped, {reason}: {}",
                    ids.len(),
                    some_of(&ids)
                ),
            )
            .resources(instances.iter().map(|i| i.arn.clone())),
        );
    }
    let update = |instances: &[&ContainerInstance]| -> String {
        let mut commands: Vec<String> = instances
            .iter()
            .take(5)
            .map(|ci| {
                format!(
                    "aws ecs update-container-agent --region {} --cluster {} --container-instance {}",
                    cluster.region, cluster.name, ci.arn
                )
            })
            .collect();
        if instances.len() > 5 {
            commands.push(format!(
                "and the same for the other {} instances",
                instances.len() - 5
            ));
        }
        commands.push("or roll the instances onto a current ECS-optimized AMI".into());
        commands.join("\n")
    };
    if !too_old.is_empty() {
        let described: Vec<String> = too_old.iter().map(|(text, _)| text.clone()).collect();
        let instances: Vec<&ContainerInstance> = too_old.iter().map(|(_, ci)| *ci).collect();
        findings.push(
            Finding::new(
                ids::AGENT_TOO_OLD,
                format!(
                    "{} instance(s) run an ECS agent older than 1.25.1, which cannot use the endpoints; the cutover \
                     excludes them: {}",
                    described.len(),
                    some_of(&described)
                ),
            )
            .resources(instances.iter().map(|ci| ci.ec2_instance_id.clone()))
            .fix(update(&instances)),
        );
    }
    if !unknown_version.is_empty() {
        let instances: Vec<&ContainerInstance> =
            unknown_version.iter().map(|(_, ci)| *ci).collect();
        let unknown_version: Vec<String> = unknown_version
            .iter()
            .map(|(text, _)| text.clone())
            .collect();
        findings.push(
            Finding::new(
                ids::AGENT_VERSION_UNKNOWN,
                format!(
                    "the ECS agent version of {} instance(s) is unknown, so PrivateLink support cannot be confirmed: {}",
                    unknown_version.len(),
                    some_of(&unknown_version)
                ),
            )
            .resources(instances.iter().map(|ci| ci.ec2_instance_id.clone()))
            .fix(format!(
                "check the agent on the host (curl -s localhost:51678/v1/metadata), then update it:\n{}",
                update(&instances)
            )),
        );
    }
    if !disconnected.is_empty() {
        findings.push(
            Finding::new(
                ids::AGENT_DISCONNECTED,
                format!("the ECS agent of {} instance(s) is not connected right now: {}", disconnected.len(), some_of(&disconnected)),
            )
            .resources(disconnected.clone())
            .fix("look at /var/log/ecs/ecs-agent.log on the instance; a disconnected agent cannot prove its reconnect"),
        );
    }
    if !draining.is_empty() {
        findings.push(
            Finding::new(
                ids::ALREADY_DRAINING,
                format!(
                    "{} instance(s) are DRAINING (set by someone else) and will be left alone: {}",
                    draining.len(),
                    some_of(&draining)
                ),
            )
            .resources(draining.clone()),
        );
    }
    if !not_online.is_empty() {
        let ids: Vec<String> = not_online
            .iter()
            .map(|(id, why)| format!("{id} ({why})"))
            .collect();
        findings.push(
            Finding::new(
                ids::SSM_UNMANAGED,
                format!(
                    "{} instance(s) cannot take an agent restart over SSM and will need a reboot instead: {}",
                    ids.len(),
                    some_of(&ids)
                ),
            )
            .resources(not_online.iter().map(|(id, _)| id.clone()))
            .fix("install or repair the SSM agent and the instance profile's AmazonSSMManagedInstanceCore policy"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{run, PreflightOptions, Severity};
    use super::*;

    fn findings_of(inventory: &Inventory) -> Vec<Finding> {
        run(inventory, PreflightOptions::default()).findings
    }

    #[test]
    fn agent_version_parsing_is_lenient() {
        for (raw, expected) in [
            ("1.25.1", Some((1, 25, 1))),
            ("v1.80.0", Some((1, 80, 0))),
            ("1.51.0-abcdef", Some((1, 51, 0))),
            ("1.9", Some((1, 9, 0))),
            (" 1.25.0 ", Some((1, 25, 0))),
            ("Amazon ECS Agent", None),
            ("", None),
        ] {
            assert_eq!(parse_agent_version(raw), expected, "{raw:?}");
        }
    }

    #[test]
    fn scope_table() {
        let cases = [
            ("i-1", "ACTIVE", None, InstanceScope::InScope),
            ("i-1", "DRAINING", Some("UPDATED"), InstanceScope::InScope),
            ("i-1", "ACTIVE", Some("FAILED"), InstanceScope::InScope),
            ("mi-1", "ACTIVE", None, InstanceScope::Anywhere),
            (
                "i-1",
                "REGISTERING",
                None,
                InstanceScope::Status("REGISTERING".into()),
            ),
            (
                "i-1",
                "INACTIVE",
                None,
                InstanceScope::Status("INACTIVE".into()),
            ),
            (
                "i-1",
                "DEREGISTERING",
                None,
                InstanceScope::Status("DEREGISTERING".into()),
            ),
        ];
        for (id, status, update, expected) in cases {
            let mut instance = container_instance(id);
            instance.status = status.into();
            instance.agent_update_status = update.map(str::to_string);
            assert_eq!(scope_of(&instance), expected, "{id} {status} {update:?}");
        }
        for update in ["PENDING", "STAGING", "STAGED", "UPDATING"] {
            let mut instance = container_instance("i-1");
            instance.agent_update_status = Some(update.into());
            assert_eq!(
                scope_of(&instance),
                InstanceScope::AgentUpdating(update.into())
            );
        }
    }

    #[test]
    fn old_agent_is_an_error_naming_the_instance() {
        let mut inventory = ready_inventory();
        inventory.container_instances[1].agent_version = Some("v1.25.0".into());
        inventory.container_instances[2].agent_version = Some("1.25.1".into());
        let findings = findings_of(&inventory);
        let old = find(&findings, ids::AGENT_TOO_OLD);
        assert_eq!(old.severity, Severity::Error);
        assert_eq!(old.resources, vec!["i-b".to_string()]);
        assert!(old.summary.contains("i-b (v1.25.0)"), "{}", old.summary);
        let fix = old.fix.as_deref().unwrap();
        assert!(fix.contains("--container-instance arn:aws:ecs:eu-west-1:123456789012:container-instance/prod/i-b"), "{fix}");
    }

    #[test]
    fn unknown_agent_version_fails_closed() {
        let mut inventory = ready_inventory();
        inventory.container_instances[0].agent_version = None;
        let preflight = run(&inventory, PreflightOptions::default());
        assert!(!preflight.is_ready());
        assert!(find(&preflight.findings, ids::AGENT_VERSION_UNKNOWN)
            .summary
            .contains("unknown"));
        assert!(!preflight
            .findings
            .iter()
            .any(|f| f.id == ids::AGENT_TOO_OLD));
    }

    #[test]
    fn out_of_scope_instances_are_listed_and_not_checked() {
        let mut inventory = ready_inventory();
        inventory
            .container_instances
            .push(container_instance("mi-0abc"));
        let mut updating = container_instance("i-b");
        updating.agent_update_status = Some("STAGED".into());
        updating.agent_version = Some("1.0.0".into());
        inventory.container_instances[1] = updating;
        let preflight = run(&inventory, PreflightOptions::default());
        assert!(preflight.is_ready(), "{:#?}", preflight.findings);
        let skipped: Vec<&Finding> = preflight
            .findings
            .iter()
            .filter(|f| f.id == ids::OUT_OF_SCOPE)
            .collect();
        assert_eq!(skipped.len(), 2);
        assert!(skipped.iter().all(|f| f.severity == Severity::Info));
        assert!(skipped
            .iter()
            .any(|f| f.summary.contains("mi-0abc") && f.summary.contains("ECS Anywhere")));
        assert!(skipped
            .iter()
            .any(|f| f.summary.contains("i-b") && f.summary.contains("STAGED")));
        assert_eq!(
            preflight.vpcs[0].instances, 2,
            "the updating instance is not counted in its VPC"
        );
    }

    #[test]
    fn terminated_ec2_instance_is_out_of_scope() {
        let mut inventory = ready_inventory();
        inventory.ec2_instances.as_mut().unwrap().remove("i-c");
        let findings = findings_of(&inventory);
        assert!(find(&findings, ids::OUT_OF_SCOPE)
            .summary
            .contains("not found"));
    }

    #[test]
    fn disconnected_draining_and_ssm_table() {
        let mut inventory = ready_inventory();
        inventory.container_instances[0].agent_connected = false;
        inventory.container_instances[1].status = "DRAINING".into();
        let ssm = inventory.ssm_instances.as_mut().unwrap();
        ssm.remove("i-a");
        ssm.get_mut("i-c").unwrap().ping_status = "ConnectionLost".into();
        let preflight = run(&inventory, PreflightOptions::default());
        assert!(preflight.is_ready());
        let disconnected = find(&preflight.findings, ids::AGENT_DISCONNECTED);
        assert_eq!(
            (disconnected.severity, disconnected.resources.clone()),
            (Severity::Warning, vec!["i-a".to_string()])
        );
        let draining = find(&preflight.findings, ids::ALREADY_DRAINING);
        assert_eq!(
            (draining.severity, draining.resources.clone()),
            (Severity::Info, vec!["i-b".to_string()])
        );
        let ssm = find(&preflight.findings, ids::SSM_UNMANAGED);
        assert_eq!(ssm.resources, vec!["i-a".to_string(), "i-c".to_string()]);
        assert!(
            ssm.summary.contains("i-a (not managed by SSM)")
                && ssm.summary.contains("i-c (SSM ping not Online)")
        );
    }

    #[test]
    fn describe_failures_are_skipped_or_block_by_reason() {
        use crate::inventory::DescribeFailure;
        let mut inventory = ready_inventory();
        inventory.container_instance_failures = vec![
            DescribeFailure {
                arn: "arn:ci/gone".into(),
                reason: "MISSING".into(),
            },
            DescribeFailure {
                arn: "arn:ci/odd".into(),
                reason: "INTERNAL".into(),
            },
        ];
        let preflight = run(&inventory, PreflightOptions::default());
        assert!(!preflight.is_ready());
        let gone = find(&preflight.findings, ids::OUT_OF_SCOPE);
        assert_eq!(gone.resources, vec!["arn:ci/gone".to_string()]);
        let odd = find(&preflight.findings, ids::UNREADABLE);
        assert!(
            odd.summary.contains("INTERNAL") && odd.resources == vec!["arn:ci/odd".to_string()]
        );
    }

    #[test]
    fn fargate_only_cluster_has_nothing_to_restart() {
        let mut inventory = ready_inventory();
        inventory.container_instances.clear();
        inventory.vpcs.clear();
        let preflight = run(&inventory, PreflightOptions::default());
        assert!(preflight.is_ready());
        assert_eq!(
            find(&preflight.findings, ids::NOTHING_TO_RESTART).severity,
            Severity::Info
        );
    }
}
