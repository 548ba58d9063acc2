//! Discovery: the read-only walk from a cluster to everything preflight needs.
//!
//! Cost grows with the cluster only where it must: container instances are described 100
//! per call, EC2 instances 100 per filter, SSM records 50 per filter; every VPC-level fact
//! is one (paginated) call per VPC, never one per instance. Independent reads run
//! concurrently.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use aws_sdk_ec2::types::{Filter, VpcAttributeName};
use aws_sdk_ecs::types::DesiredStatus;
use aws_sdk_ssm::types::InstanceInformationStringFilter;
use futures::{stream, StreamExt, TryStreamExt};

use super::{describe_container_instances, AwsFleet, CallError, CONCURRENCY, ECS_DESCRIBE_BATCH};
use crate::fleet::FleetError;
use crate::inventory::*;

/// Sends a paginated request and collects the items of every page; a failure leaves the
/// fact unreadable, naming the IAM action and the scope.
/// The same for a request made once per batch of ids (a few batches at once): every item
/// of every page of every batch.
macro_rules! every_item_in_batches {
    ($ids:expr, $size:expr, |$batch:ident| $request:expr, $action:literal, $scope:expr) => {{
        let batches: Vec<Vec<String>> = $ids.chunks($size).map(<[String]>::to_vec).collect();
        stream::iter(batches)
            .map(|$batch| async move { $request.into_paginator().items().send().try_collect().await })
            .buffered(CONCURRENCY)
            .try_collect::<Vec<Vec<_>>>()
            .await
            .map(|pages| pages.into_iter().flatten().collect::<Vec<_>>())
            .map_err(|e| CallError::from_sdk($action, e).unreadable($scope))
    }};
}

macro_rules! every_item {
    ($request:expr, $action:literal, $scope:expr) => {
        $request
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| CallError::from_sdk($action, e).unreadable($scope))
    };
}

/// EC2 filters take at most 200 values; 100 keeps responses small.
const EC2_FILTER_BATCH: usize = 100;
/// `DescribeInstanceInformation` filters take at most 50 instance ids.
const SSM_FILTER_BATCH: usize = 50;

pub(super) async fn discover(
    fleet: &AwsFleet,
    cluster_name: &str,
) -> Result<Inventory, FleetError> {
    let cluster = describe_cluster(fleet, cluster_name).await?;
    let (container_instances, container_instance_failures) =
        container_instances(fleet, &cluster).await?;
    let ec2_ids: Vec<String> = container_instances
        .iter()
        .map(|ci| ci.ec2_instance_id.clone())
        .filter(|id| id.starts_with("i-"))
        .collect();
    let (ec2_instances, ssm_instances, s3_prefix_list, running_tasks) = tokio::join!(
        ec2_instances(fleet, &ec2_ids),
        ssm_instances(fleet, &ec2_ids),
        s3_prefix_list(fleet),
        running_tasks(fleet, &cluster),
    );
    let vpc_ids: BTreeSet<String> = ec2_instances
        .as_ref()
        .map(|instances| instances.values().map(|i| i.vpc_id.clone()).collect())
        .unwrap_or_default();
    let vpcs = stream::iter(vpc_ids)
        .map(|id| vpc(fleet, id))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let task_definitions = match running_tasks {
        Ok(tasks) => task_definitions(fleet, tasks, &container_instances, &ec2_instances).await,
        Err(error) => Err(error),
    };
    Ok(Inventory {
        cluster,
        container_instances,
        container_instance_failures,
        ec2_instances,
        ssm_instances,
        vpcs,
        s3_prefix_list_id: s3_prefix_list.clone().map(|list| list.map(|(id, _)| id)),
        s3_prefix_list_cidrs: s3_prefix_list.map(|list| list.map(|(_, c)| c).unwrap_or_default()),
        task_definitions,
    })
}

