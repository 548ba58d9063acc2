//! What the drain-and-reboot fallback reads and does on AWS: the cluster's hosts,
//! services and tasks (ECS), the instances' Auto Scaling groups and capacity providers,
//! EC2 status checks, `RebootInstances`, and the boot id read over SSM.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_autoscaling::types::InstanceRefreshStatus;
use aws_sdk_ec2::types::{Filter, SummaryStatus};
use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::{
    DesiredStatus, ManagedTerminationProtection, PlacementConstraintType, SchedulingStrategy,
};
use aws_sdk_ssm::types::CommandInvocationStatus;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use futures::{stream, StreamExt, TryStreamExt};

use super::{describe_container_instances, AwsFleet, CallError, CONCURRENCY, ECS_DESCRIBE_BATCH};
use crate::fleet::{AutoScaling, FleetError, InstanceHealth, ServiceState, TaskInfo, Workload};
use crate::inventory::Platform;
use crate::rollout::capacity::{Host, Service};
use crate::rollout::hold::{Group, Member};

/// `DescribeServices` takes at most 10 services.
const SERVICE_BATCH: usize = 10;
/// `DescribeAutoScalingInstances` takes at most 50 instances.
const ASG_INSTANCE_BATCH: usize = 50;
/// `DescribeAutoScalingGroups` takes at most 100 names.
const ASG_GROUP_BATCH: usize = 100;
/// `DescribeInstanceStatus` filters take at most 200 values; keep well under.
const EC2_BATCH: usize = 100;
/// How long a boot id read over SSM may take.
const BOOT_ID_WAIT: Duration = Duration::from_secs(60);

/// Maps a failed call to the run-stopping error it is.
fn fatal<'a, E>(
    fleet: &'a AwsFleet,
    action: &'static str,
    scope: &str,
) -> impl FnOnce(SdkError<E, HttpResponse>) -> FleetError + 'a
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let scope = scope.to_string();
    move |e| CallError::from_sdk(action, e).fatal(&fleet.endpoint, &scope)
}

pub(super) async fn workload(fleet: &AwsFleet, cluster: &str) -> Result<Workload, FleetError> {
    let arns: Vec<String> = fleet
        .ecs
        .list_container_instances()
        .cluster(cluster)
        .max_results(100)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(fatal(fleet, "ecs:ListContainerInstances", cluster))?;
    let (described, _) = describe_container_instances(fleet, cluster, &arns).await?;
    let instance_of: BTreeMap<String, String> = described
        .iter()
        .filter_map(|ci| {
            Some((
                ci.container_instance_arn()?.to_string(),
                ci.ec2_instance_id()?.to_string(),
            ))
        })
        .collect();
    let tasks = tasks(fleet, cluster, &instance_of).await?;
    let mut hosts: Vec<Host> = described
        .iter()
        .filter_map(|ci| {
            let remaining = |name: &str| {
                ci.remaining_resources()
                    .iter()
                    .find(|r| r.name() == Some(name))
            };
            let instance_id = ci.ec2_instance_id()?.to_string();
            Some(Host {
                accepts_tasks: ci.status() == Some("ACTIVE") && ci.agent_connected(),
                cpu: remaining("CPU").map_or(0, |r| i64::from(r.integer_value())),
                memory: remaining("MEMORY").map_or(0, |r| i64::from(r.integer_value())),
                ports: remaining("PORTS")
                    .map(|r| {
                        r.string_set_value()
                            .iter()
                            .filter_map(|p| p.parse().ok())
                            .collect()
                    })
                    .unwrap_or_default(),
                // ECS does not report free ENIs: unknown, so not a limit.
                enis: None,
                attributes: ci
                    .attributes()
                    .iter()
                    .map(|a| {
                        (
                            a.name().to_string(),
                            a.value().unwrap_or_default().to_string(),
                        )
                    })
                    .collect(),
                services: BTreeSet::new(),
                instance_id,
            })
        })
        .collect();
    for host in &mut hosts {
        host.services = tasks
            .iter()
            .filter(|t| t.instance_id == host.instance_id)
            .filter_map(|t| t.service().map(str::to_string))
            .collect();
    }
    let services = all_services(fleet, cluster).await?;
    Ok(Workload {
        hosts,
        services,
        tasks,
    })
}

