//! Acting on agents over AWS: SSM Run Command to restart them, ECS to read their state.

use aws_sdk_ssm::types::CommandInvocationStatus;

use super::{describe_container_instances, AwsFleet, CallError};
use crate::fleet::{
    AgentState, CommandId, FleetError, Invocation, InvocationStatus, ProbeRequest, RestartRequest,
    EXECUTION_GRACE, PROBE_EXECUTION,
};
use crate::inventory::Platform;
use crate::rollout::script::{linux_restart_commands, windows_restart_commands};
use crate::verify::probe::{linux_probe_commands, windows_probe_commands};

/// SSM refuses a delivery timeout under 30 seconds.
const MIN_DELIVERY_TIMEOUT_SECONDS: i32 = 30;

pub(super) async fn send_restart(
    fleet: &AwsFleet,
    request: &RestartRequest,
) -> Result<CommandId, FleetError> {
    let commands = match request.platform {
        Platform::Linux => linux_restart_commands(request.method, request.script_wait),
        Platform::Windows => windows_restart_commands(request.script_wait),
    };
    send(
        fleet,
        Script {
            document: request.platform.ssm_document(),
            commands,
            ids: &request.instance_ids,
            delivery: request.delivery_timeout,
            execution: request.script_wait + EXECUTION_GRACE,
            comment: "privlink-restart: restart the ECS agent onto the VPC endpoints",
        },
    )
    .await
}

pub(super) async fn send_probe(
    fleet: &AwsFleet,
    request: &ProbeRequest,
) -> Result<CommandId, FleetError> {
    let account = request.account.as_deref();
    let commands = match request.platform {
        Platform::Linux => linux_probe_commands(&request.region, account),
        Platform::Windows => windows_probe_commands(&request.region, account),
    };
    send(
        fleet,
        Script {
            document: request.platform.ssm_document(),
            commands,
            ids: &request.instance_ids,
            delivery: request.delivery_timeout,
            execution: PROBE_EXECUTION,
            comment: "privlink-restart: probe which path the ECS agent uses",
        },
    )
    .await
}

/// One script for a batch of instances.
struct Script<'a> {
    document: &'static str,
    commands: String,
    ids: &'a [String],
    delivery: std::time::Duration,
    execution: std::time::Duration,
    comment: &'static str,
}

async fn send(fleet: &AwsFleet, script: Script<'_>) -> Result<CommandId, FleetError> {
    let scope = format!("{} instances", script.ids.len());
    let delivery = i32::try_from(script.delivery.as_secs())
        .unwrap_or(i32::MAX)
        .max(MIN_DELIVERY_TIMEOUT_SECONDS);
    let output = fleet
        .ssm
        .send_command()
        .document_name(script.document)
        .set_instance_ids(Some(script.ids.to_vec()))
        .parameters("commands", vec![script.commands])
        .parameters(
            "executionTimeout",
            vec![script.execution.as_secs().to_string()],
        )
        .timeout_seconds(delivery)
        // Every instance is judged on its own: never let SSM stop delivering on errors.
        .max_concurrency("100%")
        .max_errors("100%")
        .comment(script.comment)
        .send()
        .await
        .map_err(|e| CallError::from_sdk("ssm:SendCommand", e).fatal(&fleet.endpoint, &scope))?;
    output
        .command()
        .and_then(|c| c.command_id())
        .map(|id| CommandId(id.to_string()))
        .ok_or_else(|| FleetError::Aws {
            action: "ssm:SendCommand".into(),
            scope,
            reason: "the answer has no command id".into(),
        })
}

pub(super) async fn command_results(
    fleet: &AwsFleet,
    command: &CommandId,
) -> Result<Vec<Invocation>, FleetError> {
    let invocations: Vec<aws_sdk_ssm::types::CommandInvocation> = fleet
        .ssm
        .list_command_invocations()
        .command_id(&command.0)
        .details(true)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| {
            CallError::from_sdk("ssm:ListCommandInvocations", e).fatal(&fleet.endpoint, &command.0)
        })?;
    Ok(invocations
        .iter()
        .filter_map(|invocation| {
            let status = match invocation.status()? {
                CommandInvocationStatus::Success => InvocationStatus::Success,
                CommandInvocationStatus::Pending
                | CommandInvocationStatus::InProgress
                | CommandInvocationStatus::Delayed
                | CommandInvocationStatus::Cancelling => InvocationStatus::Running,
                other => InvocationStatus::Ended {
                    status: other.as_str().to_string(),
                    details: invocation.status_details().unwrap_or_default().to_string(),
                },
            };
            let output = invocation
                .command_plugins()
                .iter()
                .filter_map(|plugin| plugin.output())
                .collect::<Vec<_>>()
                .join("\n");
            Some(Invocation {
                instance_id: invocation.instance_id()?.to_string(),
                status,
                output,
            })
        })
        .collect())
}

pub(super) async fn command_output(
    fleet: &AwsFleet,
    command: &CommandId,
    instance_id: &str,
) -> Result<String, FleetError> {
    let output = fleet
        .ssm
        .get_command_invocation()
        .command_id(&command.0)
        .instance_id(instance_id)
        .send()
        .await
        .map_err(|e| {
            CallError::from_sdk("ssm:GetCommandInvocation", e).fatal(&fleet.endpoint, instance_id)
        })?;
    Ok(output
        .standard_output_content()
        .unwrap_or_default()
        .to_string())
}

pub(super) async fn cancel(
    fleet: &AwsFleet,
    command: &CommandId,
    instance_ids: &[String],
) -> Result<(), FleetError> {
    fleet
        .ssm
        .cancel_command()
        .command_id(&command.0)
        .set_instance_ids(Some(instance_ids.to_vec()))
        .send()
        .await
        .map_err(|e| {
            CallError::from_sdk("ssm:CancelCommand", e).fatal(&fleet.endpoint, &command.0)
        })?;
    Ok(())
}

pub(super) async fn agent_states(
    fleet: &AwsFleet,
    cluster: &str,
    container_instance_arns: &[String],
) -> Result<Vec<AgentState>, FleetError> {
    let (described, _missing) =
        describe_container_instances(fleet, cluster, container_instance_arns).await?;
    Ok(described
        .iter()
        .map(|ci| AgentState {
            container_instance_arn: ci.container_instance_arn().unwrap_or_default().to_string(),
            connected: ci.agent_connected(),
            status: ci.status().map(str::to_string),
            version: Some(ci.version()),
        })
        .collect())
}
