//! The verdict as a table over probe records, on the preflight's ready inventory: in
//! subnet-a (10.0.1.0/24) the ENIs of ecs-agent, ecs-telemetry, ecs, ecr.api and ecr.dkr
//! are 10.0.1.100 to .104, and the S3 list (52.218.0.0/17) is routed to the gateway.

use super::*;
use crate::preflight::testkit::*;

const ACS_ENI: &str = "10.0.1.100";
const TCS_ENI: &str = "10.0.1.101";
const ECS_ENI: &str = "10.0.1.102";
const PUBLIC_ACS: &str = "54.239.36.10";
const PUBLIC_TCS: &str = "54.239.36.11";

/// A record as the probe prints it on i-a, with private DNS in effect.
fn line(agent: &str, proxy: &str, peers: &str, ws_host: &str) -> String {
    format!(
        "PRIVLINK-PROBE v=1 agent={agent} proxy={proxy} no_proxy=169.254.169.254,169.254.170.2 \
         dns.ecs={ECS_ENI} dns.ecs-a={ACS_ENI} dns.ecs-t={TCS_ENI} dns.ecr-api=10.0.1.103 \
         dns.ecr-dkr=10.0.1.104 peers={peers} ws_host={ws_host} ws_at=2026-11-27T01:02:03Z"
    )
}

/// An agent whose ACS and TCS peers are the two endpoint ENIs.
fn on_both_endpoints() -> String {
    line(
        "2345",
        "none",
        &format!("{ACS_ENI},{TCS_ENI}"),
        "ecs-t.eu-west-1.amazonaws.com",
    )
}

fn judge_on(map: &PathMap, record: &str) -> Verdict {
    let record = ProbeRecord::parse(record).unwrap_or_else(|e| panic!("{e}: {record}"));
    map.verdict("i-a", &record)
}

fn ready() -> PathMap {
    PathMap::from_inventory(&ready_inventory(), false)
}

#[test]
fn verdict_table() {
    let private_peers = format!("{ACS_ENI},{TCS_ENI},{ECS_ENI}");
    let cases: Vec<(&str, String, Path, &[&str])> = vec![
        (
            "both websockets on their endpoints",
            line(
                "2345",
                "none",
                &private_peers,
                "ecs-t.eu-west-1.amazonaws.com",
            ),
            Path::Private,
            &["ACS 10.0.1.100", "TCS 10.0.1.101"],
        ),
        (
            "still on the numbered public hosts it cached",
            line(
                "2345",
                "none",
                &format!("{PUBLIC_ACS},{PUBLIC_TCS},{ECS_ENI}"),
                "ecs-t-1.eu-west-1.amazonaws.com",
            ),
            Path::Public,
            &[
                "ACS and TCS",
                "54.239.36.10",
                "ecs-t-1.eu-west-1.amazonaws.com",
            ],
        ),
        (
            "mixed: ACS moved, TCS still public",
            line(
                "2345",
                "none",
                &format!("{ACS_ENI},{PUBLIC_TCS}"),
                "ecs-a.eu-west-1.amazonaws.com",
            ),
            Path::Public,
            &["TCS not on the endpoints", "54.239.36.11"],
        ),
        (
            "only the ecs (API) endpoint, no ACS or TCS connection",
            line("2345", "none", ECS_ENI, "ecs-a.eu-west-1.amazonaws.com"),
            Path::Unknown,
            &["ACS and TCS", "10.0.1.102 (ecs endpoint)"],
        ),
        (
            "S3 through the gateway beside private websockets",
            line(
                "2345",
                "none",
                &format!("{ACS_ENI},{TCS_ENI},52.218.10.5"),
                "ecs-t.eu-west-1.amazonaws.com",
            ),
            Path::Private,
            &["ACS 10.0.1.100"],
        ),
        (
            "a proxy in the VPC, un-numbered host: the path beyond cannot be seen",
            line(
                "2345",
                "HTTPS_PROXY:http://10.0.1.50:3128",
                "10.0.1.50",
                "ecs-a.eu-west-1.amazonaws.com",
            ),
            Path::Unknown,
            &["proxy (HTTPS_PROXY=http://10.0.1.50:3128)", "NO_PROXY"],
        ),
        (
            "a proxy to a numbered public host",
            line(
                "2345",
                "HTTPS_PROXY:http://10.0.1.50:3128",
                "10.0.1.50",
                "ecs-a-2.eu-west-1.amazonaws.com",
            ),
            Path::Public,
            &["numbered public ecs-a-2", "a restart will not move it"],
        ),
        (
            "an in-VPC peer that is no endpoint, no proxy configured",
            line("2345", "none", "10.0.1.50", "ecs-a.eu-west-1.amazonaws.com"),
            Path::Unknown,
            &["10.0.1.50, which is no endpoint ENI"],
        ),
        (
            "the probe partly failed: no ss",
            line("2345", "unknown", "unknown", "unknown"),
            Path::Unknown,
            &["could not list the agent's connections"],
        ),
        (
            "no connection yet",
            line("2345", "none", "none", "none"),
            Path::Unknown,
            &["no established :443 connection"],
        ),
        (
            "the agent is not running",
            line("none", "none", "none", "none"),
            Path::Unknown,
            &["not running"],
        ),
    ];
    let map = ready();
    for (name, record, path, parts) in cases {
        let verdict = judge_on(&map, &record);
        assert_eq!(verdict.path, path, "{name}: {verdict:#?}");
        for part in parts {
            assert!(
                verdict.reason.contains(part) || verdict.peers_summary().contains(part),
                "{name}: {part:?} not in {:?} / {:?}",
                verdict.reason,
                verdict.peers_summary()
            );
        }
    }
}

