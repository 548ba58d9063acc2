//! The run's records on AWS and the restores: container-instance attributes (ECS), the
//! restore tag, processes, protection and Standby (Auto Scaling), and the lease and run
//! records (SSM Parameter Store).

use std::collections::BTreeMap;

use aws_sdk_autoscaling::types::{Filter as AsgFilter, LifecycleState, Tag};
use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::{Attribute, ContainerInstanceStatus};
use aws_sdk_ssm::types::ParameterType;

use super::{AwsFleet, CallError};
use crate::fleet::{FleetError, InstanceMark, Record};
use crate::journal::marks::OWES_TAG;

/// `PutAttributes`, `DeleteAttributes` and `UpdateContainerInstancesState` take at most 10.
const ECS_WRITE_BATCH: usize = 10;
/// `SetInstanceProtection` and `DescribeAutoScalingInstances` take at most 50 instances.
const ASG_BATCH: usize = 50;
/// `EnterStandby` and `ExitStandby` take at most 20 instances.
const STANDBY_BATCH: usize = 20;

pub(super) async fn write_instance_marks(
    fleet: &AwsFleet,
    cluster: &str,
    marks: &[InstanceMark],
) -> Result<(), FleetError> {
    let attribute = |mark: &InstanceMark| {
        Attribute::builder()
            .name(mark.name)
            .set_value(mark.value.clone())
            // The full ARN, so no targetType is needed.
            .target_id(&mark.container_instance_arn)
            .build()
            .map_err(|e| FleetError::Aws {
                action: "ecs:PutAttributes".into(),
                scope: mark.container_instance_arn.clone(),
                reason: e.to_string(),
            })
    };
    let (puts, deletes): (Vec<&InstanceMark>, Vec<&InstanceMark>) =
        marks.iter().partition(|m| m.value.is_some());
    for batch in puts.chunks(ECS_WRITE_BATCH) {
        let attributes = batch
            .iter()
            .map(|m| attribute(m))
            .collect::<Result<Vec<_>, _>>()?;
        match put_attributes(fleet, cluster, attributes).await {
            // One instance of the batch left the cluster: it needs no record; write the
            // others one by one.
            Err(e) if e.code() == Some("TargetNotFoundException") => {
                for mark in batch {
                    match put_attributes(fleet, cluster, vec![attribute(mark)?]).await {
                        Err(e) if e.code() == Some("TargetNotFoundException") => {}
                        other => {
                            other.map_err(|e| {
                                CallError::from_sdk("ecs:PutAttributes", e)
                                    .fatal(&fleet.endpoint, cluster)
                            })?;
                        }
                    }
                }
            }
            other => {
                other.map_err(|e| {
                    CallError::from_sdk("ecs:PutAttributes", e).fatal(&fleet.endpoint, cluster)
                })?;
            }
        }
    }
    for batch in deletes.chunks(ECS_WRITE_BATCH) {
        let attributes = batch
            .iter()
            .map(|m| attribute(m))
            .collect::<Result<Vec<_>, _>>()?;
        let result = fleet
            .ecs
            .delete_attributes()
            .cluster(cluster)
            .set_attributes(Some(attributes))
            .send()
            .await;
        match result {
            // The instance is gone: so is its record.
            Err(e) if e.code() == Some("TargetNotFoundException") => {}
            other => {
                other.map_err(|e| {
                    CallError::from_sdk("ecs:DeleteAttributes", e).fatal(&fleet.endpoint, cluster)
                })?;
            }
        }
    }
    Ok(())
}

async fn put_attributes(
    fleet: &AwsFleet,
    cluster: &str,
    attributes: Vec<Attribute>,
) -> Result<
    (),
    aws_sdk_ecs::error::SdkError<aws_sdk_ecs::operation::put_attributes::PutAttributesError>,
> {
    fleet
        .ecs
        .put_attributes()
        .cluster(cluster)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map(drop)
}

