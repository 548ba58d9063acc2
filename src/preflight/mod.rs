//! Preflight: pure rules over an [`Inventory`] that say whether the cluster is ready for
//! the cutover, and for every problem what is wrong, where, and how to fix it.
//!
//! Each rule module adds [`Finding`]s; each finding carries a stable id from [`CHECKS`],
//! so pipelines can match on it and docs/CHECKS.md can explain it.

mod endpoints;
mod instances;
mod network;
mod policy;
mod workloads;

use serde::Serialize;

use crate::inventory::{Fact, Inventory, Unreadable, Vpc};

pub(crate) use endpoints::route_table_of;
#[cfg(feature = "aws")]
pub(crate) use endpoints::service_prefix as endpoint_service_prefix;
pub use instances::{parse_agent_version, scope_of, InstanceScope, MIN_AGENT_VERSION};

/// How much a finding matters for the cutover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    /// Blocks the cutover (exit 1).
    Error,
}

/// One problem (or notable fact) with the resources it names and the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub severity: Severity,
    /// The VPC the finding is about, if it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    /// What is wrong, in one sentence that names the resources.
    pub summary: String,
    /// Every resource involved (VPC, endpoint, security group, instance ids, ARNs).
    pub resources: Vec<String>,
    /// The command or step that fixes it, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    /// A finding of check `id`, at the severity [`CHECKS`] declares for it.
    pub(crate) fn new(id: &'static str, summary: impl Into<String>) -> Finding {
        let severity = CHECKS
            .iter()
            .find(|check| check.id == id)
            .map(|check| check.severity)
            .unwrap_or(Severity::Error);
        Finding {
            id,
            severity,
            vpc_id: None,
            summary: summary.into(),
            resources: Vec::new(),
            fix: None,
        }
    }

    pub(crate) fn in_vpc(mut self, vpc_id: &str) -> Finding {
        self.vpc_id = Some(vpc_id.to_string());
        self
    }

    pub(crate) fn resources<S: Into<String>>(
        mut self,
        resources: impl IntoIterator<Item = S>,
    ) -> Finding {
        self.resources.extend(resources.into_iter().map(Into::into));
        self
    }

    pub(crate) fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
}

/// Names up to five items, then how many more: findings stay readable at 1,000 instances
/// while `resources` keeps the full list.
pub(crate) fn some_of(items: &[String]) -> String {
    const SHOWN: usize = 5;
    if items.len() <= SHOWN {
        items.join(", ")
    } else {
        format!(
            "{} and {} more",
            items[..SHOWN].join(", "),
            items.len() - SHOWN
        )
    }
}

/// A check's stable id, the severity it reports at, and what it means.
pub struct Check {
    pub id: &'static str,
    pub severity: Severity,
    pub meaning: &'static str,
}

macro_rules! checks {
    ($($konst:ident = $id:literal, $severity:ident, $meaning:literal;)*) => {
        /// Finding ids, one constant per check.
        pub mod ids {
            $(pub const $konst: &str = $id;)*
        }
        /// Every check this tool runs. docs/CHECKS.md explains each id; a test keeps them equal.
        pub const CHECKS: &[Check] = &[
            $(Check { id: $id, severity: Severity::$severity, meaning: $meaning },)*
        ];
    };
}

