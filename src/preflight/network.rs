//! Rules about the path between the instances and the endpoints: VPC DNS attributes, DHCP
//! name servers, security groups in both directions, and network ACLs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::endpoints::{endpoints_for, REQUIRED_INTERFACE};
use super::{ids, some_of, Finding, HostedInstances};
use crate::inventory::{
    Cidr, Ec2Instance, EndpointKind, Inventory, NetworkAcl, SecurityGroup, SecurityGroupRule, Vpc,
    VpcEndpoint,
};

const HTTPS: i32 = 443;
/// The return traffic of a TCP connection comes back to the client's ephemeral port:
/// Linux picks from 32768–60999, Windows from 49152–65535
/// (https://docs.aws.amazon.com/vpc/latest/userguide/custom-network-acl.html#nacl-ephemeral-ports).
fn ephemeral_ports(platform: Option<&str>) -> (i32, i32) {
    match platform {
        Some("Linux") => (32768, 60999),
        Some("Windows") => (49152, 65535),
        _ => (32768, 65535),
    }
}

pub(super) fn check(
    inventory: &Inventory,
    vpc: &Vpc,
    hosted: &HostedInstances,
    findings: &mut Vec<Finding>,
) {
    let region = &inventory.cluster.region;
    dns_attributes(region, vpc, findings);
    dhcp_servers(vpc, findings);
    let (Ok(endpoints), Ok(groups)) = (&vpc.endpoints, &vpc.security_groups) else {
        return;
    };
    let Ok(interfaces) = &vpc.endpoint_interfaces else {
        return;
    };
    let no_lists = BTreeMap::new();
    let prefix_lists = vpc.prefix_lists.as_ref().unwrap_or(&no_lists);
    let peers = Peers {
        groups,
        prefix_lists,
    };
    for service in REQUIRED_INTERFACE {
        let Some(endpoint) = endpoints_for(endpoints, region, service, EndpointKind::Interface)
            .into_iter()
            .next()
        else {
            continue;
        };
        let targets = EndpointTargets::of(vpc, endpoint, interfaces);
        endpoint_ingress(region, vpc, hosted, service, endpoint, &peers, findings);
        instance_egress(
            region, vpc, hosted, service, endpoint, &targets, &peers, findings,
        );
        network_acls(inventory, vpc, hosted, service, endpoint, findings);
    }
    s3_egress(inventory, vpc, hosted, endpoints, groups, findings);
}

/// What a security-group rule can name as its peer, resolved.
struct Peers<'a> {
    groups: &'a [SecurityGroup],
    prefix_lists: &'a BTreeMap<String, Vec<Cidr>>,
}

impl Peers<'_> {
    /// A rule's CIDRs, its prefix lists' entries included.
    fn cidrs(&self, rule: &SecurityGroupRule) -> Vec<Cidr> {
        rule.cidrs
            .iter()
            .copied()
            .chain(
                rule.prefix_list_ids
                    .iter()
                    .filter_map(|id| self.prefix_lists.get(id))
                    .flatten()
                    .copied(),
            )
            .collect()
    }
}

fn dns_attributes(region: &str, vpc: &Vpc, findings: &mut Vec<Finding>) {
    let Ok(dns) = vpc.dns else { return };
    let attributes = [
        (
            dns.support,
            ids::VPC_DNS_SUPPORT,
            "enableDnsSupport",
            "--enable-dns-support",
        ),
        (
            dns.hostnames,
            ids::VPC_DNS_HOSTNAMES,
            "enableDnsHostnames",
            "--enable-dns-hostnames",
        ),
    ];
    for (enabled, id, attribute, flag) in attributes {
        if !enabled {
            findings.push(
                Finding::new(
                    id,
                    format!("{} has {attribute} off: the endpoints' private DNS names cannot resolve", vpc.id),
                )
                .in_vpc(&vpc.id)
                .resources([vpc.id.clone()])
                .fix(format!(
                    "aws ec2 modify-vpc-attribute --region {region} --vpc-id {} {flag} '{{\"Value\":true}}'",
                    vpc.id
                )),
            );
        }
    }
}

