//! The cutover end to end: the real binary restarts agents over the emulator's SSM Run
//! Command, which answers each instance's invocation with the evidence its script would
//! print.

use serde_json::{json, Value};

use crate::harness::Emulator;
use crate::scenario::{build, AgentPath, Break, Scenario, CLUSTER};

fn evidence(ok: bool, reason: &str) -> String {
    format!(
        "PRIVLINK-EVIDENCE v=1 result={} reason={reason} method=systemd supervisor=systemd agent_version=1.80.0 \
         restart_at=1800000000 agent_started=1800000004 acs_connected=1800000007 credentials_before=404 \
         credentials_after=404 boot_id=test",
        if ok { "ok" } else { "failed" }
    )
}

pub(crate) fn script_results(emulator: &Emulator, scenario: &Scenario, failing: Option<&str>) {
    let results: serde_json::Map<String, Value> = scenario
        .instances
        .iter()
        .map(|id| {
            let result = if Some(id.as_str()) == failing {
                json!({"status": "Failed", "output": evidence(false, "acs-not-connected"), "responseCode": 1})
            } else {
                json!({"status": "Success", "output": evidence(true, "none")})
            };
            (id.clone(), result)
        })
        .collect();
    emulator.control("/_privlink/ssm/command-results", &results.into());
    // Before a restart the agents are on the public hosts; after it, on the endpoints.
    scenario.serve_probes(emulator, AgentPath::Public, AgentPath::Endpoints);
}

/// instance id → how many restart commands it was sent.
pub(crate) fn commands_per_instance(
    emulator: &Emulator,
) -> std::collections::BTreeMap<String, usize> {
    let commands = emulator.get("/_privlink/ssm/commands");
    let mut per_instance = std::collections::BTreeMap::new();
    let restarts = commands["Commands"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["Probe"] != true);
    for command in restarts {
        assert_eq!(command["DocumentName"], "AWS-RunShellScript");
        for id in command["InstanceIds"].as_array().unwrap() {
            *per_instance
                .entry(id.as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
    }
    per_instance
}

/// The cutover with `--yes`, polling every second, no width limit, plus `extra`.
pub(crate) fn cutover(emulator: &Emulator, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "--cluster",
        CLUSTER,
        "--yes",
        "--poll-interval",
        "1s",
        "--max-unavailable",
        "100%",
    ];
    args.extend_from_slice(extra);
    emulator.binary().args(args).output().unwrap()
}

#[tokio::test]
async fn every_instance_is_restarted_once_and_proven() {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::Nothing).await;
    script_results(&emulator, &scenario, None);
    let output = cutover(&emulator, &["--output", "json"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let per_instance = commands_per_instance(&emulator);
    for id in &scenario.instances {
        assert_eq!(per_instance.get(id), Some(&1), "{id}: {per_instance:?}");
    }
    assert_eq!(
        per_instance.len(),
        scenario.instances.len(),
        "nothing else was sent a command"
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["kind"], "summary");
    let instances = summary["instances"].as_array().unwrap();
    assert_eq!(instances.len(), scenario.instances.len());
    assert!(
        instances.iter().all(|i| i["state"] == "done"),
        "{instances:#?}"
    );
    // Each restarted agent was probed onto the endpoints' ENIs.
    for id in &scenario.instances {
        let verdict = &summary["verdicts"][id];
        assert_eq!(verdict["path"], "private", "{id}: {verdict:#}");
        assert_eq!(
            verdict["acs"], scenario.endpoint_addresses["ecs-agent"][0],
            "{id}"
        );
    }
    assert!(summary["requests"]["ssm:SendCommand"].as_u64().unwrap() >= 1);
    let declared: Vec<String> = privlink_restart::fleet::operations::OPERATIONS
        .iter()
        .map(|o| o.iam_action())
        .collect();
    for action in summary["requests"].as_object().unwrap().keys() {
        assert!(
            declared.contains(action),
            "{action} was sent but is not declared"
        );
    }
}

#[tokio::test]
async fn a_failed_canary_halts_and_names_the_instance() {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::Nothing).await;
    // The canary is the first instance of the first zone: the scenario's instance in
    // eu-west-1a, the only one there.
    let canary = scenario.instances[0].clone();
    script_results(&emulator, &scenario, Some(&canary));
    let output = cutover(&emulator, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("Halted: the canary wave ("), "{stdout}");
    let line = stdout.lines().find(|l| l.starts_with(&canary)).unwrap();
    assert!(
        line.contains("failed") && line.contains("acs-not-connected"),
        "{line}"
    );
    let per_instance = commands_per_instance(&emulator);
    assert_eq!(
        per_instance.keys().collect::<Vec<_>>(),
        vec![&canary],
        "nobody after the canary"
    );
}

#[tokio::test]
async fn dry_run_sends_nothing() {
    let emulator = Emulator::start();
    build(&emulator, Break::Nothing).await;
    let output = cutover(&emulator, &["--dry-run"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("Plan for cluster prod"), "{stdout}");
    // The estimate comes from a rehearsal on a simulated copy: nothing reaches AWS for it.
    assert!(stdout.contains("Estimate: about "), "{stdout}");
    assert!(commands_per_instance(&emulator).is_empty());
}

#[tokio::test]
async fn outside_its_window_with_no_wait_the_run_exits_3_untouched() {
    let emulator = Emulator::start();
    build(&emulator, Break::Nothing).await;
    // A window three days from today (UTC): closed now, whatever the day.
    let day = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .weekday()
        .wrapping_add(3);
    let name = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        [usize::try_from(day.to_monday_zero_offset()).unwrap()];
    let window = format!("{name} 02:00-05:00 UTC");
    let output = cutover(&emulator, &["--window", &window, "--no-wait"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Not started: outside the maintenance windows; the next opens at {name} "
        )) && stderr.contains("Nothing was changed."),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
    assert!(commands_per_instance(&emulator).is_empty());
    // No lease was taken and no run recorded.
    let parameters = emulator.ssm().describe_parameters().send().await.unwrap();
    assert_eq!(parameters.parameters().len(), 0, "{parameters:?}");
}

#[tokio::test]
async fn blocking_findings_stop_the_run_unless_forced() {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::MissingEndpoint("ecs-agent")).await;
    script_results(&emulator, &scenario, None);
    let output = cutover(&emulator, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("pass --force"));
    assert!(commands_per_instance(&emulator).is_empty());
    // Forced, the restarts cannot put the agents' ACS on an endpoint that does not exist:
    // under the default --verify private the canary fails on that.
    let forced = cutover(&emulator, &["--force", "--output", "json"]);
    let stdout = String::from_utf8_lossy(&forced.stdout);
    assert_eq!(forced.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("not on the endpoints after the restart: public"),
        "{stdout}"
    );
    // With --verify connected (and the failed run set aside) the restarts count, and the
    // probe still tells the truth.
    let forced = cutover(
        &emulator,
        &[
            "--force",
            "--verify",
            "connected",
            "--fresh",
            "--output",
            "json",
        ],
    );
    assert_eq!(
        forced.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    let stdout = String::from_utf8_lossy(&forced.stdout);
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["overridden"][0]["id"], "interface-endpoint-missing");
    for id in &scenario.instances {
        assert_eq!(
            summary["verdicts"][id]["path"], "public",
            "{id}: {summary:#}"
        );
    }
}

#[tokio::test]
async fn without_a_terminal_the_cutover_wants_yes() {
    let emulator = Emulator::start();
    build(&emulator, Break::Nothing).await;
    let output = emulator
        .binary()
        .args(["--cluster", CLUSTER])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("pass --yes"));
    assert!(commands_per_instance(&emulator).is_empty());
}