async fn tasks(
    fleet: &AwsFleet,
    cluster: &str,
    instance_of: &BTreeMap<String, String>,
) -> Result<Vec<TaskInfo>, FleetError> {
    let arns: Vec<String> = fleet
        .ecs
        .list_tasks()
        .cluster(cluster)
        .desired_status(DesiredStatus::Running)
        .max_results(100)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(fatal(fleet, "ecs:ListTasks", cluster))?;
    describe_tasks(fleet, cluster, arns, instance_of).await
}

pub(super) async fn tasks_on(
    fleet: &AwsFleet,
    cluster: &str,
    instances: &[(String, String)],
) -> Result<Vec<TaskInfo>, FleetError> {
    let mut arns = Vec::new();
    for (container_instance, _) in instances {
        let listed: Vec<String> = fleet
            .ecs
            .list_tasks()
            .cluster(cluster)
            .container_instance(container_instance)
            .desired_status(DesiredStatus::Running)
            .max_results(100)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(fatal(fleet, "ecs:ListTasks", container_instance))?;
        arns.extend(listed);
    }
    let instance_of: BTreeMap<String, String> = instances.iter().cloned().collect();
    describe_tasks(fleet, cluster, arns, &instance_of).await
}

async fn describe_tasks(
    fleet: &AwsFleet,
    cluster: &str,
    arns: Vec<String>,
    instance_of: &BTreeMap<String, String>,
) -> Result<Vec<TaskInfo>, FleetError> {
    let batches: Vec<Vec<String>> = arns
        .chunks(ECS_DESCRIBE_BATCH)
        .map(<[String]>::to_vec)
        .collect();
    let described: Vec<Vec<aws_sdk_ecs::types::Task>> = stream::iter(batches)
        .map(|batch| async move {
            fleet
                .ecs
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(batch))
                .send()
                .await
                .map(|o| o.tasks().to_vec())
                .map_err(fatal(fleet, "ecs:DescribeTasks", cluster))
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(described
        .iter()
        .flatten()
        .filter_map(|task| {
            // Fargate tasks run on no container instance: nothing to drain.
            let instance_id = instance_of.get(task.container_instance_arn()?)?.clone();
            let number = |raw: Option<&str>| raw.and_then(|v| v.parse::<i64>().ok());
            let sum = |get: fn(&aws_sdk_ecs::types::Container) -> Option<&str>| {
                task.containers()
                    .iter()
                    .filter_map(|c| number(get(c)))
                    .sum()
            };
            Some(TaskInfo {
                task_arn: task.task_arn()?.to_string(),
                instance_id,
                group: task.group().unwrap_or_default().to_string(),
                cpu: number(task.cpu()).unwrap_or_else(|| sum(|c| c.cpu())),
                memory: number(task.memory()).unwrap_or_else(|| sum(|c| c.memory())),
                host_ports: task
                    .containers()
                    .iter()
                    .flat_map(|c| c.network_bindings())
                    .filter_map(|b| b.host_port())
                    .filter_map(|p| u16::try_from(p).ok())
                    .collect(),
                awsvpc: task
                    .attachments()
                    .iter()
                    .any(|a| a.r#type() == Some("ElasticNetworkInterface")),
            })
        })
        .collect())
}

async fn all_services(
    fleet: &AwsFleet,
    cluster: &str,
) -> Result<BTreeMap<String, ServiceState>, FleetError> {
    let arns: Vec<String> = fleet
        .ecs
        .list_services()
        .cluster(cluster)
        .max_results(100)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(fatal(fleet, "ecs:ListServices", cluster))?;
    describe_services(fleet, cluster, &arns).await
}

pub(super) async fn services(
    fleet: &AwsFleet,
    cluster: &str,
    names: &[String],
) -> Result<BTreeMap<String, ServiceState>, FleetError> {
    describe_services(fleet, cluster, names).await
}

/// `DescribeServices` for services by name or ARN, 10 per call.
async fn describe_services(
    fleet: &AwsFleet,
    cluster: &str,
    arns: &[String],
) -> Result<BTreeMap<String, ServiceState>, FleetError> {
    let batches: Vec<Vec<String>> = arns.chunks(SERVICE_BATCH).map(<[String]>::to_vec).collect();
    let described: Vec<Vec<aws_sdk_ecs::types::Service>> = stream::iter(batches)
        .map(|batch| async move {
            fleet
                .ecs
                .describe_services()
                .cluster(cluster)
                .set_services(Some(batch))
                .send()
                .await
                .map(|o| o.services().to_vec())
                .map_err(fatal(fleet, "ecs:DescribeServices", cluster))
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(described
        .iter()
        .flatten()
        .filter_map(|s| {
            let name = s.service_name()?.to_string();
            let config = s.deployment_configuration();
            let daemon = s.scheduling_strategy() == Some(&SchedulingStrategy::Daemon);
            let constraints = s.placement_constraints();
            let state = ServiceState {
                service: Service {
                    name: name.clone(),
                    daemon,
                    // ECS's defaults for the rolling-update deployment controller.
                    minimum_healthy_percent: config
                        .and_then(|c| c.minimum_healthy_percent())
                        .unwrap_or(if daemon { 0 } else { 100 }),
                    maximum_percent: config
                        .and_then(|c| c.maximum_percent())
                        .unwrap_or(if daemon { 100 } else { 200 }),
                    running: u32::try_from(s.running_count()).unwrap_or(0),
                    distinct_instance: constraints
                        .iter()
                        .any(|c| c.r#type() == Some(&PlacementConstraintType::DistinctInstance)),
                    member_of: constraints
                        .iter()
                        .filter(|c| c.r#type() == Some(&PlacementConstraintType::MemberOf))
                        .filter_map(|c| c.expression().map(str::to_string))
                        .collect(),
                },
                desired: u32::try_from(s.desired_count()).unwrap_or(0),
                deployments: u32::try_from(s.deployments().len()).unwrap_or(u32::MAX),
            };
            Some((name, state))
        })
        .collect())
}

pub(super) async fn auto_scaling(
    fleet: &AwsFleet,
    cluster: &str,
    instance_ids: &[String],
) -> Result<AutoScaling, FleetError> {
    let mut scaling = AutoScaling::default();
    for batch in instance_ids.chunks(ASG_INSTANCE_BATCH) {
        let output = fleet
            .autoscaling
            .describe_auto_scaling_instances()
            .set_instance_ids(Some(batch.to_vec()))
            .send()
            .await
            .map_err(fatal(
                fleet,
                "autoscaling:DescribeAutoScalingInstances",
                cluster,
            ))?;
        for details in output.auto_scaling_instances() {
            let (Some(id), Some(group)) =
                (details.instance_id(), details.auto_scaling_group_name())
            else {
                continue;
            };
            scaling.members.insert(
                id.to_string(),
                (
                    group.to_string(),
                    Member {
                        lifecycle_state: details.lifecycle_state().unwrap_or_default().to_string(),
                        protected_from_scale_in: details.protected_from_scale_in().unwrap_or(false),
                    },
                ),
            );
        }
    }
    let names: Vec<String> = scaling
        .members
        .values()
        .map(|(group, _)| group.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if names.is_empty() {
        return Ok(scaling);
    }
    let managed = managed_termination_protection(fleet, cluster).await?;
    for batch in names.chunks(ASG_GROUP_BATCH) {
        let output = fleet
            .autoscaling
            .describe_auto_scaling_groups()
            .set_auto_scaling_group_names(Some(batch.to_vec()))
            .send()
            .await
            .map_err(fatal(
                fleet,
                "autoscaling:DescribeAutoScalingGroups",
                cluster,
            ))?;
        for group in output.auto_scaling_groups() {
            let Some(name) = group.auto_scaling_group_name() else {
                continue;
            };
            scaling.groups.insert(
                name.to_string(),
                Group {
                    name: name.to_string(),
                    min_size: group.min_size().unwrap_or(0),
                    max_size: group.max_size().unwrap_or(0),
                    desired: group.desired_capacity().unwrap_or(0),
                    suspended: group
                        .suspended_processes()
                        .iter()
                        .filter_map(|p| p.process_name().map(str::to_string))
                        .collect(),
                    instance_refresh_in_progress: false,
                    managed_termination_protection: managed.contains(name),
                },
            );
        }
    }
    for (name, group) in &mut scaling.groups {
        let output = fleet
            .autoscaling
            .describe_instance_refreshes()
            .auto_scaling_group_name(name.as_str())
            .max_records(10)
            .send()
            .await
            .map_err(fatal(fleet, "autoscaling:DescribeInstanceRefreshes", name))?;
        group.instance_refresh_in_progress = output.instance_refreshes().iter().any(|r| {
            matches!(
                r.status(),
                Some(
                    InstanceRefreshStatus::Pending
                        | InstanceRefreshStatus::InProgress
                        | InstanceRefreshStatus::Cancelling
                        | InstanceRefreshStatus::RollbackInProgress
                        | InstanceRefreshStatus::Baking
                )
            )
        });
    }
    Ok(scaling)
}

/// The names of the Auto Scaling groups whose capacity provider (of this cluster)
/// manages termination protection.
async fn managed_termination_protection(
    fleet: &AwsFleet,
    cluster: &str,
) -> Result<BTreeSet<String>, FleetError> {
    let output = fleet
        .ecs
        .describe_clusters()
        .clusters(cluster)
        .send()
        .await
        .map_err(fatal(fleet, "ecs:DescribeClusters", cluster))?;
    let providers: Vec<String> = output
        .clusters()
        .iter()
        .flat_map(|c| c.capacity_providers().iter().cloned())
        .filter(|p| p != "FARGATE" && p != "FARGATE_SPOT")
        .collect();
    if providers.is_empty() {
        return Ok(BTreeSet::new());
    }
    let output = fleet
        .ecs
        .describe_capacity_providers()
        .set_capacity_providers(Some(providers))
        .send()
        .await
        .map_err(fatal(fleet, "ecs:DescribeCapacityProviders", cluster))?;
    Ok(output
        .capacity_providers()
        .iter()
        .filter_map(|p| p.auto_scaling_group_provider())
        .filter(|p| {
            p.managed_termination_protection() == Some(&ManagedTerminationProtection::Enabled)
        })
        .filter_map(|p| {
            p.auto_scaling_group_arn()
                .rsplit_once("autoScalingGroupName/")
                .map(|(_, name)| name.to_string())
        })
        .collect())
}

pub(super) async fn instance_health(
    fleet: &AwsFleet,
    instance_ids: &[String],
) -> Result<BTreeMap<String, InstanceHealth>, FleetError> {
    let mut health = BTreeMap::new();
    let scope = format!("{} instances", instance_ids.len());
    for batch in instance_ids.chunks(EC2_BATCH) {
        // A filter, not InstanceIds: an instance EC2 no longer knows is simply absent
        // instead of failing the whole call.
        let statuses: Vec<aws_sdk_ec2::types::InstanceStatus> = fleet
            .ec2
            .describe_instance_status()
            .include_all_instances(true)
            .filters(
                Filter::builder()
                    .name("instance-id")
                    .set_values(Some(batch.to_vec()))
                    .build(),
            )
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(fatal(fleet, "ec2:DescribeInstanceStatus", &scope))?;
        for status in statuses {
            let Some(id) = status.instance_id() else {
                continue;
            };
            let ok = |summary: Option<&aws_sdk_ec2::types::InstanceStatusSummary>| {
                summary.and_then(|s| s.status()) == Some(&SummaryStatus::Ok)
            };
            health.insert(
                id.to_string(),
                InstanceHealth {
                    state: status
                        .instance_state()
                        .and_then(|s| s.name())
                        .map_or_else(|| "unknown".to_string(), |n| n.as_str().to_string()),
                    status_ok: ok(status.instance_status()) && ok(status.system_status()),
                    lifecycle_state: None,
                },
            );
        }
    }
    // Auto Scaling's view: an instance it is terminating is leaving too.
    for batch in instance_ids.chunks(ASG_INSTANCE_BATCH) {
        let output = fleet
            .autoscaling
            .describe_auto_scaling_instances()
            .set_instance_ids(Some(batch.to_vec()))
            .send()
            .await
            .map_err(fatal(
                fleet,
                "autoscaling:DescribeAutoScalingInstances",
                &scope,
            ))?;
        for details in output.auto_scaling_instances() {
            if let Some(entry) = details.instance_id().and_then(|id| health.get_mut(id)) {
                entry.lifecycle_state = details.lifecycle_state().map(str::to_string);
            }
        }
    }
    Ok(health)
}

pub(super) async fn reboot(fleet: &AwsFleet, instance_ids: &[String]) -> Result<(), FleetError> {
    let scope = instance_ids.join(", ");
    fleet
        .ec2
        .reboot_instances()
        .set_instance_ids(Some(instance_ids.to_vec()))
        .send()
        .await
        .map_err(fatal(fleet, "ec2:RebootInstances", &scope))?;
    Ok(())
}

pub(super) async fn boot_ids(
    fleet: &AwsFleet,
    instance_ids: &[String],
    platform: Platform,
) -> Result<BTreeMap<String, String>, FleetError> {
    let document = platform.ssm_document();
    let command = match platform {
        Platform::Linux => "cat /proc/sys/kernel/random/boot_id",
        // Windows has no boot id: the last boot time serves the same purpose.
        Platform::Windows => {
            "(Get-CimInstance Win32_OperatingSystem).LastBootUpTime.ToFileTimeUtc()"
        }
    };
    let scope = format!("{} instances", instance_ids.len());
    let sent = fleet
        .ssm
        .send_command()
        .document_name(document)
        .set_instance_ids(Some(instance_ids.to_vec()))
        .parameters("commands", vec![command.to_string()])
        .parameters("executionTimeout", vec!["30".into()])
        .timeout_seconds(30)
        .max_concurrency("100%")
        .max_errors("100%")
        .comment("privlink-restart: read the boot id around a reboot")
        .send()
        .await;
    let command_id = match sent {
        Ok(output) => output
            .command()
            .and_then(|c| c.command_id())
            .map(str::to_string)
            .unwrap_or_default(),
        // Some instance cannot take commands (down, not managed): no boot ids this time.
        Err(e) if e.code() == Some("InvalidInstanceId") => return Ok(BTreeMap::new()),
        Err(e) => {
            return Err(CallError::from_sdk("ssm:SendCommand", e).fatal(&fleet.endpoint, &scope))
        }
    };
    let started = tokio::time::Instant::now();
    let mut ids = BTreeMap::new();
    while started.elapsed() < BOOT_ID_WAIT {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let invocations: Vec<aws_sdk_ssm::types::CommandInvocation> = fleet
            .ssm
            .list_command_invocations()
            .command_id(&command_id)
            .details(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(fatal(fleet, "ssm:ListCommandInvocations", &command_id))?;
        let finished = invocations.len() >= instance_ids.len()
            && invocations.iter().all(|i| {
                !matches!(
                    i.status(),
                    Some(
                        CommandInvocationStatus::Pending
                            | CommandInvocationStatus::InProgress
                            | CommandInvocationStatus::Delayed
                    )
                )
            });
        if finished {
            for invocation in &invocations {
                let output: String = invocation
                    .command_plugins()
                    .iter()
                    .filter_map(|p| p.output())
                    .collect::<Vec<_>>()
                    .join("");
                let boot = output.trim();
                if invocation.status() == Some(&CommandInvocationStatus::Success)
                    && !boot.is_empty()
                {
                    if let Some(id) = invocation.instance_id() {
                        ids.insert(id.to_string(), boot.to_string());
                    }
                }
            }
            break;
        }
    }
    Ok(ids)
}
