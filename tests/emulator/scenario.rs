//! Builds clusters on the emulator with the AWS SDK, the way an operator's infrastructure
//! code would: a VPC across three AZs, route tables, security groups, the endpoints, EC2
//! instances (one of them from an Auto Scaling group), the ECS cluster, container
//! instances, a task definition and a running task. A [`Break`] leaves out or changes one
//! thing, so each broken scenario differs from the ready one in exactly that.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    AddPrefixListEntry, AttributeBooleanValue, Filter, IpPermission, IpRange, NewDhcpConfiguration,
    PortRange, PrefixListId, RequestLaunchTemplateData, RuleAction, UserIdGroupPair,
    VpcEndpointType,
};
use aws_sdk_ecs::types::{ContainerDefinition, LogConfiguration, LogDriver, NetworkMode};
use serde_json::json;

use crate::harness::{Emulator, ACCOUNT, REGION};

pub const CLUSTER: &str = "prod";
const AMI: &str = "ami-1e749f67";
pub const INTERFACE_SERVICES: [&str; 9] = [
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

/// The one thing a scenario gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    Nothing,
    MissingEndpoint(&'static str),
    PrivateDnsOff(&'static str),
    NoS3Gateway,
    S3GatewayOnlyOnExplicitTable,
    DnsSupportOff,
    DnsHostnamesOff,
    CustomDnsServers,
    EndpointIngressClosed,
    EgressOnlyToS3,
    EgressOnlyToEndpoints,
    OldAgent,
    /// Ready, but the endpoints admit the instances through a customer-managed prefix list.
    IngressByPrefixList,
    /// Ready, with one thing behind each warning-level check: a network ACL dropping 443,
    /// an S3 policy that allows layers but not agent updates, ecr.dkr missing one AZ, and a
    /// task pulling from Docker Hub.
    Warnings,
}

/// The ids of what was built.
pub struct Scenario {
    pub vpc: String,
    pub explicit_route_table: String,
    pub main_route_table: String,
    pub endpoint_sg: String,
    /// Short service name → endpoint id.
    pub endpoints: BTreeMap<String, String>,
    /// Short service name → the private addresses of its interface endpoint's ENIs.
    pub endpoint_addresses: BTreeMap<String, Vec<String>>,
    pub instances: Vec<String>,
}

/// Where an agent's websockets go, for the record its probe prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentPath {
    /// ACS and TCS on the ecs-agent and ecs-telemetry endpoints' ENIs.
    Endpoints,
    /// On the numbered public hosts (`ecs-a-1`), as before a restart.
    Public,
}

impl Scenario {
    /// The record the path probe prints on an instance whose agent is on `path`, with
    /// private DNS in effect (the names resolve to the endpoints' ENIs).
    pub fn probe_record(&self, path: AgentPath) -> String {
        // Without its endpoint a name resolves publicly.
        let first = |service: &str| {
            self.endpoint_addresses
                .get(service)
                .and_then(|a| a.first())
                .cloned()
                .unwrap_or_else(|| "52.94.0.1".to_string())
        };
        let (peers, host) = match path {
            AgentPath::Endpoints => (
                format!("{},{}", first("ecs-agent"), first("ecs-telemetry")),
                format!("ecs-t.{REGION}.amazonaws.com"),
            ),
            AgentPath::Public => (
                "54.239.36.10,54.239.36.11".to_string(),
                format!("ecs-t-1.{REGION}.amazonaws.com"),
            ),
        };
        format!(
            "PRIVLINK-PROBE v=1 agent=2345 proxy=none no_proxy=169.254.169.254,169.254.170.2 \
             dns.ecs={} dns.ecs-a={} dns.ecs-t={} dns.ecr-api={} dns.ecr-dkr={} peers={peers} \
             ws_host={host} ws_at=2026-11-27T01:02:03Z",
            first("ecs"),
            first("ecs-agent"),
            first("ecs-telemetry"),
            first("ecr.api"),
            first("ecr.dkr"),
        )
    }

    /// Every instance's probe prints a record of `before`, and of `after` once its agent
    /// was restarted (or the instance rebooted).
    pub fn serve_probes(&self, emulator: &Emulator, before: AgentPath, after: AgentPath) {
        let results: serde_json::Map<String, serde_json::Value> = self
            .instances
            .iter()
            .map(|id| {
                let result = json!({
                    "status": "Success",
                    "output": self.probe_record(before),
                    "outputAfterRestart": self.probe_record(after),
                });
                (id.clone(), result)
            })
            .collect();
        emulator.control("/_privlink/ssm/probe-results", &results.into());
    }
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn https_from_group(group: &str) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(443)
        .to_port(443)
        .user_id_group_pairs(UserIdGroupPair::builder().group_id(group).build())
        .build()
}

pub async fn build(emulator: &Emulator, broken: Break) -> Scenario {
    let ec2 = emulator.ec2();
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc
        .unwrap()
        .vpc_id
        .unwrap();
    let flag = |on: bool| AttributeBooleanValue::builder().value(on).build();
    ec2.modify_vpc_attribute()
        .vpc_id(&vpc)
        .enable_dns_support(flag(broken != Break::DnsSupportOff))
        .send()
        .await
        .unwrap();
    ec2.modify_vpc_attribute()
        .vpc_id(&vpc)
        .enable_dns_hostnames(flag(broken != Break::DnsHostnamesOff))
        .send()
        .await
        .unwrap();

    // Every real VPC has DHCP options; AmazonProvidedDNS is what endpoint private DNS needs.
    let servers = if broken == Break::CustomDnsServers {
        "10.0.0.53"
    } else {
        "AmazonProvidedDNS"
    };
    let options = ec2
        .create_dhcp_options()
        .dhcp_configurations(
            NewDhcpConfiguration::builder()
                .key("domain-name-servers")
                .values(servers)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .dhcp_options
        .unwrap()
        .dhcp_options_id
        .unwrap();
    ec2.associate_dhcp_options()
        .dhcp_options_id(options)
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap();

    let mut subnets = Vec::new();
    for (n, zone) in ["a", "b", "c"].iter().enumerate() {
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!("10.0.{}.0/24", n + 1))
            .availability_zone(format!("{REGION}{zone}"))
            .send()
            .await
            .unwrap();
        subnets.push(subnet.subnet.unwrap().subnet_id.unwrap());
    }
    let explicit_route_table = ec2
        .create_route_table()
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap()
        .route_table
        .unwrap()
        .route_table_id
        .unwrap();
    ec2.associate_route_table()
        .route_table_id(&explicit_route_table)
        .subnet_id(&subnets[0])
        .send()
        .await
        .unwrap();
    let main_route_table = ec2
        .describe_route_tables()
        .filters(filter("vpc-id", &vpc))
        .filters(filter("association.main", "true"))
        .send()
        .await
        .unwrap()
        .route_tables()[0]
        .route_table_id()
        .unwrap()
        .to_string();

    let group = |name: &'static str| {
        let ec2 = ec2.clone();
        let vpc = vpc.clone();
        async move {
            ec2.create_security_group()
                .vpc_id(vpc)
                .group_name(name)
                .description(name)
                .send()
                .await
                .unwrap()
                .group_id
                .unwrap()
        }
    };
    let instance_sg = group("ecs-instances").await;
    let endpoint_sg = group("vpc-endpoints").await;
    let endpoint_ingress = match broken {
        Break::EndpointIngressClosed => IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(443)
            .to_port(443)
            .ip_ranges(IpRange::builder().cidr_ip("192.168.0.0/16").build())
            .build(),
        Break::IngressByPrefixList => {
            let list = ec2
                .create_managed_prefix_list()
                .prefix_list_name("vpc-ranges")
                .address_family("IPv4")
                .max_entries(5)
                .entries(AddPrefixListEntry::builder().cidr("10.0.0.0/16").build())
                .send()
                .await
                .unwrap()
                .prefix_list
                .unwrap()
                .prefix_list_id
                .unwrap();
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(443)
                .to_port(443)
                .prefix_list_ids(PrefixListId::builder().prefix_list_id(list).build())
                .build()
        }
        _ => https_from_group(&instance_sg),
    };
    ec2.authorize_security_group_ingress()
        .group_id(&endpoint_sg)
        .ip_permissions(endpoint_ingress)
        .send()
        .await
        .unwrap();
    if matches!(broken, Break::EgressOnlyToS3 | Break::EgressOnlyToEndpoints) {
        ec2.revoke_security_group_egress()
            .group_id(&instance_sg)
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("-1")
                    .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let egress = if broken == Break::EgressOnlyToS3 {
            let prefix_list = ec2
                .describe_prefix_lists()
                .filters(filter(
                    "prefix-list-name",
                    &format!("com.amazonaws.{REGION}.s3"),
                ))
                .send()
                .await
                .unwrap()
                .prefix_lists()[0]
                .prefix_list_id()
                .unwrap()
                .to_string();
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(443)
                .to_port(443)
                .prefix_list_ids(PrefixListId::builder().prefix_list_id(prefix_list).build())
                .build()
        } else {
            https_from_group(&endpoint_sg)
        };
        ec2.authorize_security_group_egress()
            .group_id(&instance_sg)
            .ip_permissions(egress)
            .send()
            .await
            .unwrap();
    }

    let mut endpoints = BTreeMap::new();
    for service in INTERFACE_SERVICES {
        if broken == Break::MissingEndpoint(service) {
            continue;
        }
        let endpoint = ec2
            .create_vpc_endpoint()
            .vpc_id(&vpc)
            .vpc_endpoint_type(VpcEndpointType::Interface)
            .service_name(format!("com.amazonaws.{REGION}.{service}"))
            .set_subnet_ids(Some(if broken == Break::Warnings && service == "ecr.dkr" {
                subnets[..2].to_vec()
            } else {
                subnets.clone()
            }))
            .security_group_ids(&endpoint_sg)
            .private_dns_enabled(broken != Break::PrivateDnsOff(service))
            .send()
            .await
            .unwrap();
        endpoints.insert(
            service.to_string(),
            endpoint.vpc_endpoint.unwrap().vpc_endpoint_id.unwrap(),
        );
    }
    if broken != Break::NoS3Gateway {
        let mut tables = vec![explicit_route_table.clone()];
        if broken != Break::S3GatewayOnlyOnExplicitTable {
            tables.push(main_route_table.clone());
        }
        let endpoint = ec2
            .create_vpc_endpoint()
            .vpc_id(&vpc)
            .vpc_endpoint_type(VpcEndpointType::Gateway)
            .service_name(format!("com.amazonaws.{REGION}.s3"))
            .set_route_table_ids(Some(tables))
            .set_policy_document((broken == Break::Warnings).then(|| {
                json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                    "Resource": format!("arn:aws:s3:::prod-{REGION}-starport-layer-bucket/*")}]})
                .to_string()
            }))
            .send()
            .await
            .unwrap();
        endpoints.insert(
            "s3".into(),
            endpoint.vpc_endpoint.unwrap().vpc_endpoint_id.unwrap(),
        );
    }

    let mut instances = Vec::new();
    for subnet in &subnets {
        let run = ec2
            .run_instances()
            .image_id(AMI)
            .min_count(1)
            .max_count(1)
            .subnet_id(subnet)
            .security_group_ids(&instance_sg)
            .send()
            .await
            .unwrap();
        instances.push(run.instances()[0].instance_id().unwrap().to_string());
    }
    instances.push(auto_scaled_instance(emulator, &subnets[1], &instance_sg).await);

    register_cluster(emulator, &instances).await;
    let mut agents = serde_json::Map::new();
    for (n, instance) in instances.iter().enumerate() {
        let version = if broken == Break::OldAgent && n == 0 {
            "1.20.0"
        } else {
            "1.80.0"
        };
        agents.insert(instance.clone(), json!({"agentVersion": version}));
    }
    emulator.control("/_privlink/ecs/agent-state", &agents.into());
    let managed: Vec<_> = instances
        .iter()
        .map(|i| json!({"InstanceId": i, "PingStatus": "Online", "PlatformType": "Linux", "PlatformName": "Amazon Linux"}))
        .collect();
    emulator.control(
        "/_privlink/ssm/managed-instances",
        &json!({"instances": managed}),
    );
    run_task(
        emulator,
        "web",
        &format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/web:1"),
    )
    .await;
    if broken == Break::Warnings {
        run_task(emulator, "proxy", "nginx:1.27").await;
        drop_outbound_https(emulator, &vpc, &subnets[2]).await;
    }

    let endpoint_addresses = endpoint_addresses(emulator, &endpoints).await;
    Scenario {
        vpc,
        explicit_route_table,
        main_route_table,
        endpoint_sg,
        endpoints,
        endpoint_addresses,
        instances,
    }
}

