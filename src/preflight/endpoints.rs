//! Rules about the VPC endpoints themselves: the five interface endpoints the agent and
//! image pulls need, the S3 gateway endpoint for image layers, AZ coverage, and the SSM
//! endpoints this tool (and the operators) need once the NAT gateway is gone.

use std::collections::BTreeSet;

use super::{
    ids, short_service_name, some_of, EndpointState, EndpointStatus, Finding, HostedInstances,
    PreflightOptions,
};
use crate::inventory::{EndpointKind, Inventory, RouteTable, Vpc, VpcEndpoint};

/// The interface endpoints a container instance needs, in the order AWS advises creating
/// them (ecs-agent and ecs-telemetry before ecs, so discovery never answers a name that
/// does not resolve privately yet).
pub(crate) const REQUIRED_INTERFACE: [&str; 5] =
    ["ecs-agent", "ecs-telemetry", "ecs", "ecr.api", "ecr.dkr"];

const SSM_INTERFACE: [&str; 3] = ["ssm", "ssmmessages", "ec2messages"];

/// The endpoints of `vpc` for `service` (short name) of the given kind, best first:
/// available with private DNS before anything else.
pub(crate) fn endpoints_for<'a>(
    endpoints: &'a [VpcEndpoint],
    region: &str,
    service: &str,
    kind: EndpointKind,
) -> Vec<&'a VpcEndpoint> {
    let mut found: Vec<&VpcEndpoint> = endpoints
        .iter()
        .filter(|e| e.kind == kind && short_service_name(&e.service_name, region) == Some(service))
        .filter(|e| !e.is_gone())
        .collect();
    found.sort_by_key(|e| (!e.is_available(), !e.private_dns_enabled, e.id.clone()));
    found
}

/// The route table that serves `subnet_id`: its explicit association, else the main one.
pub(crate) fn route_table_of<'a>(
    tables: &'a [RouteTable],
    subnet_id: &str,
) -> Option<&'a RouteTable> {
    tables
        .iter()
        .find(|t| t.subnet_ids.iter().any(|s| s == subnet_id))
        .or_else(|| tables.iter().find(|t| t.main))
}

pub(super) fn statuses(
    inventory: &Inventory,
    vpc: &Vpc,
    hosted: &HostedInstances,
) -> Vec<EndpointStatus> {
    let region = &inventory.cluster.region;
    let mut statuses: Vec<EndpointStatus> = REQUIRED_INTERFACE
        .iter()
        .map(|&service| {
            let Ok(endpoints) = &vpc.endpoints else {
                return EndpointStatus {
                    service,
                    kind: EndpointKind::Interface,
                    state: EndpointState::Unknown,
                    endpoint_id: None,
                };
            };
            let best = endpoints_for(endpoints, region, service, EndpointKind::Interface)
                .into_iter()
                .next();
            let state = match best {
                None => EndpointState::Missing,
                Some(e) if !e.is_available() => EndpointState::Unavailable,
                Some(e) if !e.private_dns_enabled => EndpointState::NoPrivateDns,
                Some(_) => EndpointState::Ok,
            };
            EndpointStatus {
                service,
                kind: EndpointKind::Interface,
                state,
                endpoint_id: best.map(|e| e.id.clone()),
            }
        })
        .collect();
    let s3_state = |state| EndpointStatus {
        service: "s3",
        kind: EndpointKind::Gateway,
        state,
        endpoint_id: None,
    };
    let s3 = match (&vpc.endpoints, &vpc.route_tables) {
        (Ok(endpoints), Ok(tables)) => {
            let gateways = endpoints_for(endpoints, region, "s3", EndpointKind::Gateway);
            let available: Vec<&VpcEndpoint> = gateways
                .iter()
                .copied()
                .filter(|e| e.is_available())
                .collect();
            match (available.first(), gateways.first()) {
                (None, None) => s3_state(EndpointState::Missing),
                (None, Some(first)) => EndpointStatus {
                    endpoint_id: Some(first.id.clone()),
                    ..s3_state(EndpointState::Unavailable)
                },
                (Some(target), _) => {
                    let state = if S3Coverage::of(&available, tables, hosted).is_complete() {
                        EndpointState::Ok
                    } else {
                        EndpointState::NotAssociated
                    };
                    EndpointStatus {
                        endpoint_id: Some(target.id.clone()),
                        ..s3_state(state)
                    }
                }
            }
        }
        _ => s3_state(EndpointState::Unknown),
    };
    statuses.push(s3);
    statuses
}