pub(super) async fn group_marks(fleet: &AwsFleet) -> Result<BTreeMap<String, String>, FleetError> {
    let tags: Vec<aws_sdk_autoscaling::types::TagDescription> = fleet
        .autoscaling
        .describe_tags()
        .filters(AsgFilter::builder().name("key").values(OWES_TAG).build())
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| {
            CallError::from_sdk("autoscaling:DescribeTags", e)
                .fatal(&fleet.endpoint, "Auto Scaling groups")
        })?;
    Ok(tags
        .into_iter()
        .filter(|t| t.key() == Some(OWES_TAG))
        .filter_map(|t| Some((t.resource_id()?.to_string(), t.value()?.to_string())))
        .collect())
}

pub(super) async fn write_group_mark(
    fleet: &AwsFleet,
    group: &str,
    value: Option<&str>,
) -> Result<(), FleetError> {
    let tag = Tag::builder()
        .resource_id(group)
        .resource_type("auto-scaling-group")
        .key(OWES_TAG)
        .set_value(value.map(str::to_string))
        .propagate_at_launch(false)
        .build();
    match value {
        Some(_) => fleet
            .autoscaling
            .create_or_update_tags()
            .tags(tag)
            .send()
            .await
            .map(drop)
            .map_err(|e| {
                CallError::from_sdk("autoscaling:CreateOrUpdateTags", e)
                    .fatal(&fleet.endpoint, group)
            }),
        None => fleet
            .autoscaling
            .delete_tags()
            .tags(tag)
            .send()
            .await
            .map(drop)
            .map_err(|e| {
                CallError::from_sdk("autoscaling:DeleteTags", e).fatal(&fleet.endpoint, group)
            }),
    }
}

pub(super) async fn read_record(
    fleet: &AwsFleet,
    cluster: &str,
    record: Record,
) -> Result<Option<String>, FleetError> {
    let name = record.parameter(cluster);
    match fleet.ssm.get_parameter().name(&name).send().await {
        Ok(output) => Ok(output
            .parameter()
            .and_then(|p| p.value())
            .map(str::to_string)),
        Err(e) if e.code() == Some("ParameterNotFound") => Ok(None),
        Err(e) => Err(CallError::from_sdk("ssm:GetParameter", e).fatal(&fleet.endpoint, &name)),
    }
}

pub(super) async fn write_record(
    fleet: &AwsFleet,
    cluster: &str,
    record: Record,
    value: &str,
    overwrite: bool,
) -> Result<bool, FleetError> {
    let name = record.parameter(cluster);
    let result = fleet
        .ssm
        .put_parameter()
        .name(&name)
        .value(value)
        .r#type(ParameterType::String)
        .overwrite(overwrite)
        .description("privlink-restart: the run on this cluster")
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(e) if !overwrite && e.code() == Some("ParameterAlreadyExists") => Ok(false),
        Err(e) => Err(CallError::from_sdk("ssm:PutParameter", e).fatal(&fleet.endpoint, &name)),
    }
}

pub(super) async fn delete_record(
    fleet: &AwsFleet,
    cluster: &str,
    record: Record,
) -> Result<(), FleetError> {
    let name = record.parameter(cluster);
    match fleet.ssm.delete_parameter().name(&name).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("ParameterNotFound") => Ok(()),
        Err(e) => Err(CallError::from_sdk("ssm:DeleteParameter", e).fatal(&fleet.endpoint, &name)),
    }
}

pub(super) async fn set_draining(
    fleet: &AwsFleet,
    cluster: &str,
    arns: &[String],
    draining: bool,
) -> Result<(), FleetError> {
    let status = if draining {
        ContainerInstanceStatus::Draining
    } else {
        ContainerInstanceStatus::Active
    };
    for batch in arns.chunks(ECS_WRITE_BATCH) {
        let output = fleet
            .ecs
            .update_container_instances_state()
            .cluster(cluster)
            .set_container_instances(Some(batch.to_vec()))
            .status(status.clone())
            .send()
            .await
            .map_err(|e| {
                CallError::from_sdk("ecs:UpdateContainerInstancesState", e)
                    .fatal(&fleet.endpoint, cluster)
            })?;
        // An instance ECS no longer knows (MISSING) has nothing left to put back.
        if let Some(failure) = output
            .failures()
            .iter()
            .find(|f| f.reason() != Some("MISSING"))
        {
            return Err(FleetError::Aws {
                action: "ecs:UpdateContainerInstancesState".into(),
                scope: failure.arn().unwrap_or(cluster).to_string(),
                reason: failure.reason().unwrap_or("unknown failure").to_string(),
            });
        }
    }
    Ok(())
}