checks! {
    UNREADABLE = "facts-unreadable", Error,
        "A fact the checks need could not be read (access denied, API error); the check fails closed.";
    INTERFACE_ENDPOINT_MISSING = "interface-endpoint-missing", Error,
        "A required interface endpoint (ecs, ecs-agent, ecs-telemetry, ecr.api, ecr.dkr) is missing from a VPC that hosts container instances.";
    SHARED_ENDPOINT_UNPROVEN = "interface-endpoint-shared", Warning,
        "With --shared-endpoints: no local endpoint; `verify` must show the name resolving to private addresses.";
    INTERFACE_ENDPOINT_UNAVAILABLE = "interface-endpoint-unavailable", Error,
        "The endpoint exists but its state is not `available`.";
    PRIVATE_DNS_DISABLED = "interface-endpoint-private-dns-disabled", Error,
        "The endpoint has private DNS off, so the service names still resolve to public addresses.";
    ENDPOINT_AZ_MISSING = "interface-endpoint-az-missing", Warning,
        "An AZ with container instances has no subnet of the endpoint: traffic crosses AZs and fails with the endpoint's AZ.";
    S3_GATEWAY_MISSING = "s3-gateway-endpoint-missing", Error,
        "No S3 gateway endpoint: ECR image layers (S3) would still need the NAT gateway.";
    S3_GATEWAY_UNAVAILABLE = "s3-gateway-endpoint-unavailable", Error,
        "The S3 gateway endpoint exists but its state is not `available`.";
    S3_GATEWAY_ROUTE_TABLE = "s3-gateway-route-table-missing", Error,
        "The S3 gateway endpoint is not associated with the route table of a subnet that hosts container instances.";
    VPC_DNS_SUPPORT = "vpc-dns-support-disabled", Error,
        "enableDnsSupport is off: the endpoints' private DNS names cannot resolve.";
    VPC_DNS_HOSTNAMES = "vpc-dns-hostnames-disabled", Error,
        "enableDnsHostnames is off: endpoint private DNS requires it.";
    DHCP_CUSTOM_DNS = "dhcp-custom-dns-servers", Warning,
        "The VPC's DHCP options name DNS servers other than AmazonProvidedDNS: they must forward the service names to the VPC resolver.";
    ENDPOINT_INGRESS = "endpoint-sg-ingress-443", Error,
        "The endpoint's security groups do not admit TCP 443 from these instances.";
    INSTANCE_EGRESS_ENDPOINT = "instance-sg-egress-endpoint", Error,
        "The instances' security groups do not allow TCP 443 out to the endpoint.";
    INSTANCE_EGRESS_S3 = "instance-sg-egress-s3", Error,
        "The instances' security groups do not allow TCP 443 out to the S3 prefix list.";
    NETWORK_ACL = "network-acl-blocks-443", Warning,
        "A network ACL of the instances' subnets would drop TCP 443 to the endpoints or the return traffic.";
    ENDPOINT_POLICY = "endpoint-policy-denies", Warning,
        "An endpoint policy would deny something the agent, image pulls or agent updates need.";
    SSM_ENDPOINTS_MISSING = "ssm-endpoints-missing", Warning,
        "ssm, ssmmessages or ec2messages endpoints are missing: SSM Run Command stops working when the NAT gateway goes.";
    TASK_LOGS = "task-awslogs-needs-endpoint", Warning,
        "Running tasks log with awslogs, but the VPC has no logs endpoint.";
    TASK_SECRETS = "task-secrets-need-endpoint", Warning,
        "Running tasks read secrets from Secrets Manager or SSM Parameter Store without the matching endpoint.";
    TASK_CROSS_REGION = "task-cross-region-dependency", Warning,
        "Running tasks read secrets or write awslogs in another region: no endpoint here serves that.";
    TASK_IMAGE = "task-image-outside-private-ecr", Warning,
        "Running tasks pull images from outside this region's private ECR (Docker Hub, public ECR, other regions).";
    TASK_ENV_FILES = "task-s3-environment-files", Warning,
        "Running tasks load environment files from S3: the bucket must be in this region and allowed by the S3 gateway endpoint policy.";
    AGENT_TOO_OLD = "agent-too-old", Error,
        "The ECS agent is older than 1.25.1 (no PrivateLink support); the cutover skips the instance until the agent is updated.";
    AGENT_VERSION_UNKNOWN = "agent-version-unknown", Error,
        "ECS reports no agent version that can be read, so PrivateLink support cannot be confirmed.";
    AGENT_DISCONNECTED = "agent-disconnected", Warning,
        "The agent is not connected to ECS right now.";
    SSM_UNMANAGED = "ssm-not-online", Info,
        "SSM does not manage the instance or its ping is not Online: it will need a reboot instead of an agent restart.";
    ALREADY_DRAINING = "instance-draining", Info,
        "The instance is DRAINING (set by someone else): the cutover leaves it alone.";
    OUT_OF_SCOPE = "instance-out-of-scope", Info,
        "The instance is out of scope (ECS Anywhere, a status other than ACTIVE/DRAINING, or an agent update in progress) and is skipped.";
    NOTHING_TO_RESTART = "no-ec2-container-instances", Info,
        "The cluster has no EC2 container instances (Fargate only): nothing to restart.";
}

/// Options that change how findings are judged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PreflightOptions {
    /// Endpoints live in another (hub or shared) VPC: missing local ones only warn.
    pub shared_endpoints: bool,
}

