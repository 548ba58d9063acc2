//! Discovery cost and the operation declaration, measured on what the binary really sent
//! (its request counter sits inside the SDK and counts every attempt).

use std::collections::BTreeMap;

use futures::{stream, StreamExt};
use privlink_restart::fleet::operations::{Purpose, OPERATIONS};
use serde_json::{json, Value};

use crate::harness::Emulator;
use crate::scenario::{build, Break, CLUSTER};

fn requests(emulator: &Emulator) -> BTreeMap<String, u64> {
    let output = emulator
        .binary()
        .args(["check", "--cluster", CLUSTER, "--output", "json"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&output.stderr)));
    serde_json::from_value(doc["requests"].clone()).expect("requests map")
}

#[tokio::test]
async fn every_operation_sent_is_declared_and_every_declared_one_is_used() {
    let emulator = Emulator::start();
    // The prefix-list variant is the ready cluster plus the one read only it needs.
    build(&emulator, Break::IngressByPrefixList).await;
    let sent = requests(&emulator);
    let declared: Vec<String> = OPERATIONS.iter().map(|o| o.iam_action()).collect();
    for action in sent.keys() {
        assert!(
            declared.contains(action),
            "{action} was sent but is not declared in fleet::operations"
        );
    }
    // `check` must use every read it declares; the restart operations are the cutover's.
    let reads: Vec<String> = OPERATIONS
        .iter()
        .filter(|o| o.purpose == Purpose::Read)
        .map(|o| o.iam_action())
        .collect();
    for action in &reads {
        assert!(
            sent.contains_key(action),
            "{action} is declared but discovery never sent it: {sent:?}"
        );
    }
}

#[tokio::test]
async fn a_thousand_instances_cost_batched_calls_not_per_instance_calls() {
    const INSTANCES: usize = 1000;
    let emulator = Emulator::start();
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
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.0.0.0/20")
        .availability_zone("eu-west-1a")
        .send()
        .await
        .unwrap()
        .subnet
        .unwrap()
        .subnet_id
        .unwrap();
    let run = ec2
        .run_instances()
        .image_id("ami-1e749f67")
        .min_count(INSTANCES as i32)
        .max_count(INSTANCES as i32)
        .subnet_id(&subnet)
        .send()
        .await
        .unwrap();
    let ids: Vec<String> = run
        .instances()
        .iter()
        .map(|i| i.instance_id().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), INSTANCES);
    let ecs = emulator.ecs();
    ecs.create_cluster()
        .cluster_name(CLUSTER)
        .send()
        .await
        .unwrap();
    stream::iter(&ids)
        .for_each_concurrent(8, |id| {
            let ecs = ecs.clone();
            async move {
                ecs.register_container_instance()
                    .cluster(CLUSTER)
                    .instance_identity_document(json!({"instanceId": id}).to_string())
                    .send()
                    .await
                    .unwrap();
            }
        })
        .await;
    let agents: serde_json::Map<String, Value> = ids
        .iter()
        .map(|id| (id.clone(), json!({"agentVersion": "1.80.0"})))
        .collect();
    emulator.control("/_privlink/ecs/agent-state", &agents.into());

    let sent = requests(&emulator);
    let count = |action: &str| sent.get(action).copied().unwrap_or(0);
    // 1,000 container instances, 100 per describe; EC2 100 per filter; SSM 50 per filter.
    assert_eq!(count("ecs:DescribeContainerInstances"), 10, "{sent:?}");
    assert_eq!(count("ec2:DescribeInstances"), 10, "{sent:?}");
    assert_eq!(count("ssm:DescribeInstanceInformation"), 20, "{sent:?}");
    // moto returns every container instance in one ListContainerInstances page; on AWS it
    // takes one page per 100, which the bound below allows.
    let pages = (INSTANCES as u64).div_ceil(100);
    assert!(count("ecs:ListContainerInstances") <= pages, "{sent:?}");
    let ecs_total: u64 = sent
        .iter()
        .filter(|(a, _)| a.starts_with("ecs:"))
        .map(|(_, n)| n)
        .sum();
    assert!(
        // DescribeClusters, list pages, describe batches, and ListTasks (no tasks here).
        ecs_total <= 1 + pages + pages + 1,
        "ECS calls must be O(N/100): {sent:?}"
    );
    // VPC-level facts: a constant number of calls for the one VPC, whatever N is.
    for action in [
        "ec2:DescribeSubnets",
        "ec2:DescribeRouteTables",
        "ec2:DescribeVpcEndpoints",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeNetworkAcls",
        "ec2:DescribeVpcs",
    ] {
        assert_eq!(count(action), 1, "{action}: {sent:?}");
    }
    assert_eq!(count("ec2:DescribeVpcAttribute"), 2, "{sent:?}");
    let total: u64 = sent.values().sum();
    eprintln!("discovery of {INSTANCES} container instances: {total} AWS requests ({sent:?})");
}