fn dhcp_servers(vpc: &Vpc, findings: &mut Vec<Finding>) {
    let Ok(servers) = &vpc.dhcp_dns_servers else {
        return;
    };
    let custom: Vec<String> = servers
        .iter()
        .filter(|s| !s.eq_ignore_ascii_case("AmazonProvidedDNS"))
        .cloned()
        .collect();
    if custom.is_empty() {
        return;
    }
    findings.push(
        Finding::new(
            ids::DHCP_CUSTOM_DNS,
            format!(
                "{}'s DHCP options name DNS servers {}: endpoint private DNS answers only through the VPC resolver",
                vpc.id,
                custom.join(", ")
            ),
        )
        .in_vpc(&vpc.id)
        .resources(std::iter::once(vpc.id.clone()).chain(custom.iter().cloned()))
        .fix(
            "have those servers forward the region's amazonaws.com names to the VPC resolver (Route 53 Resolver \
             inbound endpoint or the VPC's .2 address), or use AmazonProvidedDNS",
        ),
    );
}

/// The addresses an instance reaches an interface endpoint at: its ENIs' private IPs, or
/// (when the ENIs could not be resolved) the CIDRs of the endpoint's subnets.
struct EndpointTargets {
    ips: Vec<Ipv4Addr>,
    subnet_cidrs: Vec<Cidr>,
}

impl EndpointTargets {
    fn of(
        vpc: &Vpc,
        endpoint: &VpcEndpoint,
        interfaces: &[crate::inventory::NetworkInterface],
    ) -> Self {
        let ips = interfaces
            .iter()
            .filter(|eni| endpoint.network_interface_ids.contains(&eni.id))
            .filter_map(|eni| eni.private_ip)
            .collect();
        let subnet_cidrs = vpc
            .subnets
            .as_ref()
            .map(|subnets| {
                subnets
                    .iter()
                    .filter(|s| endpoint.subnet_ids.contains(&s.id))
                    .filter_map(|s| s.cidr)
                    .collect()
            })
            .unwrap_or_default();
        EndpointTargets { ips, subnet_cidrs }
    }

    /// Whether a rule's CIDRs reach every address of the endpoint.
    fn covered_by(&self, cidrs: &[Cidr]) -> bool {
        if cidrs.iter().any(Cidr::is_everything) {
            return true;
        }
        if !self.ips.is_empty() {
            self.ips
                .iter()
                .all(|ip| cidrs.iter().any(|c| c.contains(*ip)))
        } else {
            !self.subnet_cidrs.is_empty()
                && self
                    .subnet_cidrs
                    .iter()
                    .all(|s| cidrs.iter().any(|c| c.covers(s)))
        }
    }
}

fn rules_of<'a>(
    groups: &'a [SecurityGroup],
    group_ids: &'a [String],
    egress: bool,
) -> impl Iterator<Item = &'a SecurityGroupRule> + 'a {
    groups
        .iter()
        .filter(move |g| group_ids.contains(&g.id))
        .flat_map(move |g| if egress { &g.egress } else { &g.ingress })
}

fn endpoint_ingress(
    region: &str,
    vpc: &Vpc,
    hosted: &HostedInstances,
    service: &str,
    endpoint: &VpcEndpoint,
    peers: &Peers,
    findings: &mut Vec<Finding>,
) {
    let admits = |instance: &Ec2Instance| {
        rules_of(peers.groups, &endpoint.security_group_ids, false)
            .filter(|r| r.covers_tcp(HTTPS))
            .any(|r| {
                r.group_ids
                    .iter()
                    .any(|g| instance.security_group_ids.contains(g))
                    || instance
                        .private_ip
                        .is_some_and(|ip| peers.cidrs(r).iter().any(|c| c.contains(ip)))
            })
    };
    let refused: Vec<&Ec2Instance> = hosted
        .instances
        .iter()
        .copied()
        .filter(|i| !admits(i))
        .collect();
    if refused.is_empty() {
        return;
    }
    let ids: Vec<String> = refused.iter().map(|i| i.id.clone()).collect();
    let source = most_common_group(&refused);
    let target = endpoint
        .security_group_ids
        .first()
        .cloned()
        .unwrap_or_else(|| "<endpoint security group>".into());
    findings.push(
        Finding::new(
            ids::ENDPOINT_INGRESS,
            format!(
                "security groups {} of {service} endpoint {} do not admit TCP 443 from {} instance(s): {}",
                endpoint.security_group_ids.join(", "),
                endpoint.id,
                ids.len(),
                some_of(&ids)
            ),
        )
        .in_vpc(&vpc.id)
        .resources(std::iter::once(endpoint.id.clone()).chain(endpoint.security_group_ids.iter().cloned()).chain(ids))
        .fix(format!(
            "aws ec2 authorize-security-group-ingress --region {region} --group-id {target} \
             --ip-permissions 'IpProtocol=tcp,FromPort=443,ToPort=443,UserIdGroupPairs=[{{GroupId={source}}}]'"
        )),
    );
}

