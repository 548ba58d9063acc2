//! The AWS adapter: the only code that talks to the AWS SDK. It loads the standard
//! configuration chain, counts requests, paginates and batches, and maps SDK errors to
//! the tool's errors — nothing else in the crate sees an SDK type.

mod commands;
mod counter;
mod discover;
mod fallback;
mod records;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

use self::counter::RequestCounter;
use super::{
    AgentState, AutoScaling, CommandId, Fleet, FleetError, InstanceHealth, InstanceMark,
    Invocation, ProbeRequest, Record, RestartRequest, ServiceState, TaskInfo, Workload,
};
use crate::inventory::{Inventory, Platform, Unreadable};

use super::AwsSettings;

/// A cluster's fleet on AWS.
pub struct AwsFleet {
    ecs: aws_sdk_ecs::Client,
    ec2: aws_sdk_ec2::Client,
    ssm: aws_sdk_ssm::Client,
    autoscaling: aws_sdk_autoscaling::Client,
    region: String,
    /// Where requests go, for error messages.
    endpoint: String,
    requests: RequestCounter,
}

impl AwsFleet {
    /// Loads the configuration and resolves credentials once, so a missing login is
    /// reported as such before any AWS request.
    pub async fn connect(settings: &AwsSettings) -> Result<AwsFleet, FleetError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::adaptive().with_max_attempts(settings.max_attempts.max(1)))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .build(),
            );
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(profile) = &settings.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let config = loader.load().await;
        let config = match &settings.profile {
            // A profile named on the command line is the one used, as with the AWS CLI:
            // the default chain would take keys left in the environment first, and run
            // against whatever account those belong to. Its region (from --region or
            // the profile) reaches the provider, which an assume-role profile's STS
            // call needs.
            Some(profile) => {
                let provider = aws_config::profile::ProfileFileCredentialsProvider::builder()
                    .profile_name(profile)
                    .configure(
                        &aws_config::provider_config::ProviderConfig::default()
                            .with_region(config.region().cloned()),
                    )
                    .build();
                config
                    .to_builder()
                    .credentials_provider(SharedCredentialsProvider::new(provider))
                    .build()
            }
            None => config,
        };
        let region = config
            .region()
            .map(|r| r.to_string())
            .ok_or(FleetError::NoRegion)?;
        let provider = config
            .credentials_provider()
            .ok_or_else(|| FleetError::NoCredentials {
                reason: "no credentials provider is configured".into(),
                profile: settings.profile.clone(),
            })?;
        provider
            .provide_credentials()
            .await
            .map_err(|e| FleetError::NoCredentials {
                reason: causes(&e).replace('\n', " "),
                profile: settings.profile.clone(),
            })?;
        let endpoint = config
            .endpoint_url()
            .map(str::to_string)
            .unwrap_or_else(|| format!("the AWS endpoints of {region}"));
        let requests = RequestCounter::default();
        let ecs = aws_sdk_ecs::Client::from_conf(
            aws_sdk_ecs::config::Builder::from(&config)
                .interceptor(requests.clone())
                .build(),
        );
        let ec2 = aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(&config)
                .interceptor(requests.clone())
                .build(),
        );
        let ssm = aws_sdk_ssm::Client::from_conf(
            aws_sdk_ssm::config::Builder::from(&config)
                .interceptor(requests.clone())
                .build(),
        );
        let autoscaling = aws_sdk_autoscaling::Client::from_conf(
            aws_sdk_autoscaling::config::Builder::from(&config)
                .interceptor(requests.clone())
                .build(),
        );
        Ok(AwsFleet {
            ecs,
            ec2,
            ssm,
            autoscaling,
            region,
            endpoint,
            requests,
        })
    }
}

impl Fleet for AwsFleet {
    async fn discover(&self, cluster: &str) -> Result<Inventory, FleetError> {
        discover::discover(self, cluster).await
    }

