//! A hand-built inventory of a cluster that is ready for the cutover, for the rule tables
//! to break one fact at a time.

use std::collections::BTreeMap;

use super::endpoints::REQUIRED_INTERFACE;
use super::Finding;
use crate::inventory::*;

pub const REGION: &str = "eu-west-1";
pub const ACCOUNT: &str = "123456789012";
pub const VPC: &str = "vpc-1";
pub const INSTANCE_SG: &str = "sg-instances";
pub const ENDPOINT_SG: &str = "sg-endpoints";

/// Zones, subnets and instance addresses: one instance per AZ.
pub const ZONES: [(&str, &str, &str, &str); 3] = [
    ("eu-west-1a", "subnet-a", "10.0.1.0/24", "i-a"),
    ("eu-west-1b", "subnet-b", "10.0.2.0/24", "i-b"),
    ("eu-west-1c", "subnet-c", "10.0.3.0/24", "i-c"),
];

pub fn cidr(raw: &str) -> Cidr {
    Cidr::parse(raw).unwrap()
}

pub fn rule(protocol: &str, ports: Option<(i32, i32)>) -> SecurityGroupRule {
    SecurityGroupRule {
        protocol: Protocol::parse(protocol),
        ports,
        cidrs: vec![],
        group_ids: vec![],
        prefix_list_ids: vec![],
    }
}

pub fn container_instance(instance_id: &str) -> ContainerInstance {
    ContainerInstance {
        arn: format!("arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/prod/{instance_id}"),
        ec2_instance_id: instance_id.to_string(),
        status: "ACTIVE".into(),
        agent_connected: true,
        agent_version: Some("1.80.0".into()),
        agent_update_status: None,
        running_tasks: 1,
        platform: Platform::Linux,
        marks: Default::default(),
    }
}

fn interface_endpoint(service: &str) -> VpcEndpoint {
    VpcEndpoint {
        id: format!("vpce-{service}"),
        service_name: format!("com.amazonaws.{REGION}.{service}"),
        kind: EndpointKind::Interface,
        state: "available".into(),
        private_dns_enabled: true,
        subnet_ids: ZONES.iter().map(|z| z.1.to_string()).collect(),
        security_group_ids: vec![ENDPOINT_SG.into()],
        route_table_ids: vec![],
        network_interface_ids: ZONES
            .iter()
            .map(|z| format!("eni-{service}-{}", z.1))
            .collect(),
        policy: None,
    }
}

/// Interface endpoints the ready cluster has beyond the required five.
const EXTRA_INTERFACE: [&str; 4] = ["ssm", "ssmmessages", "ec2messages", "logs"];