async fn describe_cluster(fleet: &AwsFleet, name: &str) -> Result<Cluster, FleetError> {
    let output = fleet
        .ecs
        .describe_clusters()
        .clusters(name)
        .send()
        .await
        .map_err(|e| CallError::from_sdk("ecs:DescribeClusters", e).fatal(&fleet.endpoint, name))?;
    let found = output
        .clusters()
        .iter()
        .find(|c| c.status() != Some("INACTIVE"));
    match found {
        Some(cluster) => {
            let arn = cluster.cluster_arn().unwrap_or_default().to_string();
            Ok(Cluster {
                name: cluster.cluster_name().unwrap_or(name).to_string(),
                account: account_of(&arn),
                arn,
                region: fleet.region.clone(),
            })
        }
        None => Err(FleetError::ClusterNotFound {
            cluster: name.to_string(),
            region: fleet.region.clone(),
            // A MISSING failure still names the account in its ARN.
            account: output
                .failures()
                .iter()
                .find_map(|f| f.arn().and_then(account_of)),
        }),
    }
}

/// The account field of an ARN (`arn:partition:service:region:account:…`).
fn account_of(arn: &str) -> Option<String> {
    arn.split(':')
        .nth(4)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
}

/// The tool's own container-instance attributes start with this.
const MARK_PREFIX: &str = "privlink-restart.";

/// The cluster's container instances, and those listed but answered with a failure.
async fn container_instances(
    fleet: &AwsFleet,
    cluster: &Cluster,
) -> Result<(Vec<ContainerInstance>, Vec<DescribeFailure>), FleetError> {
    // Without a status filter ECS lists every status but INACTIVE: ACTIVE, DRAINING and the
    // transitional ones, which preflight reports as out of scope.
    let arns: Vec<String> = fleet
        .ecs
        .list_container_instances()
        .cluster(&cluster.arn)
        .max_results(100)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| {
            CallError::from_sdk("ecs:ListContainerInstances", e)
                .fatal(&fleet.endpoint, &cluster.name)
        })?;
    let (described, failures) = describe_container_instances(fleet, &cluster.arn, &arns).await?;
    let instances = described
        .iter()
        .map(|ci| ContainerInstance {
            arn: ci.container_instance_arn().unwrap_or_default().to_string(),
            ec2_instance_id: ci.ec2_instance_id().unwrap_or_default().to_string(),
            status: ci.status().unwrap_or_default().to_string(),
            agent_connected: ci.agent_connected(),
            agent_version: ci
                .version_info()
                .and_then(|v| v.agent_version())
                .map(str::to_string),
            agent_update_status: ci.agent_update_status().map(|s| s.as_str().to_string()),
            running_tasks: ci.running_tasks_count(),
            platform: Platform::from_os_type(
                ci.attributes()
                    .iter()
                    .find(|a| a.name() == "ecs.os-type")
                    .and_then(|a| a.value()),
            ),
            marks: ci
                .attributes()
                .iter()
                .filter(|a| a.name().starts_with(MARK_PREFIX))
                .filter_map(|a| Some((a.name().to_string(), a.value()?.to_string())))
                .collect(),
        })
        .collect();
    let failures = failures
        .iter()
        .map(|f| DescribeFailure {
            arn: f.arn().unwrap_or_default().to_string(),
            reason: f.reason().unwrap_or("unknown").to_string(),
        })
        .collect();
    Ok((instances, failures))
}

fn filter(name: &str, values: impl IntoIterator<Item = impl Into<String>>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().map(Into::into).collect()))
        .build()
}

fn ipv4(raw: Option<&str>) -> Option<Ipv4Addr> {
    raw.and_then(|ip| ip.parse().ok())
}

