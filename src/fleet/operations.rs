//! Every AWS operation the adapter performs, declared once: the service, the operation,
//! and the resources IAM lets a policy scope it to. `iam-policy` is generated from this
//! list, and the emulator tests fail if the adapter sends anything not declared here.

/// What an operation's IAM permission can be scoped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ResourceScope {
    /// The action supports no resource-level permissions: `*`.
    Any,
    /// `arn:…:ecs:R:A:cluster/NAME`.
    Cluster,
    /// `arn:…:ecs:R:A:container-instance/NAME/*`.
    ContainerInstances,
    /// `arn:…:ecs:R:A:task/NAME/*`.
    Tasks,
    /// The SSM documents the tool runs and the EC2 instances it runs them on.
    RunCommand,
    /// The cluster and its container instances (ECS attributes and instance state; the
    /// Service Authorization Reference is not clear which of the two it checks).
    ClusterAndContainerInstances,
    /// `arn:…:autoscaling:R:A:autoScalingGroup:*:autoScalingGroupName/*`.
    AutoScalingGroups,
    /// The tool's SSM parameters: `arn:…:ssm:R:A:parameter/privlink-restart/*/NAME`.
    Parameters,
    /// `arn:…:ecs:R:A:service/NAME/*`.
    Services,
    /// `arn:…:ec2:R:A:instance/*` (the cluster's instances have no common name).
    Instances,
}

/// What the tool uses an operation for: reading only, or changing the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Purpose {
    /// `check` and every other command: discovery.
    Read,
    /// The cutover: restarting agents and following the restarts, keeping the run's
    /// records and putting back what it changed.
    Restart,
}

/// One AWS operation the adapter calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// The service as the SDK names it in its operation metadata (`ECS`, `EC2`, `SSM`).
    pub service: &'static str,
    /// The API operation, which is also the IAM action name for every operation here.
    pub name: &'static str,
    pub scope: ResourceScope,
    pub purpose: Purpose,
}

impl Operation {
    /// The IAM action, e.g. `ecs:DescribeClusters`.
    pub fn iam_action(&self) -> String {
        format!("{}:{}", iam_prefix(self.service), self.name)
    }
}

const fn op(service: &'static str, name: &'static str, scope: ResourceScope) -> Operation {
    Operation {
        service,
        name,
        scope,
        purpose: Purpose::Read,
    }
}

const fn restart(service: &'static str, name: &'static str, scope: ResourceScope) -> Operation {
    Operation {
        service,
        name,
        scope,
        purpose: Purpose::Restart,
    }
}

use ResourceScope::*;

/// The declaration. Resource scopes follow the Service Authorization Reference
/// (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerservice.html).
pub const OPERATIONS: &[Operation] = &[
    op("ECS", "DescribeClusters", Cluster),
    op("ECS", "ListContainerInstances", Cluster),
    op("ECS", "DescribeContainerInstances", ContainerInstances),
    op("ECS", "ListTasks", ContainerInstances),
    op("ECS", "DescribeTasks", Tasks),
    op("ECS", "DescribeTaskDefinition", Any),
    op("EC2", "DescribeInstances", Any),
    op("EC2", "DescribeVpcs", Any),
    op("EC2", "DescribeVpcAttribute", Any),
    op("EC2", "DescribeDhcpOptions", Any),
    op("EC2", "DescribeSubnets", Any),
    op("EC2", "DescribeRouteTables", Any),
    op("EC2", "DescribeVpcEndpoints", Any),
    op("EC2", "DescribeNetworkInterfaces", Any),
    op("EC2", "DescribeSecurityGroups", Any),
    op("EC2", "DescribeNetworkAcls", Any),
    op("EC2", "DescribePrefixLists", Any),
    op("EC2", "GetManagedPrefixListEntries", Any),
    op("SSM", "DescribeInstanceInformation", Any),
    restart("SSM", "SendCommand", RunCommand),
    restart("SSM", "ListCommandInvocations", Any),
    restart("SSM", "GetCommandInvocation", Any),
    restart("SSM", "CancelCommand", Any),
    restart("SSM", "GetParameter", Parameters),
    restart("SSM", "PutParameter", Parameters),
    restart("SSM", "DeleteParameter", Parameters),
    restart("ECS", "PutAttributes", ClusterAndContainerInstances),
    restart("ECS", "DeleteAttributes", ClusterAndContainerInstances),
    restart(
        "ECS",
        "UpdateContainerInstancesState",
        ClusterAndContainerInstances,
    ),
    restart("Auto Scaling", "DescribeTags", Any),
    restart("Auto Scaling", "DescribeAutoScalingInstances", Any),
    restart("Auto Scaling", "CreateOrUpdateTags", AutoScalingGroups),
    restart("Auto Scaling", "DeleteTags", AutoScalingGroups),
    restart("Auto Scaling", "SetInstanceProtection", AutoScalingGroups),
    restart("Auto Scaling", "SuspendProcesses", AutoScalingGroups),
    restart("Auto Scaling", "ResumeProcesses", AutoScalingGroups),
    restart("Auto Scaling", "EnterStandby", AutoScalingGroups),
    restart("Auto Scaling", "ExitStandby", AutoScalingGroups),
    // The drain-and-reboot fallback.
    restart("ECS", "ListServices", Any),
    restart("ECS", "DescribeServices", Services),
    restart("ECS", "DescribeCapacityProviders", Any),
    restart("Auto Scaling", "DescribeAutoScalingGroups", Any),
    restart("Auto Scaling", "DescribeInstanceRefreshes", Any),
    restart("EC2", "DescribeInstanceStatus", Any),
    restart("EC2", "RebootInstances", Instances),
];

/// IAM's prefix for an SDK service name (`Auto Scaling` → `autoscaling`).
fn iam_prefix(service: &str) -> String {
    service.to_ascii_lowercase().replace(' ', "")
}

/// The declared operation with this SDK service and operation name.
pub fn find(service: &str, name: &str) -> Option<&'static Operation> {
    OPERATIONS
        .iter()
        .find(|o| o.service.eq_ignore_ascii_case(service) && o.name == name)
}

/// The IAM action for an SDK operation, declared or not (counters name undeclared ones too).
pub fn iam_action(service: &str, name: &str) -> String {
    find(service, name).map_or_else(
        || format!("{}:{name}", iam_prefix(service)),
        Operation::iam_action,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_declared_once() {
        let mut seen = std::collections::BTreeSet::new();
        for operation in OPERATIONS {
            assert!(
                seen.insert(operation.iam_action()),
                "{} declared twice",
                operation.iam_action()
            );
        }
    }

    #[test]
    fn iam_actions_use_the_service_prefix() {
        assert_eq!(
            iam_action("ECS", "DescribeClusters"),
            "ecs:DescribeClusters"
        );
        assert_eq!(iam_action("EC2", "DescribeVpcs"), "ec2:DescribeVpcs");
        assert_eq!(
            iam_action("AutoScaling", "Undeclared"),
            "autoscaling:Undeclared"
        );
        assert_eq!(
            iam_action("Auto Scaling", "SetInstanceProtection"),
            "autoscaling:SetInstanceProtection"
        );
        assert_eq!(
            find("ssm", "DescribeInstanceInformation").map(|o| o.scope),
            Some(ResourceScope::Any)
        );
    }
}
