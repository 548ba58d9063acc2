//! The verdict: which path an agent's websockets take, as a pure function of the probe's
//! record and the inventory's network facts.
//!
//! Why the peers and not DNS alone: the agent caches the `DiscoverPollEndpoint` answer for
//! 12 hours and reconnects to the cached host every 30–35 minutes, so the names can
//! resolve privately while the agent still talks to a numbered public host
//! (`ecs-a-1.REGION.amazonaws.com`, which private DNS does not cover). Only where its
//! established connections end proves the path. A peer on an ENI of one of the VPC's
//! endpoints is private; an S3 address reached through the gateway route is private;
//! another address inside the VPC is a proxy or unknown; anything else is public.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::record::{ProbeRecord, Reading};
use crate::inventory::{Cidr, EndpointKind, Inventory};
use crate::preflight::short_service_name;

/// Where an agent's control-plane connections go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Path {
    /// ACS and TCS both end on the endpoints.
    Private,
    /// ACS or TCS goes elsewhere (a public address, a numbered public host).
    Public,
    /// Not proven either way; the verdict's reason says why.
    Unknown,
}

impl Path {
    pub fn as_str(self) -> &'static str {
        match self {
            Path::Private => "private",
            Path::Public => "public",
            Path::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one remote address is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "kebab-case")]
pub enum PeerClass {
    /// An ENI of one of the VPC's interface endpoints (`service`: `ecs-agent`, …).
    Endpoint {
        service: String,
        endpoint: String,
    },
    /// With `--shared-endpoints`: a private address that `name` resolves to.
    SharedEndpoint {
        name: String,
    },
    /// In the region's S3 prefix list, with the instance's subnet routed to the gateway.
    S3Gateway,
    /// Inside the VPC but no endpoint ENI: a proxy, a NAT instance, or unknown.
    InVpc,
    /// A private address outside the VPC (peering, transit gateway, on premises).
    PrivateElsewhere,
    Public,
}

impl PeerClass {
    fn label(&self) -> String {
        match self {
            PeerClass::Endpoint { service, .. } => format!("{service} endpoint"),
            PeerClass::SharedEndpoint { name } => format!("{name} via shared endpoint"),
            PeerClass::S3Gateway => "S3 gateway".into(),
            PeerClass::InVpc => "in-VPC, no endpoint".into(),
            PeerClass::PrivateElsewhere => "private, outside the VPC".into(),
            PeerClass::Public => "public".into(),
        }
    }
}

/// One of the agent's :443 peers, classified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub address: Ipv4Addr,
    #[serde(flatten)]
    pub class: PeerClass,
}

/// The verdict on one instance, with the evidence behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub path: Path,
    /// One sentence: why this path (and, where it is not private, what to do).
    pub reason: String,
    /// The peer on the `ecs-agent` endpoint (ACS), when there is one.
    pub acs: Option<Ipv4Addr>,
    /// The peer on the `ecs-telemetry` endpoint (TCS), when there is one.
    pub tcs: Option<Ipv4Addr>,
    pub peers: Vec<Peer>,
    /// The newest websocket host in the agent's log, and when it connected.
    pub websocket: Option<String>,
    /// Proxy settings the agent has (`HTTPS_PROXY=…`).
    pub proxy: Option<String>,
    /// Names that do not resolve to their endpoint's ENIs on the instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_problems: Vec<String>,
    /// `unknown` only because the agent's websockets are not all up yet (no :443
    /// connection, or only ones to endpoints): worth probing again shortly.
    #[serde(skip)]
    pub settling: bool,
}

impl Verdict {
    /// A verdict for an instance whose probe gave no record (not sent, failed, timed out).
    pub fn unprobed(reason: impl Into<String>) -> Verdict {
        Verdict {
            path: Path::Unknown,
            reason: reason.into(),
            acs: None,
            tcs: None,
            peers: Vec::new(),
            websocket: None,
            proxy: None,
            dns_problems: Vec::new(),
            settling: false,
        }
    }