/// The private addresses of each interface endpoint's ENIs (moto makes them up).
async fn endpoint_addresses(
    emulator: &Emulator,
    endpoints: &BTreeMap<String, String>,
) -> BTreeMap<String, Vec<String>> {
    let ec2 = emulator.ec2();
    let mut addresses = BTreeMap::new();
    for (service, id) in endpoints {
        let described = ec2
            .describe_vpc_endpoints()
            .vpc_endpoint_ids(id)
            .send()
            .await
            .unwrap();
        let enis: Vec<String> = described
            .vpc_endpoints()
            .iter()
            .flat_map(|e| e.network_interface_ids().iter().cloned())
            .collect();
        if enis.is_empty() {
            continue;
        }
        let interfaces = ec2
            .describe_network_interfaces()
            .set_network_interface_ids(Some(enis))
            .send()
            .await
            .unwrap();
        addresses.insert(
            service.clone(),
            interfaces
                .network_interfaces()
                .iter()
                .filter_map(|i| i.private_ip_address().map(str::to_string))
                .collect(),
        );
    }
    addresses
}

/// One instance launched by an Auto Scaling group, the way most clusters get them.
async fn auto_scaled_instance(emulator: &Emulator, subnet: &str, group: &str) -> String {
    let ec2 = emulator.ec2();
    ec2.create_launch_template()
        .launch_template_name("ecs-nodes")
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id(AMI)
                .security_group_ids(group)
                .build(),
        )
        .send()
        .await
        .unwrap();
    emulator
        .autoscaling()
        .create_auto_scaling_group()
        .auto_scaling_group_name("ecs-nodes")
        .launch_template(
            aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                .launch_template_name("ecs-nodes")
                .version("$Latest")
                .build(),
        )
        .min_size(1)
        .max_size(1)
        .desired_capacity(1)
        .vpc_zone_identifier(subnet)
        .send()
        .await
        .unwrap();
    let described = ec2
        .describe_instances()
        .filters(filter("tag:aws:autoscaling:groupName", "ecs-nodes"))
        .send()
        .await
        .unwrap();
    described.reservations()[0].instances()[0]
        .instance_id()
        .unwrap()
        .to_string()
}

