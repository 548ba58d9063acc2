//! The simulated cluster's network: one VPC with every endpoint ready (so preflight finds
//! nothing to block), addresses for instances and endpoint ENIs, and what the path probe
//! prints on an instance, given whether its agent is on the endpoints yet.
//!
//! Zone k (0-based, in AZ order) has subnet `10.0.16(k+1).0/20`; its endpoint ENIs sit at
//! `.4` upwards, a proxy (for `Fault::ProxyInPath`) at `.3`, instances from `.16`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::fleet::{CommandId, FleetError, InvocationStatus, ProbeRequest};
use crate::inventory::*;
use crate::verify::record::{ProbeRecord, Reading};

/// Interface endpoints the simulated VPC has: the five the agent needs, SSM's, logs.
const INTERFACE_SERVICES: [&str; 9] = [
    "ecs-agent",
    "ecs-telemetry",
    "ecs",
    "ecr.api",
    "ecr.dkr",
    "ssm",
    "ssmmessages",
    "ec2messages",
    "logs",
];
const INSTANCE_SG: &str = "sg-instances";
const ENDPOINT_SG: &str = "sg-endpoints";
pub(super) const S3_PREFIX_LIST: &str = "pl-sim-s3";
pub(super) const S3_BLOCK: &str = "52.218.0.0/17";
/// Where the numbered public hosts (`ecs-a-1`, `ecs-t-1`) resolve.
const PUBLIC_ACS: Ipv4Addr = Ipv4Addr::new(54, 239, 36, 10);
const PUBLIC_TCS: Ipv4Addr = Ipv4Addr::new(54, 239, 36, 11);

fn subnet_base(zone: usize) -> u32 {
    u32::from(Ipv4Addr::new(10, 0, 0, 0)) + ((zone as u32 + 1) << 12)
}

fn subnet_id(availability_zone: &str) -> String {
    format!("subnet-{availability_zone}")
}

/// The `n`th instance's address in zone `zone`.
pub(super) fn instance_address(zone: usize, n: usize) -> Ipv4Addr {
    Ipv4Addr::from(subnet_base(zone) + 16 + n as u32)
}

fn endpoint_address(zone: usize, service: &str) -> Ipv4Addr {
    let index = INTERFACE_SERVICES
        .iter()
        .position(|s| *s == service)
        .unwrap_or(0);
    Ipv4Addr::from(subnet_base(zone) + 4 + index as u32)
}

/// The proxy of `Fault::ProxyInPath`: inside the VPC, no endpoint.
pub(super) fn proxy_address(zone: usize) -> Ipv4Addr {
    Ipv4Addr::from(subnet_base(zone) + 3)
}

fn cidr(raw: &str) -> Cidr {
    Cidr::parse(raw).unwrap_or_else(|| panic!("a fixed CIDR: {raw}"))
}

/// The VPC of the simulated cluster, ready for the cutover, over these zones.
pub(super) fn ready_vpc(region: &str, zones: &[String]) -> Vpc {
    let subnets: Vec<Subnet> = zones
        .iter()
        .enumerate()
        .map(|(k, az)| Subnet {
            id: subnet_id(az),
            availability_zone: az.clone(),
            cidr: Cidr::parse(&format!("{}/20", Ipv4Addr::from(subnet_base(k)))),
        })
        .collect();
    let subnet_ids: Vec<String> = subnets.iter().map(|s| s.id.clone()).collect();
    let mut endpoints: Vec<VpcEndpoint> = INTERFACE_SERVICES
        .iter()
        .map(|service| VpcEndpoint {
            id: format!("vpce-{}", service.replace('.', "-")),
            service_name: format!("com.amazonaws.{region}.{service}"),
            kind: EndpointKind::Interface,
            state: "available".into(),
            private_dns_enabled: true,
            subnet_ids: subnet_ids.clone(),
            security_group_ids: vec![ENDPOINT_SG.into()],
            route_table_ids: vec![],
            network_interface_ids: zones
                .iter()
                .map(|az| format!("eni-{}-{az}", service.replace('.', "-")))
                .collect(),
            policy: None,
        })
        .collect();
    endpoints.push(VpcEndpoint {
        id: "vpce-s3".into(),
        service_name: format!("com.amazonaws.{region}.s3"),
        kind: EndpointKind::Gateway,
        state: "available".into(),
        private_dns_enabled: false,
        subnet_ids: vec![],
        security_group_ids: vec![],
        route_table_ids: vec!["rtb-main".into()],
        network_interface_ids: vec![],
        policy: None,
    });
    let endpoint_interfaces = INTERFACE_SERVICES
        .iter()
        .flat_map(|service| {
            zones
                .iter()
                .enumerate()
                .map(move |(k, az)| NetworkInterface {
                    id: format!("eni-{}-{az}", service.replace('.', "-")),
                    subnet_id: subnet_id(az),
                    private_ip: Some(endpoint_address(k, service)),
                })
        })
        .collect();
    let mut instance_egress = rule(Protocol::All, None);
    instance_egress.cidrs = vec![cidr("0.0.0.0/0")];
    let mut endpoint_ingress = rule(Protocol::Tcp, Some((443, 443)));
    endpoint_ingress.group_ids = vec![INSTANCE_SG.into()];
    let allow_all = |egress| NetworkAclEntry {
        rule_number: 100,
        egress,
        protocol: Protocol::All,
        allow: true,
        cidr: Some(cidr("0.0.0.0/0")),
        ports: None,
    };
    Vpc {
        id: "vpc-sim".into(),
        dns: Ok(VpcDns {
            support: true,
            hostnames: true,
        }),
        dhcp_dns_servers: Ok(vec!["AmazonProvidedDNS".into()]),
        subnets: Ok(subnets),
        route_tables: Ok(vec![RouteTable {
            id: "rtb-main".into(),
            main: true,
            subnet_ids: vec![],
            prefix_list_routes: vec![("vpce-s3".into(), S3_PREFIX_LIST.into())],
        }]),
        endpoints: Ok(endpoints),
        endpoint_interfaces: Ok(endpoint_interfaces),
        security_groups: Ok(vec![
            SecurityGroup {
                id: INSTANCE_SG.into(),
                ingress: vec![],
                egress: vec![instance_egress],
            },
            SecurityGroup {
                id: ENDPOINT_SG.into(),
                ingress: vec![endpoint_ingress],
                egress: vec![],
            },
        ]),
        network_acls: Ok(vec![NetworkAcl {
            id: "acl-default".into(),
            subnet_ids,
            entries: vec![allow_all(true), allow_all(false)],
        }]),
        prefix_lists: Ok(BTreeMap::new()),
    }
}