pub(super) async fn set_scale_in_protection(
    fleet: &AwsFleet,
    group: &str,
    ids: &[String],
    protected: bool,
) -> Result<(), FleetError> {
    for batch in ids.chunks(ASG_BATCH) {
        fleet
            .autoscaling
            .set_instance_protection()
            .auto_scaling_group_name(group)
            .set_instance_ids(Some(batch.to_vec()))
            .protected_from_scale_in(protected)
            .send()
            .await
            .map_err(|e| {
                CallError::from_sdk("autoscaling:SetInstanceProtection", e)
                    .fatal(&fleet.endpoint, group)
            })?;
    }
    Ok(())
}

pub(super) async fn set_processes_suspended(
    fleet: &AwsFleet,
    group: &str,
    processes: &[String],
    suspended: bool,
) -> Result<(), FleetError> {
    if processes.is_empty() {
        return Ok(());
    }
    if suspended {
        fleet
            .autoscaling
            .suspend_processes()
            .auto_scaling_group_name(group)
            .set_scaling_processes(Some(processes.to_vec()))
            .send()
            .await
            .map(drop)
            .map_err(|e| {
                CallError::from_sdk("autoscaling:SuspendProcesses", e).fatal(&fleet.endpoint, group)
            })
    } else {
        fleet
            .autoscaling
            .resume_processes()
            .auto_scaling_group_name(group)
            .set_scaling_processes(Some(processes.to_vec()))
            .send()
            .await
            .map(drop)
            .map_err(|e| {
                CallError::from_sdk("autoscaling:ResumeProcesses", e).fatal(&fleet.endpoint, group)
            })
    }
}

pub(super) async fn set_standby(
    fleet: &AwsFleet,
    group: &str,
    ids: &[String],
    standby: bool,
) -> Result<(), FleetError> {
    // Only instances not already where they should be: EnterStandby and ExitStandby
    // refuse the whole call for one instance in the wrong state.
    let from = if standby {
        LifecycleState::InService
    } else {
        LifecycleState::Standby
    };
    let mut movable = Vec::new();
    for batch in ids.chunks(ASG_BATCH) {
        let output = fleet
            .autoscaling
            .describe_auto_scaling_instances()
            .set_instance_ids(Some(batch.to_vec()))
            .send()
            .await
            .map_err(|e| {
                CallError::from_sdk("autoscaling:DescribeAutoScalingInstances", e)
                    .fatal(&fleet.endpoint, group)
            })?;
        movable.extend(
            output
                .auto_scaling_instances()
                .iter()
                .filter(|i| i.auto_scaling_group_name() == Some(group))
                .filter(|i| i.lifecycle_state() == Some(from.as_str()))
                .filter_map(|i| i.instance_id().map(str::to_string)),
        );
    }
    for batch in movable.chunks(STANDBY_BATCH) {
        let result = if standby {
            fleet
                .autoscaling
                .enter_standby()
                .auto_scaling_group_name(group)
                .set_instance_ids(Some(batch.to_vec()))
                .should_decrement_desired_capacity(true)
                .send()
                .await
                .map(drop)
                .map_err(|e| CallError::from_sdk("autoscaling:EnterStandby", e))
        } else {
            fleet
                .autoscaling
                .exit_standby()
                .auto_scaling_group_name(group)
                .set_instance_ids(Some(batch.to_vec()))
                .send()
                .await
                .map(drop)
                .map_err(|e| CallError::from_sdk("autoscaling:ExitStandby", e))
        };
        result.map_err(|e| e.fatal(&fleet.endpoint, group))?;
    }
    Ok(())
}