    async fn send_restart(&self, request: &RestartRequest) -> Result<CommandId, FleetError> {
        commands::send_restart(self, request).await
    }

    async fn send_probe(&self, request: &ProbeRequest) -> Result<CommandId, FleetError> {
        commands::send_probe(self, request).await
    }

    async fn command_results(&self, command: &CommandId) -> Result<Vec<Invocation>, FleetError> {
        commands::command_results(self, command).await
    }

    async fn command_output(
        &self,
        command: &CommandId,
        instance_id: &str,
    ) -> Result<String, FleetError> {
        commands::command_output(self, command, instance_id).await
    }

    async fn cancel(&self, command: &CommandId, instance_ids: &[String]) -> Result<(), FleetError> {
        commands::cancel(self, command, instance_ids).await
    }

    async fn agent_states(
        &self,
        cluster: &str,
        container_instance_arns: &[String],
    ) -> Result<Vec<AgentState>, FleetError> {
        commands::agent_states(self, cluster, container_instance_arns).await
    }

    async fn write_instance_marks(
        &self,
        cluster: &str,
        marks: &[InstanceMark],
    ) -> Result<(), FleetError> {
        records::write_instance_marks(self, cluster, marks).await
    }

    async fn group_marks(&self) -> Result<BTreeMap<String, String>, FleetError> {
        records::group_marks(self).await
    }

    async fn write_group_mark(&self, group: &str, value: Option<&str>) -> Result<(), FleetError> {
        records::write_group_mark(self, group, value).await
    }

    async fn read_record(
        &self,
        cluster: &str,
        record: Record,
    ) -> Result<Option<String>, FleetError> {
        records::read_record(self, cluster, record).await
    }

    async fn write_record(
        &self,
        cluster: &str,
        record: Record,
        value: &str,
        overwrite: bool,
    ) -> Result<bool, FleetError> {
        records::write_record(self, cluster, record, value, overwrite).await
    }

    async fn delete_record(&self, cluster: &str, record: Record) -> Result<(), FleetError> {
        records::delete_record(self, cluster, record).await
    }

    async fn set_draining(
        &self,
        cluster: &str,
        container_instance_arns: &[String],
        draining: bool,
    ) -> Result<(), FleetError> {
        records::set_draining(self, cluster, container_instance_arns, draining).await
    }

    async fn set_scale_in_protection(
        &self,
        group: &str,
        instance_ids: &[String],
        protected: bool,
    ) -> Result<(), FleetError> {
        records::set_scale_in_protection(self, group, instance_ids, protected).await
    }

    async fn set_processes_suspended(
        &self,
        group: &str,
        processes: &[String],
        suspended: bool,
    ) -> Result<(), FleetError> {
        records::set_processes_suspended(self, group, processes, suspended).await
    }

    async fn set_standby(
        &self,
        group: &str,
        instance_ids: &[String],
        standby: bool,
    ) -> Result<(), FleetError> {
        records::set_standby(self, group, instance_ids, standby).await
    }

    async fn workload(&self, cluster: &str) -> Result<Workload, FleetError> {
        fallback::workload(self, cluster).await
    }

    async fn services(
        &self,
        cluster: &str,
        names: &[String],
    ) -> Result<BTreeMap<String, ServiceState>, FleetError> {
        fallback::services(self, cluster, names).await
    }

    async fn tasks_on(
        &self,
        cluster: &str,
        instances: &[(String, String)],
    ) -> Result<Vec<TaskInfo>, FleetError> {
        fallback::tasks_on(self, cluster, instances).await
    }

    async fn auto_scaling(
        &self,
        cluster: &str,
        instance_ids: &[String],
    ) -> Result<AutoScaling, FleetError> {
        fallback::auto_scaling(self, cluster, instance_ids).await
    }

    async fn instance_health(
        &self,
        instance_ids: &[String],
    ) -> Result<BTreeMap<String, InstanceHealth>, FleetError> {
        fallback::instance_health(self, instance_ids).await
    }