#[test]
fn peers_are_classified_by_what_the_inventory_knows() {
    let map = ready();
    let record = line(
        "2345",
        "none",
        &format!("{ACS_ENI},{ECS_ENI},52.218.10.5,10.0.2.77,172.31.9.9,{PUBLIC_ACS}"),
        "ecs-a.eu-west-1.amazonaws.com",
    );
    let verdict = judge_on(&map, &record);
    let classes: Vec<(String, PeerClass)> = verdict
        .peers
        .iter()
        .map(|p| (p.address.to_string(), p.class.clone()))
        .collect();
    assert_eq!(
        classes,
        vec![
            (
                ACS_ENI.to_string(),
                PeerClass::Endpoint {
                    service: "ecs-agent".into(),
                    endpoint: "vpce-ecs-agent".into()
                }
            ),
            (
                ECS_ENI.to_string(),
                PeerClass::Endpoint {
                    service: "ecs".into(),
                    endpoint: "vpce-ecs".into()
                }
            ),
            ("52.218.10.5".to_string(), PeerClass::S3Gateway),
            ("10.0.2.77".to_string(), PeerClass::InVpc),
            ("172.31.9.9".to_string(), PeerClass::PrivateElsewhere),
            (PUBLIC_ACS.to_string(), PeerClass::Public),
        ]
    );
}

#[test]
fn s3_without_the_gateway_route_is_public() {
    let mut inventory = ready_inventory();
    for table in vpc_mut(&mut inventory).route_tables.as_mut().unwrap() {
        table.prefix_list_routes.clear();
    }
    let map = PathMap::from_inventory(&inventory, false);
    let verdict = judge_on(
        &map,
        &line(
            "2345",
            "none",
            "52.218.10.5",
            "ecs-a.eu-west-1.amazonaws.com",
        ),
    );
    assert_eq!(verdict.peers[0].class, PeerClass::Public);
    assert_eq!(verdict.path, Path::Public);
}

#[test]
fn unreadable_endpoint_facts_never_make_a_peer_private() {
    let mut inventory = ready_inventory();
    vpc_mut(&mut inventory).endpoint_interfaces = Err(crate::inventory::Unreadable {
        action: "ec2:DescribeNetworkInterfaces".into(),
        scope: VPC.into(),
        error: "denied".into(),
    });
    let map = PathMap::from_inventory(&inventory, false);
    let verdict = judge_on(&map, &on_both_endpoints());
    assert_eq!(verdict.path, Path::Unknown, "{verdict:#?}");
    assert_eq!(verdict.acs, None);
}

