//! Never losing a run, end to end: the real binary killed (SIGKILL) or interrupted
//! (SIGINT) mid-run while the launcher holds its restarts InProgress, then resumed — with
//! its journal, and as a fresh runner without one; two runs at once; and debts an earlier
//! run left on AWS paid by the next.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{Emulator, ACCOUNT, REGION};
use crate::scenario::{build, AgentPath, Break, Scenario, CLUSTER};

fn evidence() -> String {
    "PRIVLINK-EVIDENCE v=1 result=ok reason=none method=systemd supervisor=systemd agent_version=1.80.0 \
     restart_at=1800000000 agent_started=1800000004 acs_connected=1800000007 credentials_before=404 \
     credentials_after=404 boot_id=test"
        .into()
}

/// Every instance's restart succeeds; `held`: stays InProgress until released.
pub(crate) fn script_results(emulator: &Emulator, scenario: &Scenario, held: bool) {
    let results: serde_json::Map<String, Value> = scenario
        .instances
        .iter()
        .map(|id| {
            let result = json!({"status": "Success", "output": evidence(), "held": held});
            (id.clone(), result)
        })
        .collect();
    emulator.control("/_privlink/ssm/command-results", &results.into());
    scenario.serve_probes(emulator, AgentPath::Public, AgentPath::Endpoints);
}

/// Lets every held restart finish, and every later one finish at once.
fn release_all(emulator: &Emulator, scenario: &Scenario) {
    script_results(emulator, scenario, false);
    emulator.control(
        "/_privlink/ssm/release",
        &json!({"instanceIds": scenario.instances}),
    );
}

