//! The drain-and-reboot fallback end to end: an instance in an Auto Scaling group that
//! SSM does not manage is held, drained, rebooted and put back by the real binary. The
//! launcher plays the reboot (the agent away for a while); the test plays ECS's
//! scheduler, which moto does not: once the instance is DRAINING, it stops its service
//! tasks.

use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::DeploymentConfiguration;
use serde_json::json;

use crate::cutover::{commands_per_instance, script_results};
use crate::harness::Emulator;
use crate::scenario::{build, Break, CLUSTER};

const GROUP: &str = "ecs-nodes";

async fn container_instance_of(
    emulator: &Emulator,
    instance: &str,
) -> aws_sdk_ecs::types::ContainerInstance {
    let ecs = emulator.ecs();
    let arns = ecs
        .list_container_instances()
        .cluster(CLUSTER)
        .send()
        .await
        .unwrap()
        .container_instance_arns()
        .to_vec();
    ecs.describe_container_instances()
        .cluster(CLUSTER)
        .set_container_instances(Some(arns))
        .send()
        .await
        .unwrap()
        .container_instances()
        .iter()
        .find(|ci| ci.ec2_instance_id() == Some(instance))
        .cloned()
        .unwrap()
}

/// Stops every task on the container instance, as ECS does to a DRAINING instance's
/// service tasks once their replacements run. Returns how many it stopped.
async fn stop_tasks_on(emulator: &Emulator, container_instance: &str) -> usize {
    let ecs = emulator.ecs();
    let tasks = ecs
        .list_tasks()
        .cluster(CLUSTER)
        .container_instance(container_instance)
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
        .send()
        .await
        .unwrap()
        .task_arns()
        .to_vec();
    for task in &tasks {
        ecs.stop_task()
            .cluster(CLUSTER)
            .task(task)
            .reason("drained")
            .send()
            .await
            .unwrap();
    }
    tasks.len()
}

#[tokio::test]
async fn an_unmanaged_instance_in_an_auto_scaling_group_is_drained_rebooted_and_put_back() {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::Nothing).await;
    script_results(&emulator, &scenario, None);
    let held = scenario.instances[3].clone();
    // SSM manages every instance but the one the group launched.
    let managed: Vec<_> = scenario
        .instances
        .iter()
        .filter(|i| **i != held)
        .map(|i| json!({"InstanceId": i, "PingStatus": "Online", "PlatformType": "Linux"}))
        .collect();
    emulator.control(
        "/_privlink/ssm/managed-instances",
        &json!({"instances": managed, "replace": true}),
    );
    // Long enough to be seen between two reads.
    emulator.control(
        "/_privlink/ec2/reboot-behaviour",
        &json!({"downAfter": 1, "downFor": 15}),
    );
    // A service task on it, which the drain has to see gone.
    let ecs = emulator.ecs();
    ecs.create_service()
        .cluster(CLUSTER)
        .service_name("api")
        .task_definition("web")
        .desired_count(0)
        .deployment_configuration(
            DeploymentConfiguration::builder()
                .minimum_healthy_percent(50)
                .maximum_percent(200)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let arn = container_instance_of(&emulator, &held)
        .await
        .container_instance_arn()
        .unwrap()
        .to_string();
    // The scenario's standalone task may have landed here (moto lists container
    // instances in no fixed order): the one task on it is the service's.
    stop_tasks_on(&emulator, &arn).await;
    ecs.start_task()
        .cluster(CLUSTER)
        .task_definition("web")
        .container_instances(&arn)
        .group("service:api")
        .send()
        .await
        .unwrap();

    let mut child = emulator
        .process()
        .args([
            "--cluster",
            CLUSTER,
            "--yes",
            "--poll-interval",
            "1s",
            "--max-unavailable",
            "100%",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut stopped = 0;
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the cutover did not end in 3 minutes"
        );
        let status = container_instance_of(&emulator, &held).await;
        if stopped == 0 && status.status() == Some("DRAINING") {
            stopped = stop_tasks_on(&emulator, &arn).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stderr}{stdout}");
    assert_eq!(
        stopped, 1,
        "the scheduler's part: its one service task\n{stderr}{stdout}"
    );
    let line = stdout
        .lines()
        .chain(stderr.lines())
        .find(|l| l.starts_with(held.as_str()) && l.contains("done"))
        .unwrap_or_default();
    assert!(
        line.contains("reboot") && line.contains("agent disconnected, then connected again"),
        "{stderr}{stdout}"
    );

    // Rebooted once, never sent a restart; the others restarted over SSM, not rebooted.
    let reboots = emulator.get("/_privlink/ec2/reboots");
    assert_eq!(
        reboots["Reboots"][&held].as_array().map(Vec::len),
        Some(1),
        "{reboots}"
    );
    assert_eq!(
        reboots["Reboots"].as_object().unwrap().len(),
        1,
        "{reboots}"
    );
    assert!(!commands_per_instance(&emulator).contains_key(&held));

    // Everything put back: ACTIVE, InService, unprotected, nothing suspended, no record.
    let after = container_instance_of(&emulator, &held).await;
    assert_eq!(after.status(), Some("ACTIVE"));
    let names: Vec<&str> = after.attributes().iter().map(|a| a.name()).collect();
    assert!(!names.contains(&"privlink-restart.owes"), "{names:?}");
    assert!(names.contains(&"privlink-restart.done"), "{names:?}");
    let autoscaling = emulator.autoscaling();
    let member = autoscaling
        .describe_auto_scaling_instances()
        .instance_ids(&held)
        .send()
        .await
        .unwrap()
        .auto_scaling_instances()[0]
        .clone();
    assert_eq!(member.lifecycle_state(), Some("InService"));
    assert_eq!(member.protected_from_scale_in(), Some(false));
    let group = autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(GROUP)
        .send()
        .await
        .unwrap()
        .auto_scaling_groups()[0]
        .clone();
    assert!(
        group.suspended_processes().is_empty(),
        "{:?}",
        group.suspended_processes()
    );
    assert!(
        group
            .tags()
            .iter()
            .all(|t| t.key() != Some("privlink-restart:owes")),
        "{:?}",
        group.tags()
    );
}
