//! The seam between the tool's logic and the cloud: [`Fleet`] is shaped like the domain
//! (discover a cluster's inventory, send a restart to instances, read the command's
//! results, cancel it, read agents' state, keep the run's records on AWS, put back what
//! the tool changed), not like the SDK. `aws` is the real adapter;
//! `sim` is an in-memory cluster on tokio time for tests, the demo and estimates.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(test)]
pub mod crashing;
#[cfg(test)]
pub mod faulty;
#[cfg(test)]
pub mod gated;
pub mod operations;
pub mod sim;
pub mod workload;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use crate::inventory::{Inventory, Platform};
use crate::rollout::script::RestartMethod;
pub use workload::{AutoScaling, InstanceHealth, ServiceState, TaskInfo, Workload};

/// A restart command for instances of one platform (at most 50: SSM's limit per call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartRequest {
    pub instance_ids: Vec<String>,
    pub platform: Platform,
    pub method: RestartMethod,
    /// How long SSM may wait to deliver the command (`TimeoutSeconds`).
    pub delivery_timeout: Duration,
    /// How long the script waits for the agent to come back and connect; SSM's
    /// `executionTimeout` is this plus [`EXECUTION_GRACE`], so the script always ends
    /// on its own and prints its evidence, even when it gives up.
    pub script_wait: Duration,
}

/// The path probe (see `verify`) for instances of one platform (at most 50).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRequest {
    pub instance_ids: Vec<String>,
    pub platform: Platform,
    /// The cluster's region and account: the names the probe resolves.
    pub region: String,
    pub account: Option<String>,
    /// How long SSM may wait to deliver the command.
    pub delivery_timeout: Duration,
}

/// How long the probe may run on the instance (it only reads).
pub const PROBE_EXECUTION: Duration = Duration::from_secs(60);

/// Time the script gets beyond its own waits: the restart itself and the checks.
pub const EXECUTION_GRACE: Duration = Duration::from_secs(60);

/// The id SSM gave a command.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CommandId(pub String);

/// One instance's view of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub instance_id: String,
    pub status: InvocationStatus,
    /// Standard output (at most 2,500 characters from `ListCommandInvocations`).
    pub output: String,
}

/// SSM's invocation statuses, with `StatusDetails` where they tell different stories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InvocationStatus {
    /// Pending, InProgress, Delayed, Cancelling: not finished.
    Running,
    Success,
    /// Failed, TimedOut, Cancelled, with SSM's `StatusDetails` (DeliveryTimedOut,
    /// Undeliverable, InvalidPlatform, ExecutionTimedOut, Failed, …).
    Ended {
        status: String,
        details: String,
    },
}

/// What ECS says about one container instance's agent now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentState {
    pub container_instance_arn: String,
    pub connected: bool,
    /// ACTIVE, DRAINING, …; `None` when ECS no longer knows the instance.
    pub status: Option<String>,
    /// The container instance's `version` counter: supporting evidence only.
    pub version: Option<i64>,
}

/// A small record the tool keeps per cluster in SSM Parameter Store, so every machine
/// sees it: who holds the cluster (the lease) and which run is under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Record {
    Lease,
    Run,
}

impl Record {
    /// The parameter's name, e.g. `/privlink-restart/lease/prod`.
    pub fn parameter(self, cluster: &str) -> String {
        let kind = match self {
            Record::Lease => "lease",
            Record::Run => "run",
        };
        format!("{PARAMETER_PREFIX}/{kind}/{cluster}")
    }
}

/// Where the tool's SSM parameters live (the IAM policy scopes them to it).
pub const PARAMETER_PREFIX: &str = "/privlink-restart";

/// A custom attribute to set on a container instance, or to remove (`value: None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceMark {
    pub container_instance_arn: String,
    pub name: &'static str,
    pub value: Option<String>,
}

/// A cluster's fleet of container instances, as the tool sees it.
pub trait Fleet {
    /// Reads everything preflight and the rollout need about `cluster`. Facts that fail
    /// to read on their own come back as [`crate::inventory::Fact`] errors; only a cluster
    /// that cannot be found or listed at all is an `Err`.
    fn discover(&self, cluster: &str)
        -> impl Future<Output = Result<Inventory, FleetError>> + Send;

    /// Sends the restart script to the instances; returns the command's id.
    fn send_restart(
        &self,
        request: &RestartRequest,
    ) -> impl Future<Output = Result<CommandId, FleetError>> + Send;