pub(super) fn check(
    inventory: &Inventory,
    vpc: &Vpc,
    hosted: &HostedInstances,
    options: PreflightOptions,
    findings: &mut Vec<Finding>,
) {
    let Ok(endpoints) = &vpc.endpoints else {
        return;
    };
    let region = &inventory.cluster.region;
    for service in REQUIRED_INTERFACE {
        match endpoints_for(endpoints, region, service, EndpointKind::Interface).first() {
            None => findings.push(missing_interface(
                inventory, vpc, hosted, endpoints, service, options,
            )),
            Some(endpoint) => {
                interface_state(region, vpc, service, endpoint, findings);
                az_coverage(region, vpc, hosted, service, endpoint, findings);
            }
        }
    }
    s3_gateway(inventory, vpc, hosted, endpoints, findings);
    ssm_endpoints(inventory, vpc, hosted, endpoints, findings);
}

/// One instance subnet per AZ: where a new interface endpoint should go.
fn subnet_per_az(hosted: &HostedInstances) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut chosen = Vec::new();
    let mut instances = hosted.instances.clone();
    instances.sort_by(|a, b| {
        (&a.availability_zone, &a.subnet_id).cmp(&(&b.availability_zone, &b.subnet_id))
    });
    for instance in instances {
        if seen.insert(instance.availability_zone.clone()) {
            chosen.push(instance.subnet_id.clone());
        }
    }
    chosen
}

fn create_interface_command(
    region: &str,
    vpc: &Vpc,
    hosted: &HostedInstances,
    endpoints: &[VpcEndpoint],
    service: &str,
) -> String {
    // Reuse the security groups of an existing interface endpoint where there is one:
    // they are the ones already set up to admit the instances.
    let groups = endpoints
        .iter()
        .find(|e| e.kind == EndpointKind::Interface && !e.security_group_ids.is_empty())
        .map(|e| e.security_group_ids.join(" "))
        .unwrap_or_else(|| "<security group that admits TCP 443 from the instances>".to_string());
    format!(
        "aws ec2 create-vpc-endpoint --region {region} --vpc-id {vpc} --vpc-endpoint-type Interface \
         --service-name {prefix}{region}.{service} --subnet-ids {subnets} --security-group-ids {groups} \
         --private-dns-enabled",
        vpc = vpc.id,
        prefix = service_prefix(region),
        subnets = subnet_per_az(hosted).join(" "),
    )
}

/// The endpoint service-name prefix of the region's partition.
pub(crate) fn service_prefix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "cn.com.amazonaws."
    } else {
        "com.amazonaws."
    }
}

fn missing_interface(
    inventory: &Inventory,
    vpc: &Vpc,
    hosted: &HostedInstances,
    endpoints: &[VpcEndpoint],
    service: &str,
    options: PreflightOptions,
) -> Finding {
    let region = &inventory.cluster.region;
    let fix = create_interface_command(region, vpc, hosted, endpoints, service);
    if options.shared_endpoints {
        Finding::new(
            ids::SHARED_ENDPOINT_UNPROVEN,
            format!(
                "no {service} interface endpoint in {vpc}; with --shared-endpoints, `privlink-restart verify` must \
                 show {service} names resolving to private addresses from the instances",
                vpc = vpc.id
            ),
        )
        .in_vpc(&vpc.id)
        .resources([vpc.id.clone()])
        .fix(format!("run `privlink-restart verify` after the cutover, or create a local endpoint: {fix}"))
    } else {
        Finding::new(
            ids::INTERFACE_ENDPOINT_MISSING,
            format!(
                "no {service} interface endpoint in {vpc}: {why}",
                vpc = vpc.id,
                why = why_needed(service)
            ),
        )
        .in_vpc(&vpc.id)
        .resources([vpc.id.clone()])
        .fix(fix)
    }
}

fn why_needed(service: &str) -> &'static str {
    match service {
        "ecs-agent" => "the agents' ACS websocket (ecs-a) stays on the public path",
        "ecs-telemetry" => "the agents' telemetry websocket (ecs-t) stays on the public path",
        "ecs" => {
            "agents discover their ACS/TCS hosts over the public path and get numbered public hosts"
        }
        "ecr.api" => "ECR authorization and image manifests need the public path",
        "ecr.dkr" => "image pulls from ECR need the public path",
        _ => "traffic to it needs the public path",
    }
}