fn rule(protocol: Protocol, ports: Option<(i32, i32)>) -> SecurityGroupRule {
    SecurityGroupRule {
        protocol,
        ports,
        cidrs: vec![],
        group_ids: vec![],
        prefix_list_ids: vec![],
    }
}

/// Where an instance's agent stands, as the probe sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SimPath {
    /// Restarted since the endpoints exist: ACS and TCS on their endpoints.
    Endpoints,
    /// ACS on its endpoint, TCS not connected yet.
    AcsOnly,
    /// Still on the numbered public hosts it cached.
    Public,
    /// Through the proxy at [`proxy_address`], to the numbered public hosts.
    Proxy,
    /// The probe finds none of its tools.
    Blind,
}

/// The record the probe prints on an instance in zone `zone` whose agent is on `path`,
/// connected since `connected_at` (RFC 3339).
pub(super) fn probe_record(
    region: &str,
    zone: usize,
    path: SimPath,
    connected_at: &str,
) -> ProbeRecord {
    if path == SimPath::Blind {
        return ProbeRecord::blind();
    }
    let dns = [
        ("ecs", "ecs"),
        ("ecs-a", "ecs-agent"),
        ("ecs-t", "ecs-telemetry"),
        ("ecr-api", "ecr.api"),
        ("ecr-dkr", "ecr.dkr"),
    ]
    .into_iter()
    .map(|(name, service)| {
        (
            name.to_string(),
            Reading::Seen(vec![endpoint_address(zone, service)]),
        )
    })
    .collect();
    let (peers, host, proxy) = match path {
        SimPath::Endpoints => (
            vec![
                endpoint_address(zone, "ecs-agent"),
                endpoint_address(zone, "ecs-telemetry"),
                endpoint_address(zone, "ecs"),
            ],
            format!("ecs-t.{region}.amazonaws.com"),
            Reading::Nothing,
        ),
        SimPath::AcsOnly => (
            vec![
                endpoint_address(zone, "ecs-agent"),
                endpoint_address(zone, "ecs"),
            ],
            format!("ecs-a.{region}.amazonaws.com"),
            Reading::Nothing,
        ),
        SimPath::Public => (
            vec![PUBLIC_ACS, PUBLIC_TCS, endpoint_address(zone, "ecs")],
            format!("ecs-t-1.{region}.amazonaws.com"),
            Reading::Nothing,
        ),
        SimPath::Proxy | SimPath::Blind => (
            vec![proxy_address(zone)],
            format!("ecs-t-1.{region}.amazonaws.com"),
            Reading::Seen(vec![(
                "HTTPS_PROXY".to_string(),
                format!("http://{}:3128", proxy_address(zone)),
            )]),
        ),
    };
    ProbeRecord {
        agent_pid: Reading::Seen(2345),
        proxy,
        no_proxy: Reading::Seen("169.254.169.254,169.254.170.2".into()),
        dns,
        peers: Reading::Seen(peers),
        websocket_host: Reading::Seen(host),
        websocket_at: Reading::Seen(connected_at.to_string()),
    }
}