    async fn reboot(&self, instance_ids: &[String]) -> Result<(), FleetError> {
        fallback::reboot(self, instance_ids).await
    }

    async fn boot_ids(
        &self,
        instance_ids: &[String],
        platform: Platform,
    ) -> Result<BTreeMap<String, String>, FleetError> {
        fallback::boot_ids(self, instance_ids, platform).await
    }

    fn request_counts(&self) -> BTreeMap<String, u64> {
        self.requests.by_action()
    }
}

/// `DescribeContainerInstances` and `DescribeTasks` take at most 100 ARNs.
pub(super) const ECS_DESCRIBE_BATCH: usize = 100;
/// Concurrent requests per batched read: enough to hide latency, gentle on rate limits.
pub(super) const CONCURRENCY: usize = 4;

/// `DescribeContainerInstances` for any number of ARNs, 100 per call, a few at once: the
/// container instances, and the failures (e.g. MISSING: deregistered meanwhile).
pub(super) async fn describe_container_instances(
    fleet: &AwsFleet,
    cluster: &str,
    arns: &[String],
) -> Result<
    (
        Vec<aws_sdk_ecs::types::ContainerInstance>,
        Vec<aws_sdk_ecs::types::Failure>,
    ),
    FleetError,
> {
    use futures::{stream, StreamExt, TryStreamExt};
    let batches: Vec<Vec<String>> = arns
        .chunks(ECS_DESCRIBE_BATCH)
        .map(<[String]>::to_vec)
        .collect();
    let answers: Vec<
        aws_sdk_ecs::operation::describe_container_instances::DescribeContainerInstancesOutput,
    > = stream::iter(batches)
        .map(|batch| async move {
            fleet
                .ecs
                .describe_container_instances()
                .cluster(cluster)
                .set_container_instances(Some(batch))
                .send()
                .await
                .map_err(|e| {
                    CallError::from_sdk("ecs:DescribeContainerInstances", e)
                        .fatal(&fleet.endpoint, cluster)
                })
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    let instances = answers
        .iter()
        .flat_map(|a| a.container_instances().iter().cloned())
        .collect();
    let failures = answers
        .iter()
        .flat_map(|a| a.failures().iter().cloned())
        .collect();
    Ok((instances, failures))
}

/// The instance ids an SSM error message names, e.g. "Instances [[i-0abc, i-0def]] not
/// in a valid state for account …".
fn instance_ids_in(message: &str) -> Vec<String> {
    message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|word| {
            let id = word.strip_prefix("i-").or_else(|| word.strip_prefix("mi-"));
            id.is_some_and(|hex| !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .map(str::to_string)
        .collect()
}

/// An error and its sources, each said once: "dispatch failure: io error: … Connection
/// refused (os error 111)" rather than the SDK's debug dump.
pub(crate) fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(error) = next {
        let text = error.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = error.source();
    }
    parts.join(": ")
}

/// An answer that is not AWS's (a web server, a proxy's page, a wrong port).
fn not_aws(response: &HttpResponse) -> String {
    let kind = response
        .headers()
        .get("content-type")
        .unwrap_or("no content type");
    format!(
        "the answer is not AWS's (HTTP {}, {kind}); check --endpoint-url, AWS_ENDPOINT_URL and any proxy",
        response.status().as_u16()
    )
}

/// What went wrong with one AWS call, before deciding whether it is fatal for the run
/// ([`FleetError`]) or only leaves one fact unknown ([`Unreadable`]).
#[derive(Debug, Clone)]
pub(crate) struct CallError {
    action: &'static str,
    kind: CallErrorKind,
    reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallErrorKind {
    Unreachable,
    Denied,
    /// The credentials themselves were refused.
    Rejected,
    Throttled,
    /// SSM's `InvalidInstanceId`: some instance of the request cannot take commands.
    InvalidInstances,
    Other,
}

/// Error codes that mean "slow down": the adaptive retries already waited and retried.
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
];

/// Error codes that mean "the caller may not do this" across ECS, EC2 and SSM.
const DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
];

/// Error codes that mean "these credentials are not accepted": expired, unknown, or a
/// region the account has not enabled. Logging in again is the fix, not IAM.
const REJECTED_CODES: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "AuthFailure",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
];

impl CallError {
    pub(crate) fn from_sdk<E>(action: &'static str, error: SdkError<E, HttpResponse>) -> CallError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let kind = match &error {
            SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => {
                CallErrorKind::Unreachable
            }
            SdkError::TimeoutError(_) => CallErrorKind::Unreachable,
            _ if error
                .code()
                .is_some_and(|code| DENIED_CODES.contains(&code)) =>
            {
                CallErrorKind::Denied
            }
            _ if error
                .code()
                .is_some_and(|code| REJECTED_CODES.contains(&code)) =>
            {
                CallErrorKind::Rejected
            }
            _ if error
                .code()
                .is_some_and(|code| THROTTLING_CODES.contains(&code)) =>
            {
                CallErrorKind::Throttled
            }
            _ if error.code() == Some("InvalidInstanceId") => CallErrorKind::InvalidInstances,
            _ => CallErrorKind::Other,
        };
        let reason = match (error.code(), error.message(), &error) {
            (Some(code), Some(message), _) => format!("{code}: {message}"),
            (Some(code), None, _) => code.to_string(),
            (None, _, SdkError::ResponseError(response)) => not_aws(response.raw()),
            _ => causes(&error),
        };
        CallError {
            action,
            kind,
            reason,
        }
    }

    /// For calls without which there is no inventory at all.
    pub(crate) fn fatal(self, endpoint: &str, scope: &str) -> FleetError {
        let (action, scope, reason) = (self.action.to_string(), scope.to_string(), self.reason);
        match self.kind {
            CallErrorKind::Unreachable => FleetError::Unreachable {
                endpoint: endpoint.to_string(),
                action,
                reason,
            },
            CallErrorKind::Denied => FleetError::AccessDenied {
                action,
                scope,
                reason,
            },
            CallErrorKind::Rejected => FleetError::CredentialsRejected { action, reason },
            CallErrorKind::Throttled => FleetError::Throttled { action, scope },
            CallErrorKind::InvalidInstances => FleetError::InvalidInstances {
                action,
                instance_ids: instance_ids_in(&reason),
            },
            CallErrorKind::Other => FleetError::Aws {
                action,
                scope,
                reason,
            },
        }
    }

    /// For calls that leave one fact unknown: preflight turns it into a blocking finding.
    pub(crate) fn unreadable(self, scope: &str) -> Unreadable {
        Unreadable {
            action: self.action.to_string(),
            scope: scope.to_string(),
            error: self.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{causes, instance_ids_in};

    /// An error whose message may repeat its source's, as the SDK's do.
    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn causes_say_each_source_once_in_order() {
        let refused = Layer("Connection refused (os error 111)", None);
        let connect = Layer(
            "tcp connect error: Connection refused (os error 111)",
            Some(Box::new(refused)),
        );
        let dispatch = Layer("dispatch failure", Some(Box::new(connect)));
        assert_eq!(
            causes(&dispatch),
            "dispatch failure: tcp connect error: Connection refused (os error 111)"
        );
        assert_eq!(causes(&Layer("alone", None)), "alone");
    }

    #[test]
    fn instance_ids_are_read_from_ssm_messages() {
        let message = "InvalidInstanceId: Instances [[i-0abc123, i-0def456]] not in a valid state for account 123456789012";
        assert_eq!(
            instance_ids_in(message),
            vec!["i-0abc123".to_string(), "i-0def456".into()]
        );
        assert!(instance_ids_in("InvalidInstanceId: nothing here, i-xyz").is_empty());
    }
}
