//! The discovered facts about a cluster, as plain data.
//!
//! Discovery (in `fleet`) fills this in; preflight rules, and later the plan and the
//! rollout, only read it. Every fact set that can fail to be read on its own is a
//! [`Fact`], so a rule can tell "there is no endpoint" from "we could not look" — the
//! second is a blocking finding of its own (fail closed).

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use serde::Serialize;

/// A fact set that was read, or the reason it could not be.
pub type Fact<T> = Result<T, Unreadable>;

/// Why a fact set could not be read: the IAM action behind it and the error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// The IAM action of the failed call, e.g. `ec2:DescribeVpcEndpoints`.
    pub action: String,
    /// The resource the call was about, e.g. a VPC id, or the cluster name.
    pub scope: String,
    /// The error as AWS or the transport reported it.
    pub error: String,
}

/// Everything `check` (and later the rollout) knows about one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    pub cluster: Cluster,
    pub container_instances: Vec<ContainerInstance>,
    /// Container instances that were listed but could not be described.
    pub container_instance_failures: Vec<DescribeFailure>,
    /// EC2 facts of the container instances, keyed by instance id.
    pub ec2_instances: Fact<BTreeMap<String, Ec2Instance>>,
    /// SSM's view of the instances it manages, keyed by instance id.
    pub ssm_instances: Fact<BTreeMap<String, SsmInstance>>,
    /// One entry per VPC that hosts at least one container instance.
    pub vpcs: Vec<Vpc>,
    /// The region's S3 prefix list (`com.amazonaws.REGION.s3`), for egress rules.
    pub s3_prefix_list_id: Fact<Option<String>>,
    /// That list's address blocks: where an agent's peer counts as S3.
    pub s3_prefix_list_cidrs: Fact<Vec<Cidr>>,
    /// Task definitions of the tasks running on the cluster's EC2 container instances.
    pub task_definitions: Fact<Vec<TaskDefinition>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cluster {
    pub name: String,
    pub arn: String,
    pub region: String,
    /// The account, read from the cluster ARN.
    pub account: Option<String>,
}

/// An ECS container instance, as `DescribeContainerInstances` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInstance {
    pub arn: String,
    /// `i-…` for EC2, `mi-…` for ECS Anywhere.
    pub ec2_instance_id: String,
    /// ACTIVE, DRAINING, REGISTERING, DEREGISTERING, REGISTRATION_FAILED, INACTIVE.
    pub status: String,
    pub agent_connected: bool,
    pub agent_version: Option<String>,
    /// NONE, PENDING, STAGING, STAGED, UPDATING, UPDATED, FAILED; absent when never set.
    pub agent_update_status: Option<String>,
    pub running_tasks: i32,
    /// From the `ecs.os-type` attribute.
    pub platform: Platform,
    /// The tool's own custom attributes (`privlink-restart.*`): done marker, restore
    /// record.
    pub marks: BTreeMap<String, String>,
}

/// The operating system family of a container instance: it picks the SSM document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Linux,
    Windows,
}

impl Platform {
    /// From ECS's `ecs.os-type` attribute (`linux`, `windows`); Linux when absent.
    pub fn from_os_type(os_type: Option<&str>) -> Platform {
        match os_type {
            Some(os) if os.eq_ignore_ascii_case("windows") => Platform::Windows,
            _ => Platform::Linux,
        }
    }

    /// The SSM document that runs a script here.
    pub fn ssm_document(self) -> &'static str {
        match self {
            Platform::Linux => "AWS-RunShellScript",
            Platform::Windows => "AWS-RunPowerShellScript",
        }
    }
}

/// A resource a describe call answered with a failure instead of its facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeFailure {
    pub arn: String,
    /// e.g. `MISSING`: it went away between the list and the describe.
    pub reason: String,
}