pub fn ready_inventory() -> Inventory {
    let interface_services: Vec<&str> = REQUIRED_INTERFACE
        .iter()
        .chain(EXTRA_INTERFACE.iter())
        .copied()
        .collect();
    let mut endpoints: Vec<VpcEndpoint> = interface_services
        .iter()
        .map(|s| interface_endpoint(s))
        .collect();
    endpoints.push(VpcEndpoint {
        id: "vpce-s3".into(),
        service_name: format!("com.amazonaws.{REGION}.s3"),
        kind: EndpointKind::Gateway,
        state: "available".into(),
        private_dns_enabled: false,
        subnet_ids: vec![],
        security_group_ids: vec![],
        route_table_ids: vec!["rtb-a".into(), "rtb-main".into()],
        network_interface_ids: vec![],
        policy: None,
    });
    let mut endpoint_interfaces = Vec::new();
    for (n, service) in interface_services.iter().enumerate() {
        for (z, zone) in ZONES.iter().enumerate() {
            endpoint_interfaces.push(NetworkInterface {
                id: format!("eni-{service}-{}", zone.1),
                subnet_id: zone.1.into(),
                private_ip: Some(format!("10.0.{}.{}", z + 1, 100 + n).parse().unwrap()),
            });
        }
    }
    let mut instance_egress = rule("-1", None);
    instance_egress.cidrs = vec![cidr("0.0.0.0/0")];
    let mut endpoint_ingress = rule("tcp", Some((443, 443)));
    endpoint_ingress.group_ids = vec![INSTANCE_SG.into()];
    let allow_all = |egress| NetworkAclEntry {
        rule_number: 100,
        egress,
        protocol: Protocol::All,
        allow: true,
        cidr: Some(cidr("0.0.0.0/0")),
        ports: None,
    };
    let ec2_instances: BTreeMap<String, Ec2Instance> = ZONES
        .iter()
        .enumerate()
        .map(|(z, (zone, subnet, _, id))| {
            let instance = Ec2Instance {
                id: id.to_string(),
                vpc_id: VPC.into(),
                subnet_id: subnet.to_string(),
                availability_zone: zone.to_string(),
                private_ip: Some(format!("10.0.{}.10", z + 1).parse().unwrap()),
                security_group_ids: vec![INSTANCE_SG.into()],
                auto_scaling_group: Some("asg-prod".into()),
            };
            (id.to_string(), instance)
        })
        .collect();
    let ssm_instances = ZONES
        .iter()
        .map(|z| {
            let record = SsmInstance {
                instance_id: z.3.into(),
                ping_status: "Online".into(),
                platform_type: Some("Linux".into()),
            };
            (z.3.to_string(), record)
        })
        .collect();
    Inventory {
        cluster: Cluster {
            name: "prod".into(),
            arn: format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/prod"),
            region: REGION.into(),
            account: Some(ACCOUNT.into()),
        },
        container_instances: ZONES.iter().map(|z| container_instance(z.3)).collect(),
        container_instance_failures: vec![],
        ec2_instances: Ok(ec2_instances),
        ssm_instances: Ok(ssm_instances),
        vpcs: vec![Vpc {
            id: VPC.into(),
            dns: Ok(VpcDns {
                support: true,
                hostnames: true,
            }),
            dhcp_dns_servers: Ok(vec!["AmazonProvidedDNS".into()]),
            subnets: Ok(ZONES
                .iter()
                .map(|z| Subnet {
                    id: z.1.into(),
                    availability_zone: z.0.into(),
                    cidr: Some(cidr(z.2)),
                })
                .collect()),
            route_tables: Ok(vec![
                RouteTable {
                    id: "rtb-main".into(),
                    main: true,
                    subnet_ids: vec![],
                    prefix_list_routes: vec![("vpce-s3".into(), "pl-s3".into())],
                },
                RouteTable {
                    id: "rtb-a".into(),
                    main: false,
                    subnet_ids: vec!["subnet-a".into()],
                    prefix_list_routes: vec![("vpce-s3".into(), "pl-s3".into())],
                },
            ]),
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
                subnet_ids: ZONES.iter().map(|z| z.1.to_string()).collect(),
                entries: vec![allow_all(true), allow_all(false)],
            }]),
            prefix_lists: Ok(BTreeMap::new()),
        }],
        s3_prefix_list_id: Ok(Some("pl-s3".into())),
        s3_prefix_list_cidrs: Ok(vec![cidr("52.218.0.0/17")]),
        task_definitions: Ok(vec![TaskDefinition {
            arn: format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:3"),
            vpc_ids: vec![VPC.into()],
            containers: vec![ContainerDefinition {
                name: "web".into(),
                image: format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/web:1.2"),
                log_driver: Some("awslogs".into()),
                log_region: Some(REGION.into()),
                secrets: vec![],
                s3_environment_files: vec![],
            }],
        }]),
    }
}

pub fn vpc_mut(inventory: &mut Inventory) -> &mut Vpc {
    &mut inventory.vpcs[0]
}

pub fn endpoint_mut<'a>(inventory: &'a mut Inventory, service: &str) -> &'a mut VpcEndpoint {
    let name = format!("com.amazonaws.{REGION}.{service}");
    vpc_mut(inventory)
        .endpoints
        .as_mut()
        .unwrap()
        .iter_mut()
        .find(|e| e.service_name == name)
        .unwrap()
}

pub fn remove_endpoint(inventory: &mut Inventory, service: &str) {
    let name = format!("com.amazonaws.{REGION}.{service}");
    vpc_mut(inventory)
        .endpoints
        .as_mut()
        .unwrap()
        .retain(|e| e.service_name != name);
}

pub fn group_mut<'a>(inventory: &'a mut Inventory, id: &str) -> &'a mut SecurityGroup {
    vpc_mut(inventory)
        .security_groups
        .as_mut()
        .unwrap()
        .iter_mut()
        .find(|g| g.id == id)
        .unwrap()
}

pub fn ec2_mut<'a>(inventory: &'a mut Inventory, id: &str) -> &'a mut Ec2Instance {
    inventory
        .ec2_instances
        .as_mut()
        .unwrap()
        .get_mut(id)
        .unwrap()
}

/// The only finding with `id`; fails the test if there is none or several.
pub fn find<'a>(findings: &'a [Finding], id: &str) -> &'a Finding {
    let matching: Vec<&Finding> = findings.iter().filter(|f| f.id == id).collect();
    assert_eq!(
        matching.len(),
        1,
        "expected one {id} finding in {findings:#?}"
    );
    matching[0]
}