/// The readiness of one required endpoint in one VPC, for the per-VPC table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointStatus {
    /// Short service name: `ecs`, `ecs-agent`, …, `s3`.
    pub service: &'static str,
    pub kind: crate::inventory::EndpointKind,
    pub state: EndpointState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointState {
    Ok,
    Missing,
    Unavailable,
    NoPrivateDns,
    /// S3 gateway exists but misses a route table of an instance subnet.
    NotAssociated,
    /// The endpoints could not be read.
    Unknown,
}

/// Per-VPC summary for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VpcReport {
    pub id: String,
    pub instances: usize,
    pub availability_zones: Vec<String>,
    pub endpoints: Vec<EndpointStatus>,
}

/// The outcome of preflight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    pub vpcs: Vec<VpcReport>,
    pub findings: Vec<Finding>,
}

impl Preflight {
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// Ready for the cutover: no blocking finding.
    pub fn is_ready(&self) -> bool {
        self.count(Severity::Error) == 0
    }
}

/// Runs every rule over the inventory.
pub fn run(inventory: &Inventory, options: PreflightOptions) -> Preflight {
    let mut findings = Vec::new();
    unreadable_facts(inventory, &mut findings);
    instances::check(inventory, &mut findings);
    let mut vpcs = Vec::new();
    for vpc in &inventory.vpcs {
        let hosted = HostedInstances::of(inventory, vpc);
        if hosted.instances.is_empty() {
            // Only out-of-scope instances here (listed as such): nothing will move.
            continue;
        }
        vpcs.push(VpcReport {
            id: vpc.id.clone(),
            instances: hosted.instances.len(),
            availability_zones: hosted.availability_zones(),
            endpoints: endpoints::statuses(inventory, vpc, &hosted),
        });
        endpoints::check(inventory, vpc, &hosted, options, &mut findings);
        network::check(inventory, vpc, &hosted, &mut findings);
        policy::check(inventory, vpc, &mut findings);
        workloads::check(inventory, vpc, &hosted, &mut findings);
    }
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.vpc_id.cmp(&b.vpc_id))
            .then_with(|| a.id.cmp(b.id))
    });
    Preflight { vpcs, findings }
}

/// The in-scope container instances of one VPC with their EC2 facts.
pub(crate) struct HostedInstances<'a> {
    pub instances: Vec<&'a crate::inventory::Ec2Instance>,
}

impl<'a> HostedInstances<'a> {
    fn of(inventory: &'a Inventory, vpc: &Vpc) -> Self {
        let instances = inventory
            .container_instances
            .iter()
            .filter(|ci| scope_of(ci).is_in_scope())
            .filter_map(|ci| inventory.ec2_of(ci))
            .filter(|ec2| ec2.vpc_id == vpc.id)
            .collect();
        HostedInstances { instances }
    }

    pub fn availability_zones(&self) -> Vec<String> {
        let mut zones: Vec<String> = self
            .instances
            .iter()
            .map(|i| i.availability_zone.clone())
            .collect();
        zones.sort();
        zones.dedup();
        zones
    }

    pub fn subnet_ids(&self) -> Vec<String> {
        let mut subnets: Vec<String> = self.instances.iter().map(|i| i.subnet_id.clone()).collect();
        subnets.sort();
        subnets.dedup();
        subnets
    }
}

/// The short service name of an endpoint service name in `region`, e.g.
/// `com.amazonaws.eu-west-1.ecr.api` → `ecr.api`. Also matches partition prefixes such
/// as `cn.com.amazonaws.`.
pub(crate) fn short_service_name<'a>(service_name: &'a str, region: &str) -> Option<&'a str> {
    let marker = format!("amazonaws.{region}.");
    let at = service_name.find(&marker)?;
    Some(&service_name[at + marker.len()..])
}

fn unreadable_facts(inventory: &Inventory, findings: &mut Vec<Finding>) {
    fn add<T>(fact: &Fact<T>, vpc_id: Option<&str>, findings: &mut Vec<Finding>) {
        if let Err(unreadable) = fact {
            findings.push(unreadable_finding(unreadable, vpc_id));
        }
    }
    add(&inventory.ec2_instances, None, findings);
    add(&inventory.ssm_instances, None, findings);
    add(&inventory.s3_prefix_list_id, None, findings);
    add(&inventory.task_definitions, None, findings);
    for vpc in &inventory.vpcs {
        let id = Some(vpc.id.as_str());
        add(&vpc.dns, id, findings);
        add(&vpc.dhcp_dns_servers, id, findings);
        add(&vpc.subnets, id, findings);
        add(&vpc.route_tables, id, findings);
        add(&vpc.endpoints, id, findings);
        add(&vpc.endpoint_interfaces, id, findings);
        add(&vpc.security_groups, id, findings);
        add(&vpc.network_acls, id, findings);
        add(&vpc.prefix_lists, id, findings);
    }
}