/// An EC2 instance that backs a container instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Instance {
    pub id: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub availability_zone: String,
    pub private_ip: Option<Ipv4Addr>,
    pub security_group_ids: Vec<String>,
    /// From the `aws:autoscaling:groupName` tag.
    pub auto_scaling_group: Option<String>,
}

/// SSM's managed-instance record (`DescribeInstanceInformation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsmInstance {
    pub instance_id: String,
    /// Online, ConnectionLost or Inactive.
    pub ping_status: String,
    pub platform_type: Option<String>,
}

/// A VPC that hosts container instances, with the network facts the checks read.
#[derive(Debug, Clone, PartialEq)]
pub struct Vpc {
    pub id: String,
    pub dns: Fact<VpcDns>,
    /// `domain-name-servers` of the VPC's DHCP options; empty when none are set.
    pub dhcp_dns_servers: Fact<Vec<String>>,
    pub subnets: Fact<Vec<Subnet>>,
    pub route_tables: Fact<Vec<RouteTable>>,
    pub endpoints: Fact<Vec<VpcEndpoint>>,
    /// The network interfaces of the VPC's interface endpoints.
    pub endpoint_interfaces: Fact<Vec<NetworkInterface>>,
    pub security_groups: Fact<Vec<SecurityGroup>>,
    pub network_acls: Fact<Vec<NetworkAcl>>,
    /// Entries of the customer-managed prefix lists the VPC's security groups refer to.
    pub prefix_lists: Fact<BTreeMap<String, Vec<Cidr>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VpcDns {
    pub support: bool,
    pub hostnames: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    pub availability_zone: String,
    pub cidr: Option<Cidr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    pub id: String,
    /// The VPC's main route table serves every subnet without an explicit association.
    pub main: bool,
    pub subnet_ids: Vec<String>,
    /// Routes to a prefix list through a gateway: (gateway id, prefix list id). A gateway
    /// endpoint adds one per associated table, e.g. (`vpce-…`, the region's S3 list).
    pub prefix_list_routes: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    Interface,
    Gateway,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcEndpoint {
    pub id: String,
    /// e.g. `com.amazonaws.eu-west-1.ecs-agent`.
    pub service_name: String,
    pub kind: EndpointKind,
    /// As on the wire, e.g. `available`, `pending`, `failed` (compared case-insensitively).
    pub state: String,
    pub private_dns_enabled: bool,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub route_table_ids: Vec<String>,
    pub network_interface_ids: Vec<String>,
    /// The endpoint policy document (JSON), when AWS returned one.
    pub policy: Option<String>,
}

impl VpcEndpoint {
    pub fn is_available(&self) -> bool {
        self.state.eq_ignore_ascii_case("available")
    }

    /// Deleted or being deleted: as good as absent (DescribeVpcEndpoints lists deleted
    /// endpoints for a while).
    pub fn is_gone(&self) -> bool {
        ["deleted", "deleting"]
            .iter()
            .any(|s| self.state.eq_ignore_ascii_case(s))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInterface {
    pub id: String,
    pub subnet_id: String,
    pub private_ip: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroup {
    pub id: String,
    pub ingress: Vec<SecurityGroupRule>,
    pub egress: Vec<SecurityGroupRule>,
}

/// One permission of a security group: a protocol and port range, and its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroupRule {
    pub protocol: Protocol,
    /// Inclusive port range; `None` means every port (protocol `-1`, or no range given).
    pub ports: Option<(i32, i32)>,
    pub cidrs: Vec<Cidr>,
    pub group_ids: Vec<String>,
    pub prefix_list_ids: Vec<String>,
}

impl SecurityGroupRule {
    /// Whether this rule's protocol and ports cover TCP `port`.
    pub fn covers_tcp(&self, port: i32) -> bool {
        self.protocol.covers_tcp()
            && self
                .ports
                .is_none_or(|(from, to)| from <= port && port <= to)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    All,
    Tcp,
    Other(String),
}

impl Protocol {
    /// Parses EC2's `IpProtocol`: a name (`tcp`) or an IANA number (`6`), `-1` for all.
    pub fn parse(raw: &str) -> Protocol {
        match raw.to_ascii_lowercase().as_str() {
            "-1" | "all" => Protocol::All,
            "tcp" | "6" => Protocol::Tcp,
            other => Protocol::Other(other.to_string()),
        }
    }

    pub fn covers_tcp(&self) -> bool {
        matches!(self, Protocol::All | Protocol::Tcp)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAcl {
    pub id: String,
    pub subnet_ids: Vec<String>,
    pub entries: Vec<NetworkAclEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAclEntry {
    pub rule_number: i32,
    pub egress: bool,
    pub protocol: Protocol,
    pub allow: bool,
    /// `None` for IPv6 entries, which never match the IPv4 traffic checked here.
    pub cidr: Option<Cidr>,
    pub ports: Option<(i32, i32)>,
}

impl NetworkAcl {
    /// Whether this ACL lets TCP traffic to or from `peer` on `port` pass, in the given
    /// direction: rules in ascending number, first match wins, default deny.
    pub fn allows_tcp(&self, egress: bool, peer: Ipv4Addr, port: i32) -> bool {
        let mut entries: Vec<&NetworkAclEntry> =
            self.entries.iter().filter(|e| e.egress == egress).collect();
        entries.sort_by_key(|e| e.rule_number);
        entries
            .into_iter()
            .find(|e| {
                e.protocol.covers_tcp()
                    && e.cidr.is_some_and(|c| c.contains(peer))
                    && e.ports.is_none_or(|(from, to)| from <= port && port <= to)
            })
            .is_some_and(|e| e.allow)
    }

    /// Whether every port of `range` passes for `peer` (used for ephemeral return ports).
    pub fn allows_tcp_range(&self, egress: bool, peer: Ipv4Addr, range: (i32, i32)) -> bool {
        // Rules only change at their own boundaries, so testing the range ends and every
        // rule boundary inside the range is exhaustive.
        let mut probes = vec![range.0, range.1];
        for entry in &self.entries {
            if let Some((from, to)) = entry.ports {
                for port in [from - 1, from, to, to + 1] {
                    if range.0 <= port && port <= range.1 {
                        probes.push(port);
                    }
                }
            }
        }
        probes
            .into_iter()
            .all(|port| self.allows_tcp(egress, peer, port))
    }
}

/// An IPv4 CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cidr {
    network: u32,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`; host bits are ignored, as AWS does.
    pub fn parse(raw: &str) -> Option<Cidr> {
        let (addr, prefix) = raw.split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        if prefix > 32 {
            return None;
        }
        Some(Cidr {
            network: u32::from(addr) & Self::mask(prefix),
            prefix,
        })
    }

    fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        }
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & Self::mask(self.prefix) == self.network
    }

    /// Whether every address of `other` is in this block.
    pub fn covers(&self, other: &Cidr) -> bool {
        self.prefix <= other.prefix && self.contains(Ipv4Addr::from(other.network))
    }

    pub fn is_everything(&self) -> bool {
        self.prefix == 0
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

/// A task definition that at least one running task on an EC2 container instance uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDefinition {
    pub arn: String,
    /// The VPCs of the container instances that run it.
    pub vpc_ids: Vec<String>,
    pub containers: Vec<ContainerDefinition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDefinition {
    pub name: String,
    pub image: String,
    pub log_driver: Option<String>,
    /// The `awslogs-region` option, when it is set.
    pub log_region: Option<String>,
    /// `valueFrom` of every secret: the container's, its log configuration's, and its
    /// private registry credentials.
    pub secrets: Vec<String>,
    /// `value` of every environment file of type `s3` (an S3 object ARN).
    pub s3_environment_files: Vec<String>,
}

impl Inventory {
    /// The EC2 facts of a container instance, when they could be read.
    pub fn ec2_of(&self, instance: &ContainerInstance) -> Option<&Ec2Instance> {
        self.ec2_instances
            .as_ref()
            .ok()?
            .get(&instance.ec2_instance_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains_table() {
        let cases = [
            ("10.0.0.0/16", "10.0.255.1", true),
            ("10.0.0.0/16", "10.1.0.1", false),
            ("10.0.1.7/24", "10.0.1.200", true),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("10.0.1.5/32", "10.0.1.5", true),
            ("10.0.1.5/32", "10.0.1.6", false),
        ];
        for (cidr, addr, expected) in cases {
            let cidr = Cidr::parse(cidr).unwrap();
            assert_eq!(
                cidr.contains(addr.parse().unwrap()),
                expected,
                "{cidr} ∋ {addr}"
            );
        }
    }

    #[test]
    fn cidr_covers_table() {
        let cases = [
            ("10.0.0.0/16", "10.0.3.0/24", true),
            ("10.0.3.0/24", "10.0.0.0/16", false),
            ("10.0.0.0/16", "10.1.3.0/24", false),
            ("0.0.0.0/0", "10.1.3.0/24", true),
        ];
        for (outer, inner, expected) in cases {
            let (outer, inner) = (Cidr::parse(outer).unwrap(), Cidr::parse(inner).unwrap());
            assert_eq!(outer.covers(&inner), expected, "{outer} ⊇ {inner}");
        }
    }

    #[test]
    fn cidr_rejects_malformed() {
        for raw in ["10.0.0.0", "10.0.0.0/33", "::/0", "x/8", "10.0.0/8"] {
            assert_eq!(Cidr::parse(raw), None, "{raw}");
        }
    }

    #[test]
    fn protocol_parses_names_and_numbers() {
        assert_eq!(Protocol::parse("-1"), Protocol::All);
        assert_eq!(Protocol::parse("6"), Protocol::Tcp);
        assert_eq!(Protocol::parse("TCP"), Protocol::Tcp);
        assert_eq!(Protocol::parse("17"), Protocol::Other("17".into()));
    }

    fn entry(
        rule_number: i32,
        egress: bool,
        allow: bool,
        cidr: &str,
        ports: Option<(i32, i32)>,
    ) -> NetworkAclEntry {
        NetworkAclEntry {
            rule_number,
            egress,
            protocol: Protocol::Tcp,
            allow,
            cidr: Cidr::parse(cidr),
            ports,
        }
    }

    #[test]
    fn network_acl_first_match_wins_in_rule_order() {
        let acl = NetworkAcl {
            id: "acl-1".into(),
            subnet_ids: vec![],
            entries: vec![
                entry(200, true, true, "0.0.0.0/0", None),
                entry(100, true, false, "10.0.5.0/24", Some((443, 443))),
            ],
        };
        let endpoint = "10.0.5.10".parse().unwrap();
        let other = "10.0.6.10".parse().unwrap();
        assert!(!acl.allows_tcp(true, endpoint, 443));
        assert!(acl.allows_tcp(true, endpoint, 80));
        assert!(acl.allows_tcp(true, other, 443));
        assert!(
            !acl.allows_tcp(false, other, 443),
            "no inbound rule: default deny"
        );
    }

    #[test]
    fn network_acl_range_sees_a_hole_inside_the_range() {
        let acl = NetworkAcl {
            id: "acl-1".into(),
            subnet_ids: vec![],
            entries: vec![
                entry(90, false, false, "10.0.0.0/16", Some((2000, 2000))),
                entry(100, false, true, "0.0.0.0/0", Some((1024, 65535))),
            ],
        };
        let peer = "10.0.5.10".parse().unwrap();
        assert!(!acl.allows_tcp_range(false, peer, (1024, 65535)));
        assert!(acl.allows_tcp_range(false, peer, (3000, 65535)));
    }
}