impl super::SimFleet {
    /// The fleet's zones in order: every instance's AZ, terminated ones included, so an
    /// instance keeps its subnet for the fleet's life.
    pub(super) fn zones(state: &super::State) -> Vec<String> {
        let zones: BTreeSet<&String> = state
            .instances
            .iter()
            .map(|i| &i.availability_zone)
            .collect();
        zones.into_iter().cloned().collect()
    }

    pub(super) fn zone_of(zones: &[String], instance: &super::SimInstance) -> usize {
        zones
            .iter()
            .position(|z| *z == instance.availability_zone)
            .unwrap_or(0)
    }

    /// Which path the instance's agent is on at `now`: public until a restart or a
    /// reboot after the endpoints exist (they exist from the start here).
    fn path_at(
        &self,
        state: &super::State,
        instance: &super::SimInstance,
        now: tokio::time::Instant,
    ) -> SimPath {
        use super::Fault;
        if instance.has(Fault::ProbeBlind) {
            return SimPath::Blind;
        }
        if instance.has(Fault::ProxyInPath) {
            return SimPath::Proxy;
        }
        // When the agent last came back from a restart or a reboot.
        let restarted = state
            .commands
            .values()
            .filter_map(|timelines| timelines.get(&instance.id))
            .filter_map(|t| match &t.ends {
                Some((end, InvocationStatus::Success, _)) if now >= t.sent + *end => {
                    Some(t.sent + *end)
                }
                _ => None,
            })
            .filter(|_| !instance.has(Fault::RestartIneffective));
        let rebooted = state
            .world
            .agent_away(&instance.id)
            .into_iter()
            .filter_map(|(_, back)| back.filter(|back| now >= *back));
        let moved_at = restarted.chain(rebooted).max();
        if instance.starts_private {
            return SimPath::Endpoints;
        }
        match moved_at {
            Some(_) if instance.has(Fault::StaysPublic) => SimPath::Public,
            Some(at) => {
                let late = instance.faults.iter().find_map(|f| match f {
                    Fault::TelemetryLate(by) => Some(*by),
                    _ => None,
                });
                match late {
                    Some(by) if now < at + by => SimPath::AcsOnly,
                    _ => SimPath::Endpoints,
                }
            }
            None => SimPath::Public,
        }
    }

    /// Whether the instance has been terminated by now.
    pub fn terminated(&self, instance_id: &str) -> bool {
        self.about(instance_id, |_, instance, now| {
            self.is_terminated(instance, now)
        })
    }

    /// Whether the instance's agent is on the endpoints now, as a probe would find it.
    pub fn on_endpoints(&self, instance_id: &str) -> bool {
        self.about(instance_id, |state, instance, now| {
            self.path_at(state, instance, now) == SimPath::Endpoints
        })
    }

    /// `SendCommand` of the probe: like SSM, refused whole when one instance cannot take
    /// commands; each record is ready after the delivery latency and a moment of work.
    pub(super) fn start_probe(&self, request: &ProbeRequest) -> Result<CommandId, FleetError> {
        use super::{Fault, Timeline};
        let now = self.now();
        let mut state = self.lock();
        self.call(&mut state, "ssm:SendCommand")?;
        assert_eq!(
            request.region, self.region,
            "the probe names the fleet's region"
        );
        let id = self.accept_command(&mut state, &request.instance_ids, now)?;
        let zones = Self::zones(&state);
        let connected_at = crate::clock::rfc3339(self.wall(now));
        let timelines: BTreeMap<String, Timeline> =
            Self::commanded(&state, &request.instance_ids, request.platform)
                .map(|instance| {
                    let path = self.path_at(&state, instance, now);
                    let record = probe_record(
                        &self.region,
                        Self::zone_of(&zones, instance),
                        path,
                        &connected_at,
                    );
                    // Delivered like any command, then about as long as ECS takes to report.
                    let took =
                        (self.latencies.delivery + self.latencies.report).mul_f64(instance.pace);
                    let noise = if instance.has(Fault::NoisyProbe) {
                        "noise ".repeat(500) + "\n"
                    } else {
                        String::new()
                    };
                    let output = format!("{noise}{record}\n");
                    let timeline = Timeline {
                        sent: now,
                        ends: (!instance.has(Fault::ProbeHangs)).then_some((
                            took,
                            InvocationStatus::Success,
                            output,
                        )),
                        away: None,
                        cancelled: false,
                    };
                    (instance.id.clone(), timeline)
                })
                .collect();
        state.probes.insert(id.clone(), timelines);
        Ok(id)
    }
}