#[test]
fn another_vpcs_endpoint_at_the_same_address_is_not_this_instances() {
    // A second VPC with the same blocks hosts i-a; the ENIs at 10.0.1.100/.101 belong to
    // the first VPC's endpoints, which i-a's traffic never reaches.
    let mut inventory = ready_inventory();
    let mut other = inventory.vpcs[0].clone();
    other.id = "vpc-2".into();
    other.endpoints = Ok(Vec::new());
    other.endpoint_interfaces = Ok(Vec::new());
    inventory.vpcs.push(other);
    ec2_mut(&mut inventory, "i-a").vpc_id = "vpc-2".into();
    let verdict = judge_on(
        &PathMap::from_inventory(&inventory, false),
        &on_both_endpoints(),
    );
    assert_eq!(verdict.path, Path::Unknown, "{verdict:#?}");
    assert_eq!(verdict.acs, None);
    assert!(verdict.peers.iter().all(|p| p.class == PeerClass::InVpc));
}

#[test]
fn public_dns_is_named_as_the_reason() {
    let record = line(
        "2345",
        "none",
        &format!("{PUBLIC_ACS},{PUBLIC_TCS}"),
        "ecs-t-1.eu-west-1.amazonaws.com",
    )
    .replace(
        &format!("dns.ecs-a={ACS_ENI}"),
        &format!("dns.ecs-a={PUBLIC_ACS}"),
    );
    let verdict = judge_on(&ready(), &record);
    assert_eq!(verdict.path, Path::Public);
    assert!(
        verdict.reason.contains(
            "ecs-a.eu-west-1.amazonaws.com resolves to 54.239.36.10, not the ecs-agent endpoint"
        ),
        "{}",
        verdict.reason
    );
}

#[test]
fn shared_endpoints_count_private_addresses_the_names_resolve_to() {
    let mut inventory = ready_inventory();
    remove_endpoint(&mut inventory, "ecs-agent");
    remove_endpoint(&mut inventory, "ecs-telemetry");
    let record = line(
        "2345",
        "none",
        "10.64.0.5,10.64.0.6",
        "ecs-t.eu-west-1.amazonaws.com",
    )
    .replace(&format!("dns.ecs-a={ACS_ENI}"), "dns.ecs-a=10.64.0.5")
    .replace(&format!("dns.ecs-t={TCS_ENI}"), "dns.ecs-t=10.64.0.6");
    let shared = judge_on(&PathMap::from_inventory(&inventory, true), &record);
    assert_eq!(shared.path, Path::Private, "{shared:#?}");
    let local_only = judge_on(&PathMap::from_inventory(&inventory, false), &record);
    assert_eq!(local_only.path, Path::Unknown, "{local_only:#?}");
    // A public address the name resolves to is never a shared endpoint.
    let public = record
        .replace("10.64.0.5,10.64.0.6", &format!("{PUBLIC_ACS},10.64.0.6"))
        .replace("dns.ecs-a=10.64.0.5", &format!("dns.ecs-a={PUBLIC_ACS}"));
    let verdict = judge_on(&PathMap::from_inventory(&inventory, true), &public);
    assert_eq!(verdict.path, Path::Public, "{verdict:#?}");
}

#[test]
fn numbered_hosts_table() {
    for (host, numbered) in [
        ("ecs-a-1.eu-west-1.amazonaws.com", true),
        ("ecs-t-12.us-east-1.amazonaws.com", true),
        ("ecs-a.eu-west-1.amazonaws.com", false),
        ("ecs-t.eu-west-1.amazonaws.com", false),
        ("ecs-a-.eu-west-1.amazonaws.com", false),
        ("ecs-a-x1.eu-west-1.amazonaws.com", false),
        ("ecs.eu-west-1.amazonaws.com", false),
    ] {
        assert_eq!(is_numbered_host(host), numbered, "{host}");
    }
}

#[test]
fn an_unprobed_instance_is_unknown_with_its_reason() {
    let verdict = Verdict::unprobed("the probe did not answer within 120s");
    assert_eq!(verdict.path, Path::Unknown);
    assert_eq!(
        verdict.to_string(),
        "unknown: the probe did not answer within 120s"
    );
}