async fn ec2_instances(fleet: &AwsFleet, ids: &[String]) -> Fact<BTreeMap<String, Ec2Instance>> {
    let scope = format!("{} EC2 instances", ids.len());
    // A filter, not InstanceIds: an id EC2 no longer knows must not fail the whole call.
    let reservations: Vec<aws_sdk_ec2::types::Reservation> = every_item_in_batches!(
        ids,
        EC2_FILTER_BATCH,
        |batch| fleet
            .ec2
            .describe_instances()
            .filters(filter("instance-id", batch)),
        "ec2:DescribeInstances",
        &scope
    )?;
    let mut instances = BTreeMap::new();
    for instance in reservations.iter().flat_map(|r| r.instances()) {
        let (Some(id), Some(vpc_id), Some(subnet_id)) = (
            instance.instance_id(),
            instance.vpc_id(),
            instance.subnet_id(),
        ) else {
            continue;
        };
        let tag = |key: &str| {
            instance
                .tags()
                .iter()
                .find(|t| t.key() == Some(key))
                .and_then(|t| t.value())
        };
        instances.insert(
            id.to_string(),
            Ec2Instance {
                id: id.to_string(),
                vpc_id: vpc_id.to_string(),
                subnet_id: subnet_id.to_string(),
                availability_zone: instance
                    .placement()
                    .and_then(|p| p.availability_zone())
                    .unwrap_or_default()
                    .to_string(),
                private_ip: ipv4(instance.private_ip_address()),
                security_group_ids: instance
                    .security_groups()
                    .iter()
                    .filter_map(|g| g.group_id())
                    .map(str::to_string)
                    .collect(),
                auto_scaling_group: tag("aws:autoscaling:groupName").map(str::to_string),
            },
        );
    }
    Ok(instances)
}

async fn ssm_instances(fleet: &AwsFleet, ids: &[String]) -> Fact<BTreeMap<String, SsmInstance>> {
    let scope = format!("{} EC2 instances", ids.len());
    let pages: Vec<aws_sdk_ssm::types::InstanceInformation> = every_item_in_batches!(
        ids,
        SSM_FILTER_BATCH,
        |batch| fleet
            .ssm
            .describe_instance_information()
            .filters(
                InstanceInformationStringFilter::builder()
                    .key("InstanceIds")
                    .set_values(Some(batch))
                    .build()
                    .expect("key and values are set"),
            )
            .max_results(50),
        "ssm:DescribeInstanceInformation",
        &scope
    )?;
    Ok(pages
        .into_iter()
        .filter_map(|info| {
            let id = info.instance_id()?.to_string();
            let record = SsmInstance {
                instance_id: id.clone(),
                ping_status: info
                    .ping_status()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default(),
                platform_type: info.platform_type().map(|p| p.as_str().to_string()),
            };
            Some((id, record))
        })
        .collect())
}

/// The region's S3 prefix list: its id and address blocks.
async fn s3_prefix_list(fleet: &AwsFleet) -> Fact<Option<(String, Vec<Cidr>)>> {
    let region = &fleet.region;
    // The list's name is `com.amazonaws.REGION.s3` everywhere, even where the endpoint
    // service name has a partition prefix (`cn.com.amazonaws.…`): ask for both.
    let name = format!("com.amazonaws.{region}.s3");
    let partition_name = format!(
        "{}{region}.s3",
        crate::preflight::endpoint_service_prefix(region)
    );
    let mut names = vec![name.clone()];
    if partition_name != name {
        names.push(partition_name);
    }
    let lists: Vec<aws_sdk_ec2::types::PrefixList> = every_item!(
        fleet
            .ec2
            .describe_prefix_lists()
            .filters(filter("prefix-list-name", names)),
        "ec2:DescribePrefixLists",
        &name
    )?;
    Ok(lists.into_iter().find_map(|l| {
        let cidrs = l.cidrs().iter().filter_map(|c| Cidr::parse(c)).collect();
        l.prefix_list_id().map(|id| (id.to_string(), cidrs))
    }))
}