/// An endpoint that exists but is not `available`: where to look.
fn unavailable(
    id: &'static str,
    what: &str,
    region: &str,
    vpc: &Vpc,
    endpoint: &VpcEndpoint,
) -> Finding {
    Finding::new(
        id,
        format!(
            "{what} {} in {} is {}, not available",
            endpoint.id, vpc.id, endpoint.state
        ),
    )
    .in_vpc(&vpc.id)
    .resources([endpoint.id.clone()])
    .fix(format!(
        "wait for it or see why: {}",
        describe_command(region, endpoint)
    ))
}

fn describe_command(region: &str, endpoint: &VpcEndpoint) -> String {
    format!(
        "aws ec2 describe-vpc-endpoints --region {region} --vpc-endpoint-ids {}",
        endpoint.id
    )
}

fn enable_private_dns_command(region: &str, endpoint: &VpcEndpoint) -> String {
    format!(
        "aws ec2 modify-vpc-endpoint --region {region} --vpc-endpoint-id {} --private-dns-enabled",
        endpoint.id
    )
}

fn interface_state(
    region: &str,
    vpc: &Vpc,
    service: &str,
    endpoint: &VpcEndpoint,
    findings: &mut Vec<Finding>,
) {
    if !endpoint.is_available() {
        let what = format!("{service} endpoint");
        findings.push(unavailable(
            ids::INTERFACE_ENDPOINT_UNAVAILABLE,
            &what,
            region,
            vpc,
            endpoint,
        ));
    }
    if !endpoint.private_dns_enabled {
        findings.push(
            Finding::new(
                ids::PRIVATE_DNS_DISABLED,
                format!(
                    "{service} endpoint {} in {} has private DNS off: the {service} names still resolve to public addresses",
                    endpoint.id, vpc.id
                ),
            )
            .in_vpc(&vpc.id)
            .resources([endpoint.id.clone()])
            .fix(enable_private_dns_command(region, endpoint)),
        );
    }
}

fn az_coverage(
    region: &str,
    vpc: &Vpc,
    hosted: &HostedInstances,
    service: &str,
    endpoint: &VpcEndpoint,
    findings: &mut Vec<Finding>,
) {
    let Ok(subnets) = &vpc.subnets else { return };
    let covered: BTreeSet<&str> = subnets
        .iter()
        .filter(|s| endpoint.subnet_ids.contains(&s.id))
        .map(|s| s.availability_zone.as_str())
        .collect();
    let missing: Vec<String> = hosted
        .availability_zones()
        .into_iter()
        .filter(|az| !covered.contains(az.as_str()))
        .collect();
    if missing.is_empty() {
        return;
    }
    let add_subnets: Vec<String> = subnet_per_az(hosted)
        .into_iter()
        .filter(|s| {
            subnets
                .iter()
                .any(|sub| &sub.id == s && missing.contains(&sub.availability_zone))
        })
        .collect();
    findings.push(
        Finding::new(
            ids::ENDPOINT_AZ_MISSING,
            format!(
                "{service} endpoint {} has no subnet in {} where container instances run: their traffic crosses AZs \
                 and fails with the endpoint's AZ",
                endpoint.id,
                missing.join(", ")
            ),
        )
        .in_vpc(&vpc.id)
        .resources(std::iter::once(endpoint.id.clone()).chain(missing.iter().cloned()))
        .fix(format!(
            "aws ec2 modify-vpc-endpoint --region {region} --vpc-endpoint-id {} --add-subnet-ids {}",
            endpoint.id,
            add_subnets.join(" ")
        )),
    );
}

