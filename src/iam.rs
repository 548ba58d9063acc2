//! The least-privilege IAM policy for everything the tool calls, generated from the one
//! declaration of operations in [`crate::fleet::operations`].

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::fleet::operations::{Purpose, ResourceScope, OPERATIONS};

/// What to scope the policy to; anything not given becomes a wildcard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyScope {
    pub cluster: Option<String>,
    pub region: Option<String>,
    pub account: Option<String>,
    /// Only what `check` needs: no permission that changes anything.
    pub read_only: bool,
}

/// The AWS partition of a region (`aws`, `aws-cn`, `aws-us-gov`).
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

impl PolicyScope {
    fn arns(&self, scope: ResourceScope) -> Vec<String> {
        // A cluster ARN (`arn:aws:ecs:REGION:ACCOUNT:cluster/NAME`) also gives region and
        // account where they were not given.
        let arn: Vec<&str> = self
            .cluster
            .as_deref()
            .filter(|c| c.starts_with("arn:"))
            .map(|c| c.split(':').collect())
            .unwrap_or_default();
        let from_arn = |index: usize| arn.get(index).copied().filter(|v| !v.is_empty());
        let region = self.region.as_deref().or(from_arn(3)).unwrap_or("*");
        let partition = from_arn(1).unwrap_or_else(|| partition_of(region));
        let account = self.account.as_deref().or(from_arn(4)).unwrap_or("*");
        let cluster = self
            .cluster
            .as_deref()
            .map(|c| c.rsplit('/').next().unwrap_or(c))
            .unwrap_or("*");
        let ecs = |path: String| format!("arn:{partition}:ecs:{region}:{account}:{path}");
        match scope {
            ResourceScope::Any => vec!["*".into()],
            ResourceScope::Cluster => vec![ecs(format!("cluster/{cluster}"))],
            ResourceScope::ContainerInstances => {
                vec![ecs(format!("container-instance/{cluster}/*"))]
            }
            ResourceScope::Tasks => vec![ecs(format!("task/{cluster}/*"))],
            ResourceScope::RunCommand => vec![
                format!("arn:{partition}:ssm:{region}::document/AWS-RunShellScript"),
                format!("arn:{partition}:ssm:{region}::document/AWS-RunPowerShellScript"),
                format!("arn:{partition}:ec2:{region}:{account}:instance/*"),
            ],
            ResourceScope::ClusterAndContainerInstances => vec![
                ecs(format!("cluster/{cluster}")),
                ecs(format!("container-instance/{cluster}/*")),
            ],
            ResourceScope::AutoScalingGroups => vec![format!(
                "arn:{partition}:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/*"
            )],
            ResourceScope::Parameters => vec![format!(
                "arn:{partition}:ssm:{region}:{account}:parameter{}/*/{cluster}",
                crate::fleet::PARAMETER_PREFIX
            )],
            ResourceScope::Services => vec![ecs(format!("service/{cluster}/*"))],
            ResourceScope::Instances => {
                vec![format!("arn:{partition}:ec2:{region}:{account}:instance/*")]
            }
        }
    }
}

/// The policy document: one statement per purpose and resource scope, actions sorted.
pub fn policy(scope: &PolicyScope) -> Value {
    let mut by_scope: BTreeMap<(Purpose, ResourceScope), Vec<String>> = BTreeMap::new();
    for operation in OPERATIONS {
        if scope.read_only && operation.purpose != Purpose::Read {
            continue;
        }
        by_scope
            .entry((operation.purpose, operation.scope))
            .or_default()
            .push(operation.iam_action());
    }
    let statements: Vec<Value> = by_scope
        .into_iter()
        .map(|((purpose, resource_scope), mut actions)| {
            actions.sort();
            actions.dedup();
            json!({
                "Sid": sid(purpose, resource_scope),
                "Effect": "Allow",
                "Action": actions,
                "Resource": scope.arns(resource_scope),
            })
        })
        .collect();
    json!({ "Version": "2012-10-17", "Statement": statements })
}