    /// Sends the path probe to the instances; returns the command's id. Its results are
    /// read like a restart's.
    fn send_probe(
        &self,
        request: &ProbeRequest,
    ) -> impl Future<Output = Result<CommandId, FleetError>> + Send;

    /// Each requested instance's invocation of the command. Right after sending, SSM may
    /// not list an instance yet: it is then simply absent from the answer.
    fn command_results(
        &self,
        command: &CommandId,
    ) -> impl Future<Output = Result<Vec<Invocation>, FleetError>> + Send;

    /// One instance's whole standard output (up to 24,000 characters): for when the
    /// listing's 2,500 characters cut the evidence off.
    fn command_output(
        &self,
        command: &CommandId,
        instance_id: &str,
    ) -> impl Future<Output = Result<String, FleetError>> + Send;

    /// Cancels the command where it has not finished.
    fn cancel(
        &self,
        command: &CommandId,
        instance_ids: &[String],
    ) -> impl Future<Output = Result<(), FleetError>> + Send;

    /// The agents' state, one entry per container instance ECS still knows.
    fn agent_states(
        &self,
        cluster: &str,
        container_instance_arns: &[String],
    ) -> impl Future<Output = Result<Vec<AgentState>, FleetError>> + Send;

    /// Sets or removes custom attributes on container instances (the done marker, the
    /// restore record).
    fn write_instance_marks(
        &self,
        cluster: &str,
        marks: &[InstanceMark],
    ) -> impl Future<Output = Result<(), FleetError>> + Send;