fn s3_gateway(
    inventory: &Inventory,
    vpc: &Vpc,
    hosted: &HostedInstances,
    endpoints: &[VpcEndpoint],
    findings: &mut Vec<Finding>,
) {
    let region = &inventory.cluster.region;
    let Ok(tables) = &vpc.route_tables else {
        return;
    };
    let gateways = endpoints_for(endpoints, region, "s3", EndpointKind::Gateway);
    let available: Vec<&VpcEndpoint> = gateways
        .iter()
        .copied()
        .filter(|e| e.is_available())
        .collect();
    let Some(first) = gateways.first() else {
        let needed: BTreeSet<String> = hosted
            .subnet_ids()
            .iter()
            .filter_map(|subnet| route_table_of(tables, subnet))
            .map(|t| t.id.clone())
            .collect();
        findings.push(
            Finding::new(
                ids::S3_GATEWAY_MISSING,
                format!(
                    "no S3 gateway endpoint in {}: ECR image layers come from S3 \
                     (prod-{region}-starport-layer-bucket) and would still need the NAT gateway",
                    vpc.id
                ),
            )
            .in_vpc(&vpc.id)
            .resources([vpc.id.clone()])
            .fix(format!(
                "aws ec2 create-vpc-endpoint --region {region} --vpc-id {} --vpc-endpoint-type Gateway \
                 --service-name {}{region}.s3 --route-table-ids {}",
                vpc.id,
                service_prefix(region),
                needed.into_iter().collect::<Vec<_>>().join(" ")
            )),
        );
        return;
    };
    let Some(target) = available.first() else {
        findings.push(unavailable(
            ids::S3_GATEWAY_UNAVAILABLE,
            "S3 gateway endpoint",
            region,
            vpc,
            first,
        ));
        return;
    };
    let coverage = S3Coverage::of(&available, tables, hosted);
    if coverage.is_complete() {
        return;
    }
    let mut summary = format!("S3 gateway endpoint {}", target.id);
    if !coverage.unassociated.is_empty() {
        summary += &format!(
            " is not associated with route table {} of instance subnets {}",
            coverage.unassociated.join(", "),
            some_of(&coverage.subnets_of_unassociated)
        );
    }
    if !coverage.without_table.is_empty() {
        if !coverage.unassociated.is_empty() {
            summary += ";";
        }
        summary += &format!(
            " cannot be confirmed for instance subnets {}: no route table serves them",
            some_of(&coverage.without_table)
        );
    }
    let fix = if coverage.unassociated.is_empty() {
        format!(
            "aws ec2 describe-route-tables --region {region} --filters Name=vpc-id,Values={}",
            vpc.id
        )
    } else {
        format!(
            "aws ec2 modify-vpc-endpoint --region {region} --vpc-endpoint-id {} --add-route-table-ids {}",
            target.id,
            coverage.unassociated.join(" ")
        )
    };
    findings.push(
        Finding::new(ids::S3_GATEWAY_ROUTE_TABLE, summary)
            .in_vpc(&vpc.id)
            .resources(
                std::iter::once(target.id.clone())
                    .chain(coverage.unassociated.iter().cloned())
                    .chain(coverage.without_table.iter().cloned()),
            )
            .fix(fix),
    );
}

/// How the available S3 gateway endpoints of a VPC cover the instance subnets.
struct S3Coverage {
    /// Route tables of instance subnets that no available gateway is associated with.
    unassociated: Vec<String>,
    /// The instance subnets those tables serve.
    subnets_of_unassociated: Vec<String>,
    /// Instance subnets whose route table is not in the answer (no main table either).
    without_table: Vec<String>,
}

impl S3Coverage {
    fn of(
        gateways: &[&VpcEndpoint],
        tables: &[RouteTable],
        hosted: &HostedInstances,
    ) -> S3Coverage {
        let associated: BTreeSet<&String> =
            gateways.iter().flat_map(|g| &g.route_table_ids).collect();
        let mut unassociated = BTreeSet::new();
        let mut subnets_of_unassociated = Vec::new();
        let mut without_table = Vec::new();
        for subnet in hosted.subnet_ids() {
            match route_table_of(tables, &subnet) {
                None => without_table.push(subnet),
                Some(table) if !associated.contains(&table.id) => {
                    unassociated.insert(table.id.clone());
                    subnets_of_unassociated.push(subnet);
                }
                Some(_) => {}
            }
        }
        S3Coverage {
            unassociated: unassociated.into_iter().collect(),
            subnets_of_unassociated,
            without_table,
        }
    }

    fn is_complete(&self) -> bool {
        self.unassociated.is_empty() && self.without_table.is_empty()
    }
}