/// Creates the cluster and registers each instance as a container instance.
pub async fn register_cluster(emulator: &Emulator, instances: &[String]) {
    let ecs = emulator.ecs();
    ecs.create_cluster()
        .cluster_name(CLUSTER)
        .send()
        .await
        .unwrap();
    for instance in instances {
        ecs.register_container_instance()
            .cluster(CLUSTER)
            .instance_identity_document(json!({"instanceId": instance}).to_string())
            .send()
            .await
            .unwrap();
    }
}

/// Gives `subnet` its own network ACL: everything allowed but TCP 443 out to 10.0.0.0/8,
/// where the endpoints' network interfaces are.
async fn drop_outbound_https(emulator: &Emulator, vpc: &str, subnet: &str) {
    let ec2 = emulator.ec2();
    let acl = ec2
        .create_network_acl()
        .vpc_id(vpc)
        .send()
        .await
        .unwrap()
        .network_acl
        .unwrap()
        .network_acl_id
        .unwrap();
    let entry = |number: i32, egress: bool, protocol: &str, allow: bool, cidr: &str| {
        let ec2 = ec2.clone();
        let acl = acl.clone();
        let (protocol, cidr) = (protocol.to_string(), cidr.to_string());
        async move {
            let mut request = ec2
                .create_network_acl_entry()
                .network_acl_id(acl)
                .rule_number(number)
                .egress(egress)
                .protocol(&protocol)
                .rule_action(if allow {
                    RuleAction::Allow
                } else {
                    RuleAction::Deny
                })
                .cidr_block(cidr);
            if protocol == "6" {
                request = request.port_range(PortRange::builder().from(443).to(443).build());
            }
            request.send().await.unwrap();
        }
    };
    entry(100, true, "6", false, "10.0.0.0/8").await;
    entry(200, true, "-1", true, "0.0.0.0/0").await;
    entry(200, false, "-1", true, "0.0.0.0/0").await;
    let association = ec2
        .describe_network_acls()
        .filters(filter("association.subnet-id", subnet))
        .send()
        .await
        .unwrap()
        .network_acls()[0]
        .associations()
        .iter()
        .find(|a| a.subnet_id() == Some(subnet))
        .unwrap()
        .network_acl_association_id()
        .unwrap()
        .to_string();
    ec2.replace_network_acl_association()
        .association_id(association)
        .network_acl_id(acl)
        .send()
        .await
        .unwrap();
}

/// Registers a one-container task definition and starts a task of it on the first instance.
async fn run_task(emulator: &Emulator, family: &str, image: &str) {
    let ecs = emulator.ecs();
    let container = ContainerDefinition::builder()
        .name(family)
        .image(image)
        .memory(256)
        .log_configuration(
            LogConfiguration::builder()
                .log_driver(LogDriver::Awslogs)
                .options("awslogs-group", format!("/ecs/{family}"))
                .options("awslogs-region", REGION)
                .build()
                .unwrap(),
        )
        .build();
    ecs.register_task_definition()
        .family(family)
        .network_mode(NetworkMode::Bridge)
        .container_definitions(container)
        .send()
        .await
        .unwrap();
    let container_instance = ecs
        .list_container_instances()
        .cluster(CLUSTER)
        .send()
        .await
        .unwrap()
        .container_instance_arns()[0]
        .clone();
    ecs.start_task()
        .cluster(CLUSTER)
        .task_definition(family)
        .container_instances(container_instance)
        .send()
        .await
        .unwrap();
}