fn unreadable_finding(unreadable: &Unreadable, vpc_id: Option<&str>) -> Finding {
    let finding = Finding::new(
        ids::UNREADABLE,
        format!(
            "could not read {} for {}: {}; the checks that need it cannot pass",
            unreadable.action, unreadable.scope, unreadable.error
        ),
    )
    .resources([unreadable.scope.clone()])
    .fix(format!(
        "allow {} to the caller (see `privlink-restart iam-policy`), or retry if the error was transient",
        unreadable.action
    ));
    match vpc_id {
        Some(vpc_id) => finding.in_vpc(vpc_id),
        None => finding,
    }
}

#[cfg(test)]
pub(crate) mod testkit;

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;

    #[test]
    fn ready_cluster_has_no_blocking_findings() {
        let inventory = ready_inventory();
        let preflight = run(&inventory, PreflightOptions::default());
        assert!(preflight.is_ready(), "{:#?}", preflight.findings);
        assert_eq!(preflight.vpcs.len(), 1);
        assert!(
            preflight.vpcs[0]
                .endpoints
                .iter()
                .all(|e| e.state == EndpointState::Ok),
            "{:#?}",
            preflight.vpcs
        );
    }

    #[test]
    fn every_unreadable_fact_blocks_and_names_the_action() {
        let mut inventory = ready_inventory();
        let denied = |action: &str| Unreadable {
            action: action.into(),
            scope: VPC.into(),
            error: "AccessDenied".into(),
        };
        inventory.vpcs[0].endpoints = Err(denied("ec2:DescribeVpcEndpoints"));
        inventory.vpcs[0].network_acls = Err(denied("ec2:DescribeNetworkAcls"));
        inventory.ssm_instances = Err(denied("ssm:DescribeInstanceInformation"));
        let preflight = run(&inventory, PreflightOptions::default());
        assert!(!preflight.is_ready());
        let unreadable: Vec<&Finding> = preflight
            .findings
            .iter()
            .filter(|f| f.id == ids::UNREADABLE)
            .collect();
        assert_eq!(unreadable.len(), 3);
        for action in [
            "ec2:DescribeVpcEndpoints",
            "ec2:DescribeNetworkAcls",
            "ssm:DescribeInstanceInformation",
        ] {
            assert!(
                unreadable.iter().any(|f| f.summary.contains(action)),
                "{action} not named"
            );
        }
        // No guessing from missing data: an unreadable endpoint list is not "missing".
        assert!(!preflight
            .findings
            .iter()
            .any(|f| f.id == ids::INTERFACE_ENDPOINT_MISSING));
        let table = &preflight.vpcs[0].endpoints;
        assert!(
            table.iter().all(|e| e.state == EndpointState::Unknown),
            "{table:#?}"
        );
    }

    #[test]
    fn short_service_names() {
        assert_eq!(
            short_service_name("com.amazonaws.eu-west-1.ecr.api", "eu-west-1"),
            Some("ecr.api")
        );
        assert_eq!(
            short_service_name("cn.com.amazonaws.cn-north-1.ecs", "cn-north-1"),
            Some("ecs")
        );
        assert_eq!(
            short_service_name("com.amazonaws.us-east-1.ecs", "eu-west-1"),
            None
        );
    }

    #[test]
    fn check_ids_are_unique_and_kebab_case() {
        let mut seen = std::collections::BTreeSet::new();
        for check in CHECKS {
            assert!(seen.insert(check.id), "duplicate id {}", check.id);
            assert!(
                check
                    .id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{}",
                check.id
            );
        }
    }

    #[test]
    fn docs_explain_every_check() {
        let docs = include_str!("../../docs/CHECKS.md");
        for check in CHECKS {
            assert!(
                docs.contains(&format!("`{}`", check.id)),
                "docs/CHECKS.md does not explain {}",
                check.id
            );
        }
    }
}