/// Why an interface endpoint cannot serve the instances yet — "ssm (missing)", "logs
/// (vpce-1 has private DNS off)" — with the command that fixes it; `None` when it can.
pub(crate) fn interface_gap(
    region: &str,
    vpc: &Vpc,
    hosted: &HostedInstances,
    endpoints: &[VpcEndpoint],
    service: &str,
) -> Option<(String, String)> {
    match endpoints_for(endpoints, region, service, EndpointKind::Interface).first() {
        None => Some((
            format!("{service} (missing)"),
            create_interface_command(region, vpc, hosted, endpoints, service),
        )),
        Some(endpoint) if !endpoint.is_available() => Some((
            format!("{service} ({} is {})", endpoint.id, endpoint.state),
            describe_command(region, endpoint),
        )),
        Some(endpoint) if !endpoint.private_dns_enabled => Some((
            format!("{service} ({} has private DNS off)", endpoint.id),
            enable_private_dns_command(region, endpoint),
        )),
        Some(_) => None,
    }
}

fn ssm_endpoints(
    inventory: &Inventory,
    vpc: &Vpc,
    hosted: &HostedInstances,
    endpoints: &[VpcEndpoint],
    findings: &mut Vec<Finding>,
) {
    let region = &inventory.cluster.region;
    let gaps: Vec<(String, String)> = SSM_INTERFACE
        .into_iter()
        .filter_map(|service| interface_gap(region, vpc, hosted, endpoints, service))
        .collect();
    if gaps.is_empty() {
        return;
    }
    let (what, fixes): (Vec<String>, Vec<String>) = gaps.into_iter().unzip();
    findings.push(
        Finding::new(
            ids::SSM_ENDPOINTS_MISSING,
            format!(
                "SSM endpoints in {} not usable: {}; SSM Run Command will stop working on these \
                 instances when the NAT gateway goes",
                vpc.id,
                what.join(", ")
            ),
        )
        .in_vpc(&vpc.id)
        .resources([vpc.id.clone()])
        .fix(fixes.join("\n")),
    );
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{run, PreflightOptions, Severity};
    use super::*;

    fn findings_of(inventory: &Inventory, options: PreflightOptions) -> Vec<Finding> {
        run(inventory, options).findings
    }

    #[test]
    fn each_missing_interface_endpoint_is_an_error_naming_the_vpc() {
        for service in REQUIRED_INTERFACE {
            let mut inventory = ready_inventory();
            remove_endpoint(&mut inventory, service);
            let findings = findings_of(&inventory, PreflightOptions::default());
            let missing: Vec<&Finding> = findings
                .iter()
                .filter(|f| f.id == ids::INTERFACE_ENDPOINT_MISSING)
                .collect();
            assert_eq!(missing.len(), 1, "{service}: {findings:#?}");
            assert_eq!(missing[0].severity, Severity::Error);
            assert!(
                missing[0]
                    .summary
                    .contains(&format!("no {service} interface endpoint")),
                "{}",
                missing[0].summary
            );
            assert_eq!(missing[0].resources, vec![VPC.to_string()]);
            let fix = missing[0].fix.as_deref().unwrap();
            assert!(
                fix.contains(&format!("--service-name com.amazonaws.{REGION}.{service} ")),
                "{fix}"
            );
            assert!(
                fix.contains("--subnet-ids subnet-a subnet-b subnet-c"),
                "{fix}"
            );
        }
    }

    #[test]
    fn shared_endpoints_turn_missing_into_a_warning() {
        let mut inventory = ready_inventory();
        remove_endpoint(&mut inventory, "ecs-agent");
        let preflight = run(
            &inventory,
            PreflightOptions {
                shared_endpoints: true,
            },
        );
        assert!(preflight.is_ready(), "{:#?}", preflight.findings);
        let shared: Vec<&Finding> = preflight
            .findings
            .iter()
            .filter(|f| f.id == ids::SHARED_ENDPOINT_UNPROVEN)
            .collect();
        assert_eq!(shared.len(), 1);
        assert_eq!(shared[0].severity, Severity::Warning);
    }

    #[test]
    fn unavailable_and_private_dns_off_are_errors() {
        let mut inventory = ready_inventory();
        endpoint_mut(&mut inventory, "ecr.dkr").state = "pending".into();
        endpoint_mut(&mut inventory, "ecs").private_dns_enabled = false;
        let findings = findings_of(&inventory, PreflightOptions::default());
        let unavailable = find(&findings, ids::INTERFACE_ENDPOINT_UNAVAILABLE);
        assert_eq!(unavailable.resources, vec!["vpce-ecr.dkr".to_string()]);
        assert!(unavailable.summary.contains("pending"));
        let dns = find(&findings, ids::PRIVATE_DNS_DISABLED);
        assert_eq!(dns.resources, vec!["vpce-ecs".to_string()]);
        assert!(dns
            .fix
            .as_deref()
            .unwrap()
            .contains("--private-dns-enabled"));
    }

    #[test]
    fn state_is_compared_case_insensitively() {
        let mut inventory = ready_inventory();
        endpoint_mut(&mut inventory, "ecs").state = "Available".into();
        let findings = findings_of(&inventory, PreflightOptions::default());
        assert!(
            !findings
                .iter()
                .any(|f| f.id == ids::INTERFACE_ENDPOINT_UNAVAILABLE),
            "{findings:#?}"
        );
    }

    #[test]
    fn missing_az_coverage_is_a_warning_naming_the_az() {
        let mut inventory = ready_inventory();
        endpoint_mut(&mut inventory, "ecs-telemetry")
            .subnet_ids
            .retain(|s| s != "subnet-c");
        let preflight = run(&inventory, PreflightOptions::default());
        assert!(preflight.is_ready());
        let az = find(&preflight.findings, ids::ENDPOINT_AZ_MISSING);
        assert!(az.summary.contains("eu-west-1c"), "{}", az.summary);
        assert!(
            az.fix
                .as_deref()
                .unwrap()
                .contains("--add-subnet-ids subnet-c"),
            "{:?}",
            az.fix
        );
    }

    #[test]
    fn s3_gateway_missing_is_an_error() {
        let mut inventory = ready_inventory();
        remove_endpoint(&mut inventory, "s3");
        let findings = findings_of(&inventory, PreflightOptions::default());
        let missing = find(&findings, ids::S3_GATEWAY_MISSING);
        assert!(
            missing
                .fix
                .as_deref()
                .unwrap()
                .contains("--route-table-ids rtb-a rtb-main"),
            "{:?}",
            missing.fix
        );
    }

    #[test]
    fn s3_gateway_must_serve_the_main_route_table_of_unassociated_subnets() {
        // subnet-b and subnet-c have no explicit association: the main table serves them.
        let mut inventory = ready_inventory();
        endpoint_mut(&mut inventory, "s3").route_table_ids = vec!["rtb-a".into()];
        let findings = findings_of(&inventory, PreflightOptions::default());
        let unassociated = find(&findings, ids::S3_GATEWAY_ROUTE_TABLE);
        assert_eq!(
            unassociated.resources,
            vec!["vpce-s3".to_string(), "rtb-main".to_string()]
        );
        assert!(
            unassociated.summary.contains("subnet-b, subnet-c"),
            "{}",
            unassociated.summary
        );
    }

    #[test]
    fn s3_gateway_on_an_unrelated_table_does_not_count() {
        let mut inventory = ready_inventory();
        endpoint_mut(&mut inventory, "s3").route_table_ids = vec!["rtb-other".into()];
        let findings = findings_of(&inventory, PreflightOptions::default());
        let unassociated = find(&findings, ids::S3_GATEWAY_ROUTE_TABLE);
        assert_eq!(
            unassociated.resources,
            vec!["vpce-s3".to_string(), "rtb-a".into(), "rtb-main".into()]
        );
    }

    #[test]
    fn missing_ssm_endpoints_warn_once_per_vpc() {
        let mut inventory = ready_inventory();
        remove_endpoint(&mut inventory, "ssmmessages");
        remove_endpoint(&mut inventory, "ec2messages");
        let preflight = run(&inventory, PreflightOptions::default());
        assert!(preflight.is_ready());
        let ssm = find(&preflight.findings, ids::SSM_ENDPOINTS_MISSING);
        assert!(
            ssm.summary
                .contains("ssmmessages (missing), ec2messages (missing)"),
            "{}",
            ssm.summary
        );
        assert_eq!(ssm.fix.as_deref().unwrap().lines().count(), 2);
    }

    #[test]
    fn ssm_endpoint_without_private_dns_or_not_available_counts_as_a_gap() {
        let mut inventory = ready_inventory();
        endpoint_mut(&mut inventory, "ssm").private_dns_enabled = false;
        endpoint_mut(&mut inventory, "ec2messages").state = "pending".into();
        let findings = findings_of(&inventory, PreflightOptions::default());
        let ssm = find(&findings, ids::SSM_ENDPOINTS_MISSING);
        assert!(
            ssm.summary.contains("ssm (vpce-ssm has private DNS off)"),
            "{}",
            ssm.summary
        );
        assert!(
            ssm.summary
                .contains("ec2messages (vpce-ec2messages is pending)"),
            "{}",
            ssm.summary
        );
        assert!(!ssm.summary.contains("ssmmessages"), "{}", ssm.summary);
    }

    #[test]
    fn deleted_endpoints_count_as_missing() {
        let mut inventory = ready_inventory();
        endpoint_mut(&mut inventory, "ecs-agent").state = "deleted".into();
        let findings = findings_of(&inventory, PreflightOptions::default());
        find(&findings, ids::INTERFACE_ENDPOINT_MISSING);
        assert!(!findings
            .iter()
            .any(|f| f.id == ids::INTERFACE_ENDPOINT_UNAVAILABLE));
    }

    #[test]
    fn s3_gateway_that_is_not_available_blocks() {
        let mut inventory = ready_inventory();
        endpoint_mut(&mut inventory, "s3").state = "pending".into();
        let preflight = run(&inventory, PreflightOptions::default());
        assert!(!preflight.is_ready());
        let unavailable = find(&preflight.findings, ids::S3_GATEWAY_UNAVAILABLE);
        assert_eq!(unavailable.resources, vec!["vpce-s3".to_string()]);
        let s3 = preflight.vpcs[0]
            .endpoints
            .iter()
            .find(|e| e.service == "s3")
            .unwrap();
        assert_eq!(s3.state, EndpointState::Unavailable);
    }

    #[test]
    fn two_s3_gateways_together_cover_the_route_tables() {
        let mut inventory = ready_inventory();
        endpoint_mut(&mut inventory, "s3").route_table_ids = vec!["rtb-a".into()];
        let mut second = endpoint_mut(&mut inventory, "s3").clone();
        second.id = "vpce-s3-2".into();
        second.route_table_ids = vec!["rtb-main".into()];
        vpc_mut(&mut inventory)
            .endpoints
            .as_mut()
            .unwrap()
            .push(second);
        let findings = findings_of(&inventory, PreflightOptions::default());
        assert!(
            !findings.iter().any(|f| f.id == ids::S3_GATEWAY_ROUTE_TABLE),
            "{findings:#?}"
        );
    }

    #[test]
    fn subnet_without_any_route_table_is_not_confirmed() {
        let mut inventory = ready_inventory();
        vpc_mut(&mut inventory)
            .route_tables
            .as_mut()
            .unwrap()
            .retain(|t| !t.main);
        let findings = findings_of(&inventory, PreflightOptions::default());
        let unconfirmed = find(&findings, ids::S3_GATEWAY_ROUTE_TABLE);
        assert!(
            unconfirmed.summary.contains("no route table serves them"),
            "{}",
            unconfirmed.summary
        );
        assert!(unconfirmed.resources.contains(&"subnet-b".to_string()));
    }

    #[test]
    fn table_shows_each_endpoint_state() {
        let mut inventory = ready_inventory();
        remove_endpoint(&mut inventory, "ecs-agent");
        endpoint_mut(&mut inventory, "ecs").private_dns_enabled = false;
        endpoint_mut(&mut inventory, "ecr.api").state = "failed".into();
        endpoint_mut(&mut inventory, "s3").route_table_ids.clear();
        let preflight = run(&inventory, PreflightOptions::default());
        let state = |service: &str| {
            preflight.vpcs[0]
                .endpoints
                .iter()
                .find(|e| e.service == service)
                .unwrap()
                .state
        };
        assert_eq!(state("ecs-agent"), EndpointState::Missing);
        assert_eq!(state("ecs"), EndpointState::NoPrivateDns);
        assert_eq!(state("ecr.api"), EndpointState::Unavailable);
        assert_eq!(state("ecr.dkr"), EndpointState::Ok);
        assert_eq!(state("s3"), EndpointState::NotAssociated);
    }
}