#[allow(clippy::too_many_arguments)]
fn instance_egress(
    region: &str,
    vpc: &Vpc,
    hosted: &HostedInstances,
    service: &str,
    endpoint: &VpcEndpoint,
    targets: &EndpointTargets,
    peers: &Peers,
    findings: &mut Vec<Finding>,
) {
    let allows = |instance: &Ec2Instance| {
        rules_of(peers.groups, &instance.security_group_ids, true)
            .filter(|r| r.covers_tcp(HTTPS))
            .any(|r| {
                r.group_ids
                    .iter()
                    .any(|g| endpoint.security_group_ids.contains(g))
                    || targets.covered_by(&peers.cidrs(r))
            })
    };
    let blocked: Vec<&Ec2Instance> = hosted
        .instances
        .iter()
        .copied()
        .filter(|i| !allows(i))
        .collect();
    if blocked.is_empty() {
        return;
    }
    let ids: Vec<String> = blocked.iter().map(|i| i.id.clone()).collect();
    let group = most_common_group(&blocked);
    let peer = endpoint
        .security_group_ids
        .first()
        .cloned()
        .unwrap_or_else(|| "<endpoint security group>".into());
    findings.push(
        Finding::new(
            ids::INSTANCE_EGRESS_ENDPOINT,
            format!(
                "security groups of {} instance(s) do not allow TCP 443 out to {service} endpoint {}: {}",
                ids.len(),
                endpoint.id,
                some_of(&ids)
            ),
        )
        .in_vpc(&vpc.id)
        .resources(std::iter::once(endpoint.id.clone()).chain(ids))
        .fix(format!(
            "aws ec2 authorize-security-group-egress --region {region} --group-id {group} \
             --ip-permissions 'IpProtocol=tcp,FromPort=443,ToPort=443,UserIdGroupPairs=[{{GroupId={peer}}}]'"
        )),
    );
}

/// The S3 prefix list of the VPC's available gateway endpoints, read from the routes the
/// endpoints added to their route tables; else the region's list looked up by name.
fn s3_prefix_lists(
    inventory: &Inventory,
    vpc: &Vpc,
    gateways: &[&VpcEndpoint],
) -> BTreeSet<String> {
    let mut lists: BTreeSet<String> = vpc
        .route_tables
        .iter()
        .flatten()
        .flat_map(|t| &t.prefix_list_routes)
        .filter(|(gateway, _)| gateways.iter().any(|g| &g.id == gateway))
        .map(|(_, list)| list.clone())
        .collect();
    if let Ok(Some(list)) = &inventory.s3_prefix_list_id {
        lists.insert(list.clone());
    }
    lists
}

fn s3_egress(
    inventory: &Inventory,
    vpc: &Vpc,
    hosted: &HostedInstances,
    endpoints: &[VpcEndpoint],
    groups: &[SecurityGroup],
    findings: &mut Vec<Finding>,
) {
    let region = &inventory.cluster.region;
    let gateways: Vec<&VpcEndpoint> = endpoints_for(endpoints, region, "s3", EndpointKind::Gateway)
        .into_iter()
        .filter(|e| e.is_available())
        .collect();
    if gateways.is_empty() {
        // No usable gateway is a blocking finding of its own; egress to it is moot.
        return;
    }
    let lists = s3_prefix_lists(inventory, vpc, &gateways);
    let Some(prefix_list) = lists.iter().next().cloned() else {
        if inventory.s3_prefix_list_id.is_ok() {
            findings.push(
                Finding::new(
                    ids::UNREADABLE,
                    format!(
                        "the S3 prefix list of {region} could not be found (no gateway route names it \
                         and DescribePrefixLists does not list it): S3 egress cannot be checked"
                    ),
                )
                .in_vpc(&vpc.id)
                .resources(gateways.iter().map(|g| g.id.clone()))
                .fix(format!("aws ec2 describe-prefix-lists --region {region}")),
            );
        }
        return;
    };
    let allows = |instance: &Ec2Instance| {
        rules_of(groups, &instance.security_group_ids, true)
            .filter(|r| r.covers_tcp(HTTPS))
            .any(|r| {
                r.prefix_list_ids.iter().any(|p| lists.contains(p))
                    || r.cidrs.iter().any(Cidr::is_everything)
            })
    };
    let blocked: Vec<&Ec2Instance> = hosted
        .instances
        .iter()
        .copied()
        .filter(|i| !allows(i))
        .collect();
    if blocked.is_empty() {
        return;
    }
    let ids: Vec<String> = blocked.iter().map(|i| i.id.clone()).collect();
    let group = most_common_group(&blocked);
    findings.push(
        Finding::new(
            ids::INSTANCE_EGRESS_S3,
            format!(
                "security groups of {} instance(s) do not allow TCP 443 out to the S3 prefix list {prefix_list} \
                 (ECR image layers): {}",
                ids.len(),
                some_of(&ids)
            ),
        )
        .in_vpc(&vpc.id)
        .resources(std::iter::once(prefix_list.to_string()).chain(ids))
        .fix(format!(
            "aws ec2 authorize-security-group-egress --region {region} --group-id {group} \
             --ip-permissions 'IpProtocol=tcp,FromPort=443,ToPort=443,PrefixListIds=[{{PrefixListId={prefix_list}}}]'"
        )),
    );
}