#[tokio::test]
async fn with_strategy_restart_an_instance_ssm_refuses_fails_and_the_others_go_on() {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::Nothing).await;
    script_results(&emulator, &scenario, None);
    let refused = scenario.instances[1].clone();
    emulator.control("/_privlink/ssm/refuse", &json!({"instanceIds": [refused]}));
    let output = cutover(
        &emulator,
        &[
            "--output",
            "json",
            "--max-failures",
            "1",
            "--strategy",
            "restart",
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    for instance in summary["instances"].as_array().unwrap() {
        if instance["instance_id"] == refused.as_str() {
            assert_eq!(instance["state"], "failed");
            assert!(
                instance["reason"]
                    .as_str()
                    .unwrap()
                    .contains("SSM refuses commands"),
                "{instance}"
            );
        } else {
            assert_eq!(instance["state"], "done", "{instance}");
        }
    }
    assert!(!commands_per_instance(&emulator).contains_key(&refused));
}

#[tokio::test]
async fn evidence_beyond_the_listed_output_is_read_whole() {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::Nothing).await;
    // A chatty host: 3,000 characters before the evidence line, so the 2,500 characters
    // ListCommandInvocations returns cut it off and the tool must ask GetCommandInvocation.
    let results: serde_json::Map<String, Value> = scenario
        .instances
        .iter()
        .map(|id| {
            let output = format!("{}\n{}", "noise ".repeat(500), evidence(true, "none"));
            (id.clone(), json!({"status": "Success", "output": output}))
        })
        .collect();
    emulator.control("/_privlink/ssm/command-results", &results.into());
    scenario.serve_probes(&emulator, AgentPath::Public, AgentPath::Endpoints);
    let output = cutover(&emulator, &["--output", "json"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let reads = summary["requests"]["ssm:GetCommandInvocation"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(
        reads,
        scenario.instances.len() as u64,
        "one whole read per instance: {summary}"
    );
}