    /// The agent peers in one short line: `10.0.1.100 (ecs-agent endpoint), …`.
    pub fn peers_summary(&self) -> String {
        if self.peers.is_empty() {
            return "none".into();
        }
        self.peers
            .iter()
            .map(|p| format!("{} ({})", p.address, p.class.label()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// The network facts a verdict reads, taken once from the inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathMap {
    /// (VPC, endpoint ENI address) → (short service name, endpoint id). Keyed by VPC too:
    /// VPCs may overlap, and another VPC's ENI is not this instance's endpoint.
    endpoints: BTreeMap<(String, Ipv4Addr), (String, String)>,
    /// Each VPC's subnet blocks.
    vpc_blocks: BTreeMap<String, Vec<Cidr>>,
    s3_blocks: Vec<Cidr>,
    /// Subnets whose route table sends the S3 prefix list to a gateway endpoint.
    s3_routed_subnets: BTreeSet<String>,
    /// Instance id → (VPC, subnet).
    instances: BTreeMap<String, (String, String)>,
    region: String,
    account: Option<String>,
    shared_endpoints: bool,
}

/// The names the probe resolves, by the endpoint service that should answer them.
const NAME_OF_SERVICE: [(&str, &str); 5] = [
    ("ecs-agent", "ecs-a"),
    ("ecs-telemetry", "ecs-t"),
    ("ecs", "ecs"),
    ("ecr.api", "ecr-api"),
    ("ecr.dkr", "ecr-dkr"),
];

impl PathMap {
    /// Reads the endpoints' ENIs, the VPCs' blocks and the S3 routes from the inventory.
    /// Facts that could not be read are simply absent: their peers then classify as
    /// in-VPC or public, never as private (fail closed).
    pub fn from_inventory(inventory: &Inventory, shared_endpoints: bool) -> PathMap {
        let region = inventory.cluster.region.clone();
        let mut map = PathMap {
            region: region.clone(),
            account: inventory.cluster.account.clone(),
            shared_endpoints,
            s3_blocks: inventory.s3_prefix_list_cidrs.clone().unwrap_or_default(),
            ..PathMap::default()
        };
        let s3_list = inventory.s3_prefix_list_id.clone().ok().flatten();
        for vpc in &inventory.vpcs {
            if let Ok(subnets) = &vpc.subnets {
                map.vpc_blocks.insert(
                    vpc.id.clone(),
                    subnets.iter().filter_map(|s| s.cidr).collect(),
                );
            }
            let (Ok(endpoints), Ok(interfaces)) = (&vpc.endpoints, &vpc.endpoint_interfaces) else {
                continue;
            };
            for endpoint in endpoints.iter().filter(|e| !e.is_gone()) {
                let Some(service) = short_service_name(&endpoint.service_name, &region) else {
                    continue;
                };
                if endpoint.kind == EndpointKind::Interface {
                    for eni in interfaces
                        .iter()
                        .filter(|i| endpoint.network_interface_ids.contains(&i.id))
                    {
                        if let Some(address) = eni.private_ip {
                            map.endpoints.insert(
                                (vpc.id.clone(), address),
                                (service.to_string(), endpoint.id.clone()),
                            );
                        }
                    }
                }
            }
            let (Ok(tables), Ok(subnets), Some(list)) = (&vpc.route_tables, &vpc.subnets, &s3_list)
            else {
                continue;
            };
            let gateways: BTreeSet<&str> = endpoints
                .iter()
                .filter(|e| e.kind == EndpointKind::Gateway && e.is_available())
                .map(|e| e.id.as_str())
                .collect();
            for subnet in subnets {
                let routed =
                    crate::preflight::route_table_of(tables, &subnet.id).is_some_and(|t| {
                        t.prefix_list_routes
                            .iter()
                            .any(|(gateway, pl)| pl == list && gateways.contains(gateway.as_str()))
                    });
                if routed {
                    map.s3_routed_subnets.insert(subnet.id.clone());
                }
            }
        }
        if let Ok(instances) = &inventory.ec2_instances {
            for instance in instances.values() {
                map.instances.insert(
                    instance.id.clone(),
                    (instance.vpc_id.clone(), instance.subnet_id.clone()),
                );
            }
        }
        map
    }

    /// The endpoint whose ENI in the instance's VPC has this address.
    fn endpoint_at(&self, instance_id: &str, address: Ipv4Addr) -> Option<&(String, String)> {
        let (vpc, _) = self.instances.get(instance_id)?;
        self.endpoints.get(&(vpc.clone(), address))
    }

    fn classify(&self, instance_id: &str, address: Ipv4Addr, record: &ProbeRecord) -> PeerClass {
        if let Some((service, endpoint)) = self.endpoint_at(instance_id, address) {
            return PeerClass::Endpoint {
                service: service.clone(),
                endpoint: endpoint.clone(),
            };
        }
        let (vpc, subnet) = match self.instances.get(instance_id) {
            Some((vpc, subnet)) => (Some(vpc), Some(subnet)),
            None => (None, None),
        };
        if self.shared_endpoints && is_private(address) {
            for name in ["ecs-a", "ecs-t"] {
                let resolves = record
                    .dns
                    .get(name)
                    .and_then(Reading::seen)
                    .is_some_and(|list| list.contains(&address));
                if resolves {
                    return PeerClass::SharedEndpoint {
                        name: name.to_string(),
                    };
                }
            }
        }
        let in_vpc = vpc
            .and_then(|v| self.vpc_blocks.get(v))
            .is_some_and(|blocks| blocks.iter().any(|b| b.contains(address)));
        if in_vpc {
            return PeerClass::InVpc;
        }
        if self.s3_blocks.iter().any(|b| b.contains(address)) {
            return if subnet.is_some_and(|s| self.s3_routed_subnets.contains(s)) {
                PeerClass::S3Gateway
            } else {
                PeerClass::Public
            };
        }
        if is_private(address) {
            PeerClass::PrivateElsewhere
        } else {
            PeerClass::Public
        }
    }

    /// Names that do not resolve to the ENIs of their endpoint on the instance.
    fn dns_problems(&self, instance_id: &str, record: &ProbeRecord) -> Vec<String> {
        let mut problems = Vec::new();
        for (service, name) in NAME_OF_SERVICE {
            let host = self.host_of(name);
            match record.dns.get(name).unwrap_or(&Reading::Unknown) {
                Reading::Unknown => {
                    problems.push(format!("{host}: could not resolve on the instance"))
                }
                Reading::Nothing => problems.push(format!("{host} does not resolve")),
                Reading::Seen(list) => {
                    let on_endpoint = list.iter().all(|a| {
                        self.endpoint_at(instance_id, *a)
                            .is_some_and(|(s, _)| s == service)
                            || (self.shared_endpoints && is_private(*a))
                    });
                    if !on_endpoint {
                        let shown: Vec<String> = list.iter().map(Ipv4Addr::to_string).collect();
                        problems.push(format!(
                            "{host} resolves to {}, not the {service} endpoint",
                            shown.join(",")
                        ));
                    }
                }
            }
        }
        problems
    }

    fn host_of(&self, name: &str) -> String {
        let suffix = if self.region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        match name {
            "ecr-api" => format!("api.ecr.{}.{suffix}", self.region),
            "ecr-dkr" => match &self.account {
                Some(account) => format!("{account}.dkr.ecr.{}.{suffix}", self.region),
                None => format!("dkr.ecr.{}.{suffix}", self.region),
            },
            other => format!("{other}.{}.{suffix}", self.region),
        }
    }

    /// The verdict on `instance_id` from its probe record.
    pub fn verdict(&self, instance_id: &str, record: &ProbeRecord) -> Verdict {
        let peers: Vec<Peer> = record
            .peers
            .seen()
            .map(|list| {
                list.iter()
                    .map(|&address| Peer {
                        address,
                        class: self.classify(instance_id, address, record),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let on = |service: &str, name: &str| {
            peers.iter().find_map(|p| match &p.class {
                PeerClass::Endpoint { service: s, .. } if s == service => Some(p.address),
                PeerClass::SharedEndpoint { name: n } if n == name => Some(p.address),
                _ => None,
            })
        };
        let (acs, tcs) = (on("ecs-agent", "ecs-a"), on("ecs-telemetry", "ecs-t"));
        let websocket = match (&record.websocket_host, &record.websocket_at) {
            (Reading::Seen(host), Reading::Seen(at)) => Some(format!("{host} at {at}")),
            (Reading::Seen(host), _) => Some(host.clone()),
            _ => None,
        };
        let proxy = record.proxy.seen().map(|items| {
            items
                .iter()
                .map(|(var, value)| format!("{var}={value}"))
                .collect::<Vec<_>>()
                .join(" ")
        });
        let dns_problems = self.dns_problems(instance_id, record);
        let (path, reason) = judge(JudgeInput {
            record,
            peers: &peers,
            acs,
            tcs,
            proxy: proxy.as_deref(),
            dns_problems: &dns_problems,
        });
        // TCS connects on its own, a moment after ACS; an agent just back may not have
        // both yet. Nothing seen elsewhere, no proxy: it is still settling.
        let settling = path == Path::Unknown
            && proxy.is_none()
            && record.agent_pid.seen().is_some()
            && match &record.peers {
                Reading::Nothing => true,
                Reading::Seen(_) => peers.iter().all(|p| {
                    matches!(
                        p.class,
                        PeerClass::Endpoint { .. }
                            | PeerClass::SharedEndpoint { .. }
                            | PeerClass::S3Gateway
                    )
                }),
                Reading::Unknown => false,
            };
        Verdict {
            path,
            reason,
            acs,
            tcs,
            peers,
            websocket,
            proxy,
            dns_problems,
            settling,
        }
    }
}

struct JudgeInput<'a> {
    record: &'a ProbeRecord,
    peers: &'a [Peer],
    acs: Option<Ipv4Addr>,
    tcs: Option<Ipv4Addr>,
    proxy: Option<&'a str>,
    dns_problems: &'a [String],
}

fn judge(input: JudgeInput<'_>) -> (Path, String) {
    let JudgeInput {
        record,
        peers,
        acs,
        tcs,
        proxy,
        dns_problems,
    } = input;
    if let (Some(acs), Some(tcs)) = (acs, tcs) {
        return (
            Path::Private,
            format!("ACS {acs} and TCS {tcs} are on the endpoints"),
        );
    }
    let missing = match (acs, tcs) {
        (None, None) => "ACS and TCS",
        (None, Some(_)) => "ACS",
        _ => "TCS",
    };
    let numbered = record
        .websocket_host
        .seen()
        .filter(|host| is_numbered_host(host));
    let public: Vec<String> = peers
        .iter()
        .filter(|p| p.class == PeerClass::Public)
        .map(|p| p.address.to_string())
        .collect();
    let dns_hint = dns_problems
        .iter()
        .find(|p| p.starts_with("ecs-a.") || p.starts_with("ecs-t."))
        .map(|p| format!("; {p}"))
        .unwrap_or_default();
    if !public.is_empty() || numbered.is_some() {
        let via = match (public.is_empty(), numbered) {
            (false, Some(host)) => format!(
                "the agent talks to public {} and its websocket host is {host}",
                public.join(", ")
            ),
            (false, None) => format!("the agent talks to public {}", public.join(", ")),
            (true, Some(host)) => format!("its websocket host is the numbered public {host}"),
            (true, None) => unreachable!("one of the two is there"),
        };
        let proxy_note = proxy
            .map(|p| format!(" through the proxy ({p}): a restart will not move it; add the ECS hosts to NO_PROXY"))
            .unwrap_or_default();
        return (
            Path::Public,
            format!("{missing} not on the endpoints: {via}{proxy_note}{dns_hint}"),
        );
    }
    let (agent_pid, peer_list) = (&record.agent_pid, &record.peers);
    let reason = match (agent_pid, peer_list) {
        (Reading::Nothing, _) => "the agent is not running on the instance".to_string(),
        (_, Reading::Unknown) => {
            "the probe could not list the agent's connections (no ss, or the agent's process not found)"
                .to_string()
        }
        (_, Reading::Nothing) => format!(
            "{missing} not connected: the agent has no established :443 connection (still connecting?)"
        ),
        (_, Reading::Seen(_)) => {
            let in_vpc: Vec<String> = peers
                .iter()
                .filter(|p| matches!(p.class, PeerClass::InVpc | PeerClass::PrivateElsewhere))
                .map(|p| p.address.to_string())
                .collect();
            match (proxy, in_vpc.is_empty()) {
                (Some(proxy), _) => format!(
                    "the agent goes through a proxy ({proxy}); the path beyond it cannot be seen and a restart will not move it: add the ECS hosts to NO_PROXY"
                ),
                (None, false) => format!(
                    "{missing} go to {}, which is no endpoint ENI (a proxy or NAT instance?)",
                    in_vpc.join(", ")
                ),
                (None, true) => format!(
                    "{missing} not connected on the endpoints: the agent's :443 peers are {}",
                    peers
                        .iter()
                        .map(|p| format!("{} ({})", p.address, p.class.label()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
    };
    (Path::Unknown, format!("{reason}{dns_hint}"))
}

/// `ecs-a-3.eu-west-1.amazonaws.com`: a numbered host that only public DNS answers.
pub fn is_numbered_host(host: &str) -> bool {
    let first = host.split('.').next().unwrap_or_default();
    ["ecs-a-", "ecs-t-"].iter().any(|prefix| {
        first
            .strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    })
}

/// RFC 1918 and carrier-grade NAT space: addresses only a private network reaches.
fn is_private(address: Ipv4Addr) -> bool {
    address.is_private() || (address.octets()[0] == 100 && (64..128).contains(&address.octets()[1]))
}

#[cfg(test)]
mod tests;