/// Network ACLs are stateless and filter only traffic that crosses a subnet boundary: the
/// request leaves on 443 and the answer returns to an ephemeral port, through the instance
/// subnet's ACL and the endpoint subnet's ACL both.
fn network_acls(
    inventory: &Inventory,
    vpc: &Vpc,
    hosted: &HostedInstances,
    service: &str,
    endpoint: &VpcEndpoint,
    findings: &mut Vec<Finding>,
) {
    let (Ok(acls), Ok(interfaces)) = (&vpc.network_acls, &vpc.endpoint_interfaces) else {
        return;
    };
    let acl_of = |subnet: &str| {
        acls.iter()
            .find(|a| a.subnet_ids.iter().any(|s| s == subnet))
    };
    // ACL id → what it drops.
    let mut drops: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut note = |acl: &NetworkAcl, what: String| {
        drops.entry(acl.id.clone()).or_default().insert(what);
    };
    let endpoint_enis: Vec<(&str, Ipv4Addr)> = interfaces
        .iter()
        .filter(|eni| endpoint.network_interface_ids.contains(&eni.id))
        .filter_map(|eni| Some((eni.subnet_id.as_str(), eni.private_ip?)))
        .collect();
    for instance in &hosted.instances {
        let Some(instance_ip) = instance.private_ip else {
            continue;
        };
        let platform = inventory
            .ssm_instances
            .as_ref()
            .ok()
            .and_then(|ssm| ssm.get(&instance.id))
            .and_then(|record| record.platform_type.as_deref());
        let ephemeral = ephemeral_ports(platform);
        let ports = format!("{}-{}", ephemeral.0, ephemeral.1);
        for &(eni_subnet, eni_ip) in &endpoint_enis {
            if eni_subnet == instance.subnet_id {
                continue;
            }
            if let Some(acl) = acl_of(&instance.subnet_id) {
                if !acl.allows_tcp(true, eni_ip, HTTPS) {
                    note(
                        acl,
                        format!("outbound TCP 443 from {} to {eni_ip}", instance.subnet_id),
                    );
                }
                if !acl.allows_tcp_range(false, eni_ip, ephemeral) {
                    note(
                        acl,
                        format!(
                            "inbound return traffic (TCP {ports}) from {eni_ip} to {}",
                            instance.subnet_id
                        ),
                    );
                }
            }
            if let Some(acl) = acl_of(eni_subnet) {
                if !acl.allows_tcp(false, instance_ip, HTTPS) {
                    note(
                        acl,
                        format!(
                            "inbound TCP 443 from {instance_ip} into endpoint subnet {eni_subnet}"
                        ),
                    );
                }
                if !acl.allows_tcp_range(true, instance_ip, ephemeral) {
                    note(
                        acl,
                        format!(
                            "outbound return traffic (TCP {ports}) from endpoint subnet {eni_subnet} \
                             to {instance_ip}"
                        ),
                    );
                }
            }
        }
    }
    for (acl, what) in drops {
        let what: Vec<String> = what.into_iter().collect();
        findings.push(
            Finding::new(
                ids::NETWORK_ACL,
                format!(
                    "network ACL {acl} would drop traffic to {service} endpoint {}: {}",
                    endpoint.id,
                    some_of(&what)
                ),
            )
            .in_vpc(&vpc.id)
            .resources([acl.clone(), endpoint.id.clone()])
            .fix(format!(
                "add entries to {acl} that allow TCP 443 between the instance and endpoint subnets, \
                 and the ephemeral ports for the return traffic (aws ec2 create-network-acl-entry)"
            )),
        );
    }
}