fn commands_per_instance(emulator: &Emulator) -> std::collections::BTreeMap<String, usize> {
    let mut per_instance = std::collections::BTreeMap::new();
    for command in emulator.get("/_privlink/ssm/commands")["Commands"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["Probe"] != true)
    {
        for id in command["InstanceIds"].as_array().unwrap() {
            *per_instance
                .entry(id.as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
    }
    per_instance
}

const CUTOVER: [&str; 10] = [
    "--cluster",
    CLUSTER,
    "--yes",
    "--poll-interval",
    "1s",
    "--max-unavailable",
    "2",
    "--lease-interval",
    "1s",
    "--output",
];

fn spawn(emulator: &Emulator, extra: &[&str]) -> Child {
    emulator
        .process()
        .args(CUTOVER)
        .arg("json")
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (bounded) until the run has sent its first restart: the canary, held.
fn wait_for_first_command(emulator: &Emulator, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while commands_per_instance(emulator).is_empty() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before sending anything"
        );
        assert!(
            Instant::now() < deadline,
            "no restart was sent within a minute"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn journal_path(emulator: &Emulator) -> PathBuf {
    emulator
        .home()
        .join(".local/state/privlink-restart")
        .join(format!("{ACCOUNT}.{REGION}.{CLUSTER}.json"))
}

async fn parameter(emulator: &Emulator, name: &str) -> Option<String> {
    emulator
        .ssm()
        .get_parameter()
        .name(name)
        .send()
        .await
        .ok()
        .and_then(|o| o.parameter?.value)
}

/// Waits until the dead run's lease may be broken: expired by two renewal intervals.
async fn until_lease_breakable(emulator: &Emulator) {
    let Some(lease) = parameter(emulator, &format!("/privlink-restart/lease/{CLUSTER}")).await
    else {
        return;
    };
    let lease: Value = serde_json::from_str(&lease).unwrap();
    let breakable = lease["expires"].as_i64().unwrap() + 2 * lease["renew_every"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        breakable - now < 30,
        "the lease lasts too long for a test: {lease}"
    );
    if breakable >= now {
        tokio::time::sleep(Duration::from_secs((breakable - now + 1) as u64)).await;
    }
}

fn summary(stdout: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stdout);
    serde_json::from_str(text.lines().last().unwrap_or("null")).unwrap_or(Value::Null)
}

/// Kills the run after its canary was sent, then resumes it; returns the commands each
/// instance was sent.
async fn kill_then_resume(keep_journal: bool) -> std::collections::BTreeMap<String, usize> {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::Nothing).await;
    script_results(&emulator, &scenario, true);
    let mut child = spawn(&emulator, &[]);
    wait_for_first_command(&emulator, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    let journal: Value =
        serde_json::from_str(&std::fs::read_to_string(journal_path(&emulator)).unwrap())
            .expect("the journal is whole after SIGKILL");
    assert_eq!(journal["status"], "running");
    if !keep_journal {
        std::fs::remove_dir_all(journal_path(&emulator).parent().unwrap()).unwrap();
    }
    release_all(&emulator, &scenario);
    until_lease_breakable(&emulator).await;
    let resumed = emulator
        .binary()
        .args(CUTOVER)
        .args(["json", "--resume", "--break-lease"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("An unfinished run"), "{stderr}");
    let summary = summary(&resumed.stdout);
    for instance in summary["instances"].as_array().unwrap() {
        assert!(
            instance["state"] == "done" || instance["state"] == "skipped",
            "{instance}"
        );
    }
    // Nothing owed, nothing held.
    assert_eq!(
        parameter(&emulator, &format!("/privlink-restart/lease/{CLUSTER}")).await,
        None
    );
    let record = parameter(&emulator, &format!("/privlink-restart/run/{CLUSTER}"))
        .await
        .unwrap();
    assert!(record.contains("\"finished\""), "{record}");
    let status = emulator
        .binary()
        .args(["status", "--cluster", CLUSTER])
        .output()
        .unwrap();
    let status_text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(0), "{status_text}");
    assert!(status_text.contains("Nothing is owed"), "{status_text}");
    commands_per_instance(&emulator)
}

#[tokio::test]
async fn a_killed_run_resumes_to_completion_without_sending_anything_twice() {
    let per_instance = kill_then_resume(true).await;
    // The canary's restart was under way when the run died: followed, not sent again.
    assert!(per_instance.values().all(|n| *n == 1), "{per_instance:?}");
    assert_eq!(per_instance.len(), 4);
}

#[tokio::test]
async fn a_killed_run_resumes_from_a_fresh_runner_with_only_the_records_on_aws() {
    let per_instance = kill_then_resume(false).await;
    // Without the journal nothing says the canary's restart was sent; but it finished
    // after the kill, and the resumed run's probe finds that agent on the endpoints
    // already: skipped, not sent again. Nobody is sent twice.
    assert!(per_instance.values().all(|n| *n == 1), "{per_instance:?}");
    assert_eq!(per_instance.len(), 4);
}

#[tokio::test]
async fn a_second_run_on_the_cluster_exits_4_naming_the_first() {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::Nothing).await;
    script_results(&emulator, &scenario, true);
    let mut first = spawn(&emulator, &[]);
    wait_for_first_command(&emulator, &mut first);
    let second = emulator
        .binary()
        .args(CUTOVER)
        .arg("json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains(&format!("(pid {}", first.id())), "{stderr}");
    assert_eq!(
        commands_per_instance(&emulator).len(),
        1,
        "the second run sent nothing"
    );
    release_all(&emulator, &scenario);
    let output = first.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn sigint_stops_new_work_writes_the_journal_and_releases_the_lease() {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::Nothing).await;
    script_results(&emulator, &scenario, true);
    let mut child = spawn(&emulator, &[]);
    wait_for_first_command(&emulator, &mut child);
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    // The canary's restart is under way: it is followed to its end, then the run stops.
    release_all(&emulator, &scenario);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    let journal: Value =
        serde_json::from_str(&std::fs::read_to_string(journal_path(&emulator)).unwrap()).unwrap();
    assert_eq!(journal["status"], "stopped");
    let states: Vec<&str> = journal["instances"]
        .as_object()
        .unwrap()
        .values()
        .map(|i| i["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "done").count(),
        1,
        "{journal}"
    );
    assert_eq!(
        states.iter().filter(|s| **s == "pending").count(),
        3,
        "{journal}"
    );
    assert_eq!(
        parameter(&emulator, &format!("/privlink-restart/lease/{CLUSTER}")).await,
        None
    );
    assert_eq!(
        commands_per_instance(&emulator).len(),
        1,
        "nothing new after the interrupt"
    );
}

#[tokio::test]
async fn restore_records_an_earlier_run_left_are_paid_on_aws_and_removed() {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::Nothing).await;
    script_results(&emulator, &scenario, false);
    let asg_instance = scenario.instances[3].clone();
    let autoscaling = emulator.autoscaling();
    // What a run that died mid-reboot would have left: the instance protected, two
    // processes suspended (AddToLoadBalancer was suspended by an operator before).
    autoscaling
        .set_instance_protection()
        .auto_scaling_group_name("ecs-nodes")
        .instance_ids(&asg_instance)
        .protected_from_scale_in(true)
        .send()
        .await
        .unwrap();
    autoscaling
        .suspend_processes()
        .auto_scaling_group_name("ecs-nodes")
        .scaling_processes("HealthCheck")
        .scaling_processes("AZRebalance")
        .scaling_processes("AddToLoadBalancer")
        .send()
        .await
        .unwrap();
    autoscaling
        .create_or_update_tags()
        .tags(
            aws_sdk_autoscaling::types::Tag::builder()
                .resource_id("ecs-nodes")
                .resource_type("auto-scaling-group")
                .key("privlink-restart:owes")
                .value(format!(
                    "v1 20261126T100000Z-0001 cluster:{CLUSTER} resume:AZRebalance/HealthCheck"
                ))
                .propagate_at_launch(false)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let ecs = emulator.ecs();
    let arn = ecs
        .list_container_instances()
        .cluster(CLUSTER)
        .send()
        .await
        .unwrap()
        .container_instance_arns()
        .to_vec();
    let described = ecs
        .describe_container_instances()
        .cluster(CLUSTER)
        .set_container_instances(Some(arn))
        .send()
        .await
        .unwrap();
    let arn_of = |instance: &str| {
        described
            .container_instances()
            .iter()
            .find(|ci| ci.ec2_instance_id() == Some(instance))
            .unwrap()
            .container_instance_arn()
            .unwrap()
            .to_string()
    };
    let target = arn_of(&asg_instance);
    // The dead run had drained it; an operator drained another one.
    let operator_drained = arn_of(&scenario.instances[0]);
    ecs.update_container_instances_state()
        .cluster(CLUSTER)
        .container_instances(&target)
        .container_instances(&operator_drained)
        .status(aws_sdk_ecs::types::ContainerInstanceStatus::Draining)
        .send()
        .await
        .unwrap();
    ecs.put_attributes()
        .cluster(CLUSTER)
        .attributes(
            aws_sdk_ecs::types::Attribute::builder()
                .name("privlink-restart.owes")
                .value("v1 20261126T100000Z-0001 activate unprotect")
                .target_id(&target)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let output = emulator
        .binary()
        .args(CUTOVER)
        .args(["json", "--resume"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("Owed to {asg_instance}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("Put back: group ecs-nodes: resumed AZRebalance, HealthCheck"),
        "{stderr}"
    );

    let group = autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("ecs-nodes")
        .send()
        .await
        .unwrap();
    let group = &group.auto_scaling_groups()[0];
    let suspended: Vec<&str> = group
        .suspended_processes()
        .iter()
        .filter_map(|p| p.process_name())
        .collect();
    assert_eq!(
        suspended,
        ["AddToLoadBalancer"],
        "the operator's suspension stays"
    );
    assert!(group
        .tags()
        .iter()
        .all(|t| t.key() != Some("privlink-restart:owes")));
    assert!(group
        .instances()
        .iter()
        .all(|i| i.protected_from_scale_in() != Some(true)));
    let after = ecs
        .describe_container_instances()
        .cluster(CLUSTER)
        .container_instances(&target)
        .container_instances(&operator_drained)
        .send()
        .await
        .unwrap();
    let status = |arn: &str| {
        after
            .container_instances()
            .iter()
            .find(|ci| ci.container_instance_arn() == Some(arn))
            .unwrap()
    };
    assert_eq!(status(&target).status(), Some("ACTIVE"));
    assert!(status(&target)
        .attributes()
        .iter()
        .all(|a| a.name() != "privlink-restart.owes"));
    assert_eq!(
        status(&operator_drained).status(),
        Some("DRAINING"),
        "the operator's drain stays"
    );
    // ACTIVE again, it was planned anew and restarted; the operator's was left alone.
    let sent = commands_per_instance(&emulator);
    assert_eq!(sent.get(&asg_instance), Some(&1), "{sent:?}");
    assert_eq!(sent.get(&scenario.instances[0]), None, "{sent:?}");
}

#[tokio::test]
async fn a_second_sigint_exits_130_at_once_with_the_journal_whole() {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::Nothing).await;
    script_results(&emulator, &scenario, true);
    let mut child = spawn(&emulator, &[]);
    wait_for_first_command(&emulator, &mut child);
    for _ in 0..2 {
        let sent = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        std::thread::sleep(Duration::from_millis(300));
    }
    // The canary is still held InProgress: only the second signal can end the run.
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let journal: Value =
        serde_json::from_str(&std::fs::read_to_string(journal_path(&emulator)).unwrap()).unwrap();
    assert_eq!(journal["instances"].as_object().unwrap().len(), 4);
}