/// (task definition ARN, container instance ARN) of every RUNNING task on an EC2 instance.
async fn running_tasks(fleet: &AwsFleet, cluster: &Cluster) -> Fact<Vec<(String, String)>> {
    let arns: Vec<String> = fleet
        .ecs
        .list_tasks()
        .cluster(&cluster.arn)
        .desired_status(DesiredStatus::Running)
        .max_results(100)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| CallError::from_sdk("ecs:ListTasks", e).unreadable(&cluster.name))?;
    let batches: Vec<Vec<String>> = arns
        .chunks(ECS_DESCRIBE_BATCH)
        .map(<[String]>::to_vec)
        .collect();
    let described: Vec<Vec<(String, String)>> = stream::iter(batches)
        .map(|batch| async move {
            let output = fleet
                .ecs
                .describe_tasks()
                .cluster(&cluster.arn)
                .set_tasks(Some(batch))
                .send()
                .await?;
            Ok(output
                .tasks()
                .iter()
                .filter_map(|t| {
                    Some((
                        t.task_definition_arn()?.to_string(),
                        t.container_instance_arn()?.to_string(),
                    ))
                })
                .collect())
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await
        .map_err(|e| CallError::from_sdk("ecs:DescribeTasks", e).unreadable(&cluster.name))?;
    Ok(described.into_iter().flatten().collect())
}

async fn task_definitions(
    fleet: &AwsFleet,
    tasks: Vec<(String, String)>,
    container_instances: &[ContainerInstance],
    ec2_instances: &Fact<BTreeMap<String, Ec2Instance>>,
) -> Fact<Vec<TaskDefinition>> {
    let vpc_of_container_instance: BTreeMap<&str, &str> = container_instances
        .iter()
        .filter_map(|ci| {
            let ec2 = ec2_instances.as_ref().ok()?.get(&ci.ec2_instance_id)?;
            Some((ci.arn.as_str(), ec2.vpc_id.as_str()))
        })
        .collect();
    let mut vpcs_of_definition: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (definition, container_instance) in &tasks {
        let vpcs = vpcs_of_definition.entry(definition.clone()).or_default();
        if let Some(vpc) = vpc_of_container_instance.get(container_instance.as_str()) {
            vpcs.insert(vpc.to_string());
        }
    }
    stream::iter(vpcs_of_definition)
        .map(|(arn, vpcs)| async move {
            let output = fleet
                .ecs
                .describe_task_definition()
                .task_definition(&arn)
                .send()
                .await
                .map_err(|e| {
                    CallError::from_sdk("ecs:DescribeTaskDefinition", e).unreadable(&arn)
                })?;
            let containers = output
                .task_definition()
                .map(|d| {
                    d.container_definitions()
                        .iter()
                        .map(container_definition)
                        .collect()
                })
                .unwrap_or_default();
            Ok(TaskDefinition {
                arn,
                vpc_ids: vpcs.into_iter().collect(),
                containers,
            })
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await
}

fn container_definition(
    container: &aws_sdk_ecs::types::ContainerDefinition,
) -> ContainerDefinition {
    let log = container.log_configuration();
    let secrets = container
        .secrets()
        .iter()
        .chain(log.map(|l| l.secret_options()).unwrap_or_default())
        .map(|s| s.value_from().to_string())
        .chain(
            container
                .repository_credentials()
                .map(|r| r.credentials_parameter().to_string()),
        )
        .collect();
    ContainerDefinition {
        name: container.name().unwrap_or_default().to_string(),
        image: container.image().unwrap_or_default().to_string(),
        log_driver: log.map(|l| l.log_driver().as_str().to_string()),
        log_region: log
            .and_then(|l| l.options())
            .and_then(|options| options.get("awslogs-region"))
            .cloned(),
        secrets,
        s3_environment_files: container
            .environment_files()
            .iter()
            .filter(|f| f.r#type().as_str().eq_ignore_ascii_case("s3"))
            .map(|f| f.value().to_string())
            .collect(),
    }
}

/// Every per-VPC fact, read concurrently; each fails on its own.
async fn vpc(fleet: &AwsFleet, id: String) -> Vpc {
    let (dns, dhcp_dns_servers, subnets, route_tables, endpoints, security_groups, network_acls) = tokio::join!(
        vpc_dns(fleet, &id),
        dhcp_dns_servers(fleet, &id),
        subnets(fleet, &id),
        route_tables(fleet, &id),
        endpoints(fleet, &id),
        security_groups(fleet, &id),
        network_acls(fleet, &id),
    );
    let endpoint_interfaces = match &endpoints {
        Ok(endpoints) => endpoint_interfaces(fleet, &id, endpoints).await,
        // Already reported as unreadable endpoints; nothing more to say about their ENIs.
        Err(_) => Ok(Vec::new()),
    };
    let prefix_lists = match &security_groups {
        Ok(groups) => prefix_lists(fleet, &id, groups).await,
        // Already reported as unreadable security groups.
        Err(_) => Ok(BTreeMap::new()),
    };
    Vpc {
        id,
        dns,
        dhcp_dns_servers,
        subnets,
        route_tables,
        endpoints,
        endpoint_interfaces,
        security_groups,
        network_acls,
        prefix_lists,
    }
}

/// The entries of every prefix list the security groups' rules refer to, so a rule by
/// prefix list is judged by its CIDRs like any other.
async fn prefix_lists(
    fleet: &AwsFleet,
    vpc_id: &str,
    groups: &[SecurityGroup],
) -> Fact<BTreeMap<String, Vec<Cidr>>> {
    let ids: BTreeSet<String> = groups
        .iter()
        .flat_map(|g| g.ingress.iter().chain(&g.egress))
        .flat_map(|rule| rule.prefix_list_ids.iter().cloned())
        .collect();
    stream::iter(ids)
        .map(|id| async move {
            let entries: Vec<aws_sdk_ec2::types::PrefixListEntry> = fleet
                .ec2
                .get_managed_prefix_list_entries()
                .prefix_list_id(&id)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| {
                    CallError::from_sdk("ec2:GetManagedPrefixListEntries", e)
                        .unreadable(&format!("{id} (in {vpc_id})"))
                })?;
            let cidrs = entries
                .iter()
                .filter_map(|e| e.cidr().and_then(Cidr::parse))
                .collect();
            Ok((id, cidrs))
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await
}

async fn vpc_dns(fleet: &AwsFleet, vpc_id: &str) -> Fact<VpcDns> {
    let read = |attribute: VpcAttributeName| async move {
        fleet
            .ec2
            .describe_vpc_attribute()
            .vpc_id(vpc_id)
            .attribute(attribute)
            .send()
            .await
            .map_err(|e| CallError::from_sdk("ec2:DescribeVpcAttribute", e).unreadable(vpc_id))
    };
    let (support, hostnames) = tokio::join!(
        read(VpcAttributeName::EnableDnsSupport),
        read(VpcAttributeName::EnableDnsHostnames)
    );
    Ok(VpcDns {
        support: support?
            .enable_dns_support()
            .and_then(|v| v.value())
            .unwrap_or(false),
        hostnames: hostnames?
            .enable_dns_hostnames()
            .and_then(|v| v.value())
            .unwrap_or(false),
    })
}

async fn dhcp_dns_servers(fleet: &AwsFleet, vpc_id: &str) -> Fact<Vec<String>> {
    let vpcs = fleet
        .ec2
        .describe_vpcs()
        .vpc_ids(vpc_id)
        .send()
        .await
        .map_err(|e| CallError::from_sdk("ec2:DescribeVpcs", e).unreadable(vpc_id))?;
    let options_id = vpcs
        .vpcs()
        .first()
        .and_then(|v| v.dhcp_options_id())
        .unwrap_or("default");
    if options_id == "default" {
        // No DHCP options set: instances use the Amazon-provided resolver.
        return Ok(Vec::new());
    }
    let options = fleet
        .ec2
        .describe_dhcp_options()
        .dhcp_options_ids(options_id)
        .send()
        .await
        .map_err(|e| CallError::from_sdk("ec2:DescribeDhcpOptions", e).unreadable(options_id))?;
    Ok(options
        .dhcp_options()
        .iter()
        .flat_map(|o| o.dhcp_configurations())
        .filter(|c| c.key() == Some("domain-name-servers"))
        .flat_map(|c| c.values())
        .filter_map(|v| v.value().map(str::to_string))
        .collect())
}

async fn subnets(fleet: &AwsFleet, vpc_id: &str) -> Fact<Vec<Subnet>> {
    let subnets: Vec<aws_sdk_ec2::types::Subnet> = every_item!(
        fleet
            .ec2
            .describe_subnets()
            .filters(filter("vpc-id", [vpc_id])),
        "ec2:DescribeSubnets",
        vpc_id
    )?;
    Ok(subnets
        .iter()
        .filter_map(|s| {
            Some(Subnet {
                id: s.subnet_id()?.to_string(),
                availability_zone: s.availability_zone().unwrap_or_default().to_string(),
                cidr: s.cidr_block().and_then(Cidr::parse),
            })
        })
        .collect())
}

async fn route_tables(fleet: &AwsFleet, vpc_id: &str) -> Fact<Vec<RouteTable>> {
    let tables: Vec<aws_sdk_ec2::types::RouteTable> = every_item!(
        fleet
            .ec2
            .describe_route_tables()
            .filters(filter("vpc-id", [vpc_id])),
        "ec2:DescribeRouteTables",
        vpc_id
    )?;
    Ok(tables
        .iter()
        .filter_map(|t| {
            Some(RouteTable {
                id: t.route_table_id()?.to_string(),
                main: t.associations().iter().any(|a| a.main() == Some(true)),
                subnet_ids: t
                    .associations()
                    .iter()
                    .filter_map(|a| a.subnet_id())
                    .map(str::to_string)
                    .collect(),
                prefix_list_routes: t
                    .routes()
                    .iter()
                    .filter_map(|r| {
                        Some((
                            r.gateway_id()?.to_string(),
                            r.destination_prefix_list_id()?.to_string(),
                        ))
                    })
                    .collect(),
            })
        })
        .collect())
}

async fn endpoints(fleet: &AwsFleet, vpc_id: &str) -> Fact<Vec<VpcEndpoint>> {
    let endpoints: Vec<aws_sdk_ec2::types::VpcEndpoint> = every_item!(
        fleet
            .ec2
            .describe_vpc_endpoints()
            .filters(filter("vpc-id", [vpc_id])),
        "ec2:DescribeVpcEndpoints",
        vpc_id
    )?;
    let strings = |list: &[String]| list.to_vec();
    Ok(endpoints
        .iter()
        .filter_map(|e| {
            let kind = match e
                .vpc_endpoint_type()
                .map(|t| t.as_str().to_ascii_lowercase())
                .as_deref()
            {
                Some("interface") => EndpointKind::Interface,
                Some("gateway") => EndpointKind::Gateway,
                _ => EndpointKind::Other,
            };
            Some(VpcEndpoint {
                id: e.vpc_endpoint_id()?.to_string(),
                service_name: e.service_name().unwrap_or_default().to_string(),
                kind,
                state: e
                    .state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                private_dns_enabled: e.private_dns_enabled().unwrap_or(false),
                subnet_ids: strings(e.subnet_ids()),
                security_group_ids: e
                    .groups()
                    .iter()
                    .filter_map(|g| g.group_id())
                    .map(str::to_string)
                    .collect(),
                route_table_ids: strings(e.route_table_ids()),
                network_interface_ids: strings(e.network_interface_ids()),
                policy: e.policy_document().map(str::to_string),
            })
        })
        .collect())
}

async fn endpoint_interfaces(
    fleet: &AwsFleet,
    vpc_id: &str,
    endpoints: &[VpcEndpoint],
) -> Fact<Vec<NetworkInterface>> {
    let ids: Vec<String> = endpoints
        .iter()
        .flat_map(|e| e.network_interface_ids.iter().cloned())
        .collect();
    let interfaces: Vec<aws_sdk_ec2::types::NetworkInterface> = every_item_in_batches!(
        ids,
        EC2_FILTER_BATCH,
        |batch| fleet
            .ec2
            .describe_network_interfaces()
            .filters(filter("network-interface-id", batch)),
        "ec2:DescribeNetworkInterfaces",
        vpc_id
    )?;
    Ok(interfaces
        .iter()
        .filter_map(|eni| {
            Some(NetworkInterface {
                id: eni.network_interface_id()?.to_string(),
                subnet_id: eni.subnet_id().unwrap_or_default().to_string(),
                private_ip: ipv4(eni.private_ip_address()),
            })
        })
        .collect())
}

fn rules(permissions: &[aws_sdk_ec2::types::IpPermission]) -> Vec<SecurityGroupRule> {
    permissions
        .iter()
        .map(|p| {
            let protocol = Protocol::parse(p.ip_protocol().unwrap_or("-1"));
            let ports = match (&protocol, p.from_port(), p.to_port()) {
                (Protocol::Tcp, Some(from), Some(to)) if from >= 0 => Some((from, to)),
                _ => None,
            };
            SecurityGroupRule {
                protocol,
                ports,
                cidrs: p
                    .ip_ranges()
                    .iter()
                    .filter_map(|r| r.cidr_ip())
                    .filter_map(Cidr::parse)
                    .collect(),
                group_ids: p
                    .user_id_group_pairs()
                    .iter()
                    .filter_map(|g| g.group_id())
                    .map(str::to_string)
                    .collect(),
                prefix_list_ids: p
                    .prefix_list_ids()
                    .iter()
                    .filter_map(|l| l.prefix_list_id())
                    .map(str::to_string)
                    .collect(),
            }
        })
        .collect()
}

async fn security_groups(fleet: &AwsFleet, vpc_id: &str) -> Fact<Vec<SecurityGroup>> {
    let groups: Vec<aws_sdk_ec2::types::SecurityGroup> = every_item!(
        fleet
            .ec2
            .describe_security_groups()
            .filters(filter("vpc-id", [vpc_id])),
        "ec2:DescribeSecurityGroups",
        vpc_id
    )?;
    Ok(groups
        .iter()
        .filter_map(|g| {
            Some(SecurityGroup {
                id: g.group_id()?.to_string(),
                ingress: rules(g.ip_permissions()),
                egress: rules(g.ip_permissions_egress()),
            })
        })
        .collect())
}

async fn network_acls(fleet: &AwsFleet, vpc_id: &str) -> Fact<Vec<NetworkAcl>> {
    let acls: Vec<aws_sdk_ec2::types::NetworkAcl> = every_item!(
        fleet
            .ec2
            .describe_network_acls()
            .filters(filter("vpc-id", [vpc_id])),
        "ec2:DescribeNetworkAcls",
        vpc_id
    )?;
    Ok(acls
        .iter()
        .filter_map(|acl| {
            Some(NetworkAcl {
                id: acl.network_acl_id()?.to_string(),
                subnet_ids: acl
                    .associations()
                    .iter()
                    .filter_map(|a| a.subnet_id())
                    .map(str::to_string)
                    .collect(),
                entries: acl
                    .entries()
                    .iter()
                    .map(|e| {
                        let protocol = Protocol::parse(e.protocol().unwrap_or("-1"));
                        NetworkAclEntry {
                            rule_number: e.rule_number().unwrap_or(i32::MAX),
                            egress: e.egress().unwrap_or(false),
                            ports: match protocol {
                                Protocol::Tcp => {
                                    e.port_range().and_then(|r| Some((r.from()?, r.to()?)))
                                }
                                _ => None,
                            },
                            protocol,
                            allow: e
                                .rule_action()
                                .is_some_and(|a| a.as_str().eq_ignore_ascii_case("allow")),
                            cidr: e.cidr_block().and_then(Cidr::parse),
                        }
                    })
                    .collect(),
            })
        })
        .collect())
}