/// The security group most of these instances share: the natural place for a new rule.
fn most_common_group(instances: &[&Ec2Instance]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for group in instances.iter().flat_map(|i| &i.security_group_ids) {
        *counts.entry(group).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(group, _)| group.to_string())
        .unwrap_or_else(|| "<instance security group>".into())
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{run, PreflightOptions, Severity};
    use super::*;
    use crate::inventory::{NetworkAclEntry, Protocol};
    use std::collections::BTreeMap;

    fn findings_of(inventory: &Inventory) -> Vec<Finding> {
        run(inventory, PreflightOptions::default()).findings
    }

    #[test]
    fn dns_attributes_each_block() {
        for (support, hostnames, expected) in [
            (false, true, vec![ids::VPC_DNS_SUPPORT]),
            (true, false, vec![ids::VPC_DNS_HOSTNAMES]),
            (
                false,
                false,
                vec![ids::VPC_DNS_SUPPORT, ids::VPC_DNS_HOSTNAMES],
            ),
        ] {
            let mut inventory = ready_inventory();
            vpc_mut(&mut inventory).dns = Ok(crate::inventory::VpcDns { support, hostnames });
            let findings = findings_of(&inventory);
            let mut got: Vec<&str> = findings
                .iter()
                .filter(|f| f.id.starts_with("vpc-dns"))
                .map(|f| f.id)
                .collect();
            got.sort();
            let mut expected = expected;
            expected.sort();
            assert_eq!(got, expected);
            assert!(findings
                .iter()
                .filter(|f| f.id.starts_with("vpc-dns"))
                .all(|f| f.severity == Severity::Error));
        }
    }

    #[test]
    fn custom_dhcp_dns_servers_warn() {
        let mut inventory = ready_inventory();
        vpc_mut(&mut inventory).dhcp_dns_servers =
            Ok(vec!["10.0.0.53".into(), "AmazonProvidedDNS".into()]);
        let preflight = run(&inventory, PreflightOptions::default());
        assert!(preflight.is_ready());
        let dhcp = find(&preflight.findings, ids::DHCP_CUSTOM_DNS);
        assert!(dhcp.summary.contains("10.0.0.53") && !dhcp.summary.contains("AmazonProvidedDNS"));
    }

    #[test]
    fn endpoint_ingress_by_group_reference_or_covering_cidr() {
        // Ingress from 10.0.0.0/16 covers every instance; from one /24 only one of them.
        let mut inventory = ready_inventory();
        let mut by_cidr = rule("tcp", Some((443, 443)));
        by_cidr.cidrs = vec![cidr("10.0.0.0/16")];
        group_mut(&mut inventory, ENDPOINT_SG).ingress = vec![by_cidr];
        assert!(!findings_of(&inventory)
            .iter()
            .any(|f| f.id == ids::ENDPOINT_INGRESS));

        let mut narrow = rule("tcp", Some((443, 443)));
        narrow.cidrs = vec![cidr("10.0.1.0/24")];
        group_mut(&mut inventory, ENDPOINT_SG).ingress = vec![narrow];
        let findings = findings_of(&inventory);
        let refused: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.id == ids::ENDPOINT_INGRESS)
            .collect();
        assert_eq!(
            refused.len(),
            REQUIRED_INTERFACE.len(),
            "one finding per endpoint"
        );
        assert!(refused
            .iter()
            .all(|f| f.resources.contains(&"i-b".to_string())
                && f.resources.contains(&"i-c".to_string())));
        assert!(refused
            .iter()
            .all(|f| !f.resources.contains(&"i-a".to_string())));
        assert!(refused[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("--group-id sg-endpoints"));
        assert!(refused[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("GroupId=sg-instances"));
    }

    #[test]
    fn endpoint_ingress_on_the_wrong_port_or_group_does_not_count() {
        for (protocol, ports, group) in [
            ("tcp", Some((80, 80)), INSTANCE_SG),
            ("udp", Some((443, 443)), INSTANCE_SG),
            ("tcp", Some((443, 443)), "sg-other"),
        ] {
            let mut inventory = ready_inventory();
            let mut wrong = rule(protocol, ports);
            wrong.group_ids = vec![group.into()];
            group_mut(&mut inventory, ENDPOINT_SG).ingress = vec![wrong];
            let findings = findings_of(&inventory);
            assert!(
                findings.iter().any(|f| f.id == ids::ENDPOINT_INGRESS),
                "{protocol} {ports:?} {group}"
            );
        }
    }

    #[test]
    fn endpoint_ingress_all_traffic_rule_counts() {
        let mut inventory = ready_inventory();
        let mut all = rule("-1", None);
        all.group_ids = vec![INSTANCE_SG.into()];
        group_mut(&mut inventory, ENDPOINT_SG).ingress = vec![all];
        assert!(!findings_of(&inventory)
            .iter()
            .any(|f| f.id == ids::ENDPOINT_INGRESS));
    }

    #[test]
    fn instance_egress_table() {
        let to_endpoint_group = {
            let mut r = rule("tcp", Some((443, 443)));
            r.group_ids = vec![ENDPOINT_SG.into()];
            r
        };
        let to_vpc_cidr = {
            let mut r = rule("tcp", Some((0, 65535)));
            r.cidrs = vec![cidr("10.0.0.0/16")];
            r
        };
        let to_one_subnet = {
            let mut r = rule("tcp", Some((443, 443)));
            r.cidrs = vec![cidr("10.0.1.0/24")];
            r
        };
        let wrong_port = {
            let mut r = rule("tcp", Some((80, 80)));
            r.cidrs = vec![cidr("0.0.0.0/0")];
            r
        };
        let mut to_s3 = rule("tcp", Some((443, 443)));
        to_s3.prefix_list_ids = vec!["pl-s3".into()];
        let cases = [
            (vec![to_endpoint_group.clone(), to_s3.clone()], false, false),
            (vec![to_vpc_cidr.clone(), to_s3.clone()], false, false),
            (vec![to_one_subnet, to_s3.clone()], true, false),
            (vec![to_endpoint_group, wrong_port], false, true),
            (vec![], true, true),
        ];
        for (n, (egress, endpoint_blocked, s3_blocked)) in cases.into_iter().enumerate() {
            let mut inventory = ready_inventory();
            group_mut(&mut inventory, INSTANCE_SG).egress = egress;
            let findings = findings_of(&inventory);
            let got_endpoint = findings
                .iter()
                .filter(|f| f.id == ids::INSTANCE_EGRESS_ENDPOINT)
                .count();
            let got_s3 = findings
                .iter()
                .filter(|f| f.id == ids::INSTANCE_EGRESS_S3)
                .count();
            assert_eq!(
                got_endpoint,
                if endpoint_blocked {
                    REQUIRED_INTERFACE.len()
                } else {
                    0
                },
                "case {n}"
            );
            assert_eq!(got_s3, usize::from(s3_blocked), "case {n}");
        }
    }

    #[test]
    fn egress_falls_back_to_endpoint_subnets_when_enis_are_unknown() {
        let mut inventory = ready_inventory();
        vpc_mut(&mut inventory).endpoint_interfaces = Ok(vec![]);
        let mut to_two_subnets = rule("tcp", Some((443, 443)));
        to_two_subnets.cidrs = vec![cidr("10.0.1.0/24"), cidr("10.0.2.0/24")];
        let mut to_s3 = rule("tcp", Some((443, 443)));
        to_s3.prefix_list_ids = vec!["pl-s3".into()];
        group_mut(&mut inventory, INSTANCE_SG).egress = vec![to_two_subnets, to_s3];
        let findings = findings_of(&inventory);
        assert_eq!(
            findings
                .iter()
                .filter(|f| f.id == ids::INSTANCE_EGRESS_ENDPOINT)
                .count(),
            REQUIRED_INTERFACE.len()
        );
    }

    #[test]
    fn instance_with_its_own_group_is_judged_alone() {
        let mut inventory = ready_inventory();
        ec2_mut(&mut inventory, "i-c").security_group_ids = vec!["sg-lonely".into()];
        vpc_mut(&mut inventory)
            .security_groups
            .as_mut()
            .unwrap()
            .push(SecurityGroup {
                id: "sg-lonely".into(),
                ingress: vec![],
                egress: vec![],
            });
        let findings = findings_of(&inventory);
        let ingress = findings
            .iter()
            .find(|f| f.id == ids::ENDPOINT_INGRESS)
            .unwrap();
        assert!(ingress.resources.contains(&"i-c".to_string()));
        assert!(!ingress.resources.contains(&"i-a".to_string()));
        let s3 = find(&findings, ids::INSTANCE_EGRESS_S3);
        assert!(s3.fix.as_deref().unwrap().contains("--group-id sg-lonely"));
    }

    fn deny(
        rule_number: i32,
        egress: bool,
        cidr_block: &str,
        ports: Option<(i32, i32)>,
    ) -> NetworkAclEntry {
        NetworkAclEntry {
            rule_number,
            egress,
            protocol: Protocol::Tcp,
            allow: false,
            cidr: Some(cidr(cidr_block)),
            ports,
        }
    }

    #[test]
    fn network_acl_dropping_443_or_return_traffic_warns() {
        let cases = [
            (
                deny(10, true, "10.0.0.0/16", Some((443, 443))),
                "outbound TCP 443",
            ),
            (
                deny(10, false, "10.0.0.0/16", Some((1024, 65535))),
                "return traffic",
            ),
            (
                deny(10, false, "10.0.0.0/16", Some((443, 443))),
                "inbound TCP 443",
            ),
        ];
        for (entry, expected) in cases {
            let mut inventory = ready_inventory();
            vpc_mut(&mut inventory).network_acls.as_mut().unwrap()[0]
                .entries
                .insert(0, entry);
            let preflight = run(&inventory, PreflightOptions::default());
            assert!(preflight.is_ready(), "NACL findings are warnings");
            let acl: Vec<&Finding> = preflight
                .findings
                .iter()
                .filter(|f| f.id == ids::NETWORK_ACL)
                .collect();
            assert_eq!(acl.len(), REQUIRED_INTERFACE.len(), "{expected}");
            assert!(
                acl[0].summary.contains(expected),
                "{expected}: {}",
                acl[0].summary
            );
            assert!(acl[0].resources.contains(&"acl-default".to_string()));
        }
    }

    #[test]
    fn network_acl_rule_for_another_range_is_harmless() {
        let mut inventory = ready_inventory();
        vpc_mut(&mut inventory).network_acls.as_mut().unwrap()[0]
            .entries
            .insert(0, deny(10, true, "192.168.0.0/16", None));
        assert!(!findings_of(&inventory)
            .iter()
            .any(|f| f.id == ids::NETWORK_ACL));
    }

    #[test]
    fn egress_fallback_accepts_a_cidr_covering_every_endpoint_subnet() {
        let mut inventory = ready_inventory();
        vpc_mut(&mut inventory).endpoint_interfaces = Ok(vec![]);
        let mut to_vpc = rule("tcp", Some((443, 443)));
        to_vpc.cidrs = vec![cidr("10.0.0.0/16")];
        let mut to_s3 = rule("tcp", Some((443, 443)));
        to_s3.prefix_list_ids = vec!["pl-s3".into()];
        group_mut(&mut inventory, INSTANCE_SG).egress = vec![to_vpc, to_s3];
        let findings = findings_of(&inventory);
        assert!(
            !findings
                .iter()
                .any(|f| f.id == ids::INSTANCE_EGRESS_ENDPOINT),
            "{findings:#?}"
        );
    }

    #[test]
    fn rules_by_customer_prefix_list_are_judged_by_its_entries() {
        let mut inventory = ready_inventory();
        let mut by_list = rule("tcp", Some((443, 443)));
        by_list.prefix_list_ids = vec!["pl-corp".into()];
        group_mut(&mut inventory, ENDPOINT_SG).ingress = vec![by_list];
        vpc_mut(&mut inventory).prefix_lists = Ok(BTreeMap::from([(
            "pl-corp".to_string(),
            vec![cidr("10.0.0.0/16")],
        )]));
        assert!(!findings_of(&inventory)
            .iter()
            .any(|f| f.id == ids::ENDPOINT_INGRESS));
        vpc_mut(&mut inventory).prefix_lists = Ok(BTreeMap::from([(
            "pl-corp".to_string(),
            vec![cidr("192.168.0.0/16")],
        )]));
        assert!(findings_of(&inventory)
            .iter()
            .any(|f| f.id == ids::ENDPOINT_INGRESS));
    }

    #[test]
    fn s3_prefix_list_comes_from_the_gateway_routes() {
        // The region-wide lookup found nothing, but the gateway's routes name the list.
        let mut inventory = ready_inventory();
        inventory.s3_prefix_list_id = Ok(None);
        let findings = findings_of(&inventory);
        assert!(!findings
            .iter()
            .any(|f| f.id == ids::INSTANCE_EGRESS_S3 || f.id == ids::UNREADABLE));
        let mut to_s3 = rule("tcp", Some((443, 443)));
        to_s3.prefix_list_ids = vec!["pl-s3".into()];
        let mut to_endpoints = rule("tcp", Some((443, 443)));
        to_endpoints.group_ids = vec![ENDPOINT_SG.into()];
        group_mut(&mut inventory, INSTANCE_SG).egress = vec![to_s3, to_endpoints];
        assert!(
            findings_of(&inventory).is_empty(),
            "{:#?}",
            findings_of(&inventory)
        );
    }

    #[test]
    fn unknown_s3_prefix_list_fails_closed() {
        let mut inventory = ready_inventory();
        inventory.s3_prefix_list_id = Ok(None);
        for table in vpc_mut(&mut inventory).route_tables.as_mut().unwrap() {
            table.prefix_list_routes.clear();
        }
        let preflight = run(&inventory, PreflightOptions::default());
        assert!(!preflight.is_ready());
        assert!(find(&preflight.findings, ids::UNREADABLE)
            .summary
            .contains("S3 prefix list"));
    }

    #[test]
    fn endpoint_subnet_acl_is_checked_on_its_own() {
        // Endpoint ENIs get their own subnet and ACL; only that ACL drops the return traffic.
        let mut inventory = ready_inventory();
        let vpc = vpc_mut(&mut inventory);
        for eni in vpc.endpoint_interfaces.as_mut().unwrap() {
            eni.subnet_id = "subnet-endpoints".into();
        }
        let acls = vpc.network_acls.as_mut().unwrap();
        acls.push(NetworkAcl {
            id: "acl-endpoints".into(),
            subnet_ids: vec!["subnet-endpoints".into()],
            entries: vec![
                NetworkAclEntry {
                    rule_number: 100,
                    egress: false,
                    protocol: Protocol::All,
                    allow: true,
                    cidr: Some(cidr("0.0.0.0/0")),
                    ports: None,
                },
                NetworkAclEntry {
                    rule_number: 100,
                    egress: true,
                    protocol: Protocol::Tcp,
                    allow: true,
                    cidr: Some(cidr("0.0.0.0/0")),
                    ports: Some((1024, 40000)),
                },
            ],
        });
        let findings = findings_of(&inventory);
        let acl: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.id == ids::NETWORK_ACL)
            .collect();
        assert_eq!(acl.len(), REQUIRED_INTERFACE.len(), "{findings:#?}");
        assert!(acl.iter().all(|f| f.resources[0] == "acl-endpoints"));
        assert!(
            acl[0]
                .summary
                .contains("outbound return traffic (TCP 32768-60999)"),
            "{}",
            acl[0].summary
        );
    }

    #[test]
    fn traffic_within_one_subnet_is_not_filtered_by_its_acl() {
        // Every instance subnet denies everything, but each instance's endpoint ENI in its
        // own subnet is reachable; only cross-subnet pairs are reported.
        let mut inventory = ready_inventory();
        let vpc = vpc_mut(&mut inventory);
        vpc.network_acls.as_mut().unwrap()[0].entries.clear();
        for endpoint in vpc.endpoints.as_mut().unwrap() {
            endpoint
                .network_interface_ids
                .retain(|id| id.ends_with("subnet-a"));
        }
        vpc.endpoint_interfaces
            .as_mut()
            .unwrap()
            .retain(|eni| eni.subnet_id == "subnet-a");
        let findings = findings_of(&inventory);
        let acl = findings.iter().find(|f| f.id == ids::NETWORK_ACL).unwrap();
        assert!(!acl.summary.contains("from subnet-a to"), "{}", acl.summary);
        assert!(acl.summary.contains("from subnet-b to"), "{}", acl.summary);
    }
}