fn sid(purpose: Purpose, scope: ResourceScope) -> &'static str {
    match (purpose, scope) {
        (Purpose::Read, ResourceScope::Any) => "ReadWithoutResourceScope",
        (Purpose::Read, ResourceScope::Cluster) => "ReadCluster",
        (Purpose::Read, ResourceScope::ContainerInstances) => "ReadContainerInstances",
        (Purpose::Read, ResourceScope::Tasks) => "ReadTasks",
        (Purpose::Read, ResourceScope::RunCommand) => "ReadRunCommand",
        (Purpose::Restart, ResourceScope::RunCommand) => "RestartAgentsWithRunCommand",
        (Purpose::Restart, ResourceScope::Any) => "CutoverWithoutResourceScope",
        (Purpose::Restart, ResourceScope::Cluster) => "RestartCluster",
        (Purpose::Restart, ResourceScope::ContainerInstances) => "RestartContainerInstances",
        (Purpose::Restart, ResourceScope::Tasks) => "RestartTasks",
        (Purpose::Read, ResourceScope::ClusterAndContainerInstances) => "ReadInstanceRecords",
        (Purpose::Read, ResourceScope::AutoScalingGroups) => "ReadAutoScalingGroups",
        (Purpose::Read, ResourceScope::Parameters) => "ReadRunRecords",
        (Purpose::Restart, ResourceScope::ClusterAndContainerInstances) => {
            "MarkAndRestoreContainerInstances"
        }
        (Purpose::Restart, ResourceScope::AutoScalingGroups) => "HoldAndRestoreAutoScalingGroups",
        (Purpose::Restart, ResourceScope::Parameters) => "LeaseAndRunRecords",
        (Purpose::Read, ResourceScope::Services) => "ReadServices",
        (Purpose::Restart, ResourceScope::Services) => "ReadServicesToDrain",
        (Purpose::Read, ResourceScope::Instances) => "ReadInstances",
        (Purpose::Restart, ResourceScope::Instances) => "RebootInstances",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement<'a>(policy: &'a Value, sid: &str) -> &'a Value {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap()
    }

    #[test]
    fn every_declared_operation_is_in_the_policy_once() {
        let policy = policy(&PolicyScope::default());
        let mut actions: Vec<String> = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| {
                s["Action"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
            })
            .collect();
        let total = actions.len();
        actions.sort();
        actions.dedup();
        assert_eq!(actions.len(), total, "an action appears twice");
        let mut declared: Vec<String> = OPERATIONS.iter().map(|o| o.iam_action()).collect();
        declared.sort();
        assert_eq!(actions, declared);
    }

    #[test]
    fn scoped_policy_names_the_cluster_resources() {
        let policy = policy(&PolicyScope {
            cluster: Some("prod".into()),
            region: Some("eu-west-1".into()),
            account: Some("123456789012".into()),
            read_only: false,
        });
        assert_eq!(
            statement(&policy, "ReadCluster")["Resource"],
            json!(["arn:aws:ecs:eu-west-1:123456789012:cluster/prod"])
        );
        assert_eq!(
            statement(&policy, "ReadContainerInstances")["Resource"],
            json!(["arn:aws:ecs:eu-west-1:123456789012:container-instance/prod/*"])
        );
        assert_eq!(
            statement(&policy, "ReadTasks")["Resource"],
            json!(["arn:aws:ecs:eu-west-1:123456789012:task/prod/*"])
        );
        assert_eq!(
            statement(&policy, "ReadWithoutResourceScope")["Resource"],
            json!(["*"])
        );
    }

    #[test]
    fn read_only_policy_has_nothing_that_changes_the_fleet() {
        let policy = policy(&PolicyScope {
            read_only: true,
            ..Default::default()
        });
        let text = policy.to_string();
        assert!(
            !text.contains("ssm:SendCommand") && !text.contains("ssm:CancelCommand"),
            "{text}"
        );
        assert!(text.contains("ecs:DescribeClusters"));
    }

    #[test]
    fn run_command_is_scoped_to_the_tool_s_documents() {
        let policy = policy(&PolicyScope {
            region: Some("eu-west-1".into()),
            account: Some("123456789012".into()),
            ..Default::default()
        });
        assert_eq!(
            statement(&policy, "RestartAgentsWithRunCommand")["Resource"],
            json!([
                "arn:aws:ssm:eu-west-1::document/AWS-RunShellScript",
                "arn:aws:ssm:eu-west-1::document/AWS-RunPowerShellScript",
                "arn:aws:ec2:eu-west-1:123456789012:instance/*"
            ])
        );
    }

    #[test]
    fn readme_shows_every_action() {
        let readme = include_str!("../README.md");
        for operation in OPERATIONS {
            if operation.purpose != Purpose::Read {
                assert!(
                    readme.contains(&format!("`{}`", operation.iam_action())),
                    "{}",
                    operation.iam_action()
                );
                continue;
            }
            let action = format!("\"{}\"", operation.iam_action());
            assert!(readme.contains(&action), "README's policy lacks {action}");
        }
    }

    #[test]
    fn cluster_arn_gives_name_region_and_account() {
        let policy = policy(&PolicyScope {
            cluster: Some("arn:aws-us-gov:ecs:us-gov-west-1:123456789012:cluster/prod".into()),
            ..Default::default()
        });
        assert_eq!(
            statement(&policy, "ReadCluster")["Resource"],
            json!(["arn:aws-us-gov:ecs:us-gov-west-1:123456789012:cluster/prod"])
        );
    }

    #[test]
    fn unscoped_policy_uses_wildcards_and_partitions_follow_the_region() {
        let policy = policy(&PolicyScope::default());
        assert_eq!(
            statement(&policy, "ReadCluster")["Resource"],
            json!(["arn:aws:ecs:*:*:cluster/*"])
        );
        let china = super::policy(&PolicyScope {
            region: Some("cn-north-1".into()),
            ..Default::default()
        });
        assert_eq!(
            statement(&china, "ReadCluster")["Resource"],
            json!(["arn:aws-cn:ecs:cn-north-1:*:cluster/*"])
        );
    }
}