    /// The region's Auto Scaling groups that carry a restore record, with its value.
    fn group_marks(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, FleetError>> + Send;

    /// Sets the group's restore record, or removes it (`None`).
    fn write_group_mark(
        &self,
        group: &str,
        value: Option<&str>,
    ) -> impl Future<Output = Result<(), FleetError>> + Send;

    /// The record's value, `None` when there is none.
    fn read_record(
        &self,
        cluster: &str,
        record: Record,
    ) -> impl Future<Output = Result<Option<String>, FleetError>> + Send;

    /// Writes the record; without `overwrite` only if there is none (atomically: of two
    /// writers exactly one succeeds). Whether it was written.
    fn write_record(
        &self,
        cluster: &str,
        record: Record,
        value: &str,
        overwrite: bool,
    ) -> impl Future<Output = Result<bool, FleetError>> + Send;

    /// Removes the record; none there is fine.
    fn delete_record(
        &self,
        cluster: &str,
        record: Record,
    ) -> impl Future<Output = Result<(), FleetError>> + Send;

    /// Sets container instances DRAINING, or ACTIVE again.
    fn set_draining(
        &self,
        cluster: &str,
        container_instance_arns: &[String],
        draining: bool,
    ) -> impl Future<Output = Result<(), FleetError>> + Send;

    /// Sets or removes the instances' scale-in protection in their Auto Scaling group.
    fn set_scale_in_protection(
        &self,
        group: &str,
        instance_ids: &[String],
        protected: bool,
    ) -> impl Future<Output = Result<(), FleetError>> + Send;

    /// Suspends or resumes Auto Scaling processes (`HealthCheck`, …) on the group.
    fn set_processes_suspended(
        &self,
        group: &str,
        processes: &[String],
        suspended: bool,
    ) -> impl Future<Output = Result<(), FleetError>> + Send;

    /// Moves instances into Standby (keeping the desired capacity's count of running
    /// instances) or back into service; an instance already there is left as it is.
    fn set_standby(
        &self,
        group: &str,
        instance_ids: &[String],
        standby: bool,
    ) -> impl Future<Output = Result<(), FleetError>> + Send;

    /// The cluster's hosts (remaining CPU and memory, ports in use, attributes), its
    /// services (placement rules, desired and running counts, deployments) and its
    /// running tasks: what a drain decision needs.
    fn workload(&self, cluster: &str) -> impl Future<Output = Result<Workload, FleetError>> + Send;

    /// The named services now (a name ECS does not know is absent).
    fn services(
        &self,
        cluster: &str,
        names: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, ServiceState>, FleetError>> + Send;

    /// The running tasks on these container instances, given as (container-instance
    /// ARN, EC2 instance id): what a drain waits on, without reading the whole cluster.
    fn tasks_on(
        &self,
        cluster: &str,
        instances: &[(String, String)],
    ) -> impl Future<Output = Result<Vec<TaskInfo>, FleetError>> + Send;

    /// The Auto Scaling groups of these instances, with each instance's place in its
    /// group, and whether the cluster's capacity providers manage termination
    /// protection for a group.
    fn auto_scaling(
        &self,
        cluster: &str,
        instance_ids: &[String],
    ) -> impl Future<Output = Result<AutoScaling, FleetError>> + Send;

    /// EC2's view of the instances now; an instance EC2 no longer knows is absent.
    fn instance_health(
        &self,
        instance_ids: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, InstanceHealth>, FleetError>> + Send;

    /// Reboots the instances (`RebootInstances`).
    fn reboot(
        &self,
        instance_ids: &[String],
    ) -> impl Future<Output = Result<(), FleetError>> + Send;

    /// Each instance's boot id, read over SSM; instances it could not be read from
    /// (not managed, not answering within a minute) are absent.
    fn boot_ids(
        &self,
        instance_ids: &[String],
        platform: Platform,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, FleetError>> + Send;

    /// AWS requests sent so far, per IAM action (`ecs:DescribeClusters` → 1).
    fn request_counts(&self) -> BTreeMap<String, u64>;
}

/// How to reach AWS: the standard chain, overridden where the user said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    pub region: Option<String>,
    pub profile: Option<String>,
    /// Overrides every service's endpoint (else `AWS_ENDPOINT_URL*` and the defaults apply).
    pub endpoint_url: Option<String>,
    /// Attempts per request, the first included (adaptive retry mode).
    pub max_attempts: u32,
}

/// Attempts for a call AWS throttled (after the SDK's own retries).
const THROTTLE_ATTEMPTS: u32 = 5;

/// Calls the fleet, retrying what AWS throttled with a growing pause (1 s, 2 s, …).
pub async fn patiently<T, Fut>(mut call: impl FnMut() -> Fut) -> Result<T, FleetError>
where
    Fut: Future<Output = Result<T, FleetError>>,
{
    let mut pause = Duration::from_secs(1);
    let mut attempt = 1;
    loop {
        match call().await {
            Err(FleetError::Throttled { .. }) if attempt < THROTTLE_ATTEMPTS => {
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn no_credentials(reason: &str, profile: Option<&str>) -> String {
    match profile {
        Some(p) => format!(
            "no usable AWS credentials for profile \"{p}\" ({reason}); check that the profile is in ~/.aws/config or ~/.aws/credentials (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE), or log in (`aws sso login --profile {p}`)"
        ),
        None => format!(
            "no usable AWS credentials ({reason}); log in (`aws sso login`), or pass --profile / set AWS_PROFILE or AWS_ACCESS_KEY_ID"
        ),
    }
}

/// Why the fleet could not be reached or the cluster not read at all (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("cluster \"{cluster}\" not found in {region}{}; check --region or --profile", account.as_deref().map(|a| format!(" (account {a})")).unwrap_or_default())]
    ClusterNotFound {
        cluster: String,
        region: String,
        account: Option<String>,
    },

    #[error("no AWS region: pass --region, set AWS_REGION, or set a region in the profile")]
    NoRegion,

    #[error("{}", no_credentials(reason, profile.as_deref()))]
    NoCredentials {
        reason: String,
        profile: Option<String>,
    },

    #[error("AWS rejected the credentials for {action} ({reason}); log in again (`aws sso login`) or check --profile / AWS_PROFILE; in an opt-in region, enable the region for the account first")]
    CredentialsRejected { action: String, reason: String },

    #[error("cannot reach AWS at {endpoint} ({action}: {reason}); check the region (--region or the profile's: one that does not exist fails this way), --endpoint-url if one is set, the network or a proxy")]
    Unreachable {
        endpoint: String,
        action: String,
        reason: String,
    },

    #[error("{action} was denied on {scope} ({reason}); allow it to the caller: `privlink-restart iam-policy` prints the policy (docs/IAM.md)")]
    AccessDenied {
        action: String,
        scope: String,
        reason: String,
    },

    #[error("{action} failed on {scope}: {reason}; run again, and see docs/TROUBLESHOOTING.md if it persists")]
    Aws {
        action: String,
        scope: String,
        reason: String,
    },

    #[error("{action} was throttled by AWS on {scope}; retries did not get through: run again in a few minutes, or raise --max-attempts (at most 20)")]
    Throttled { action: String, scope: String },

    #[error("{action}: SSM refuses commands for {} (not managed by SSM, or not running)", instance_ids.join(", "))]
    InvalidInstances {
        action: String,
        instance_ids: Vec<String>,
    },
}
