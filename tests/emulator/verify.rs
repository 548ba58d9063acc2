//! Proof of the cutover end to end: the real binary's `verify`, and the cutover's use of
//! the probe, against the emulator, whose launcher answers each instance's probe with the
//! record its host would print.

use serde_json::{json, Value};

use crate::cutover::{commands_per_instance, cutover, script_results};
use crate::harness::Emulator;
use crate::scenario::{build, AgentPath, Break, Scenario, CLUSTER};

/// instance id → what its probe prints (no entry: the probe prints nothing).
fn probes(emulator: &Emulator, scenario: &Scenario, paths: &[Option<AgentPath>]) {
    let results: serde_json::Map<String, Value> = scenario
        .instances
        .iter()
        .zip(paths)
        .filter_map(|(id, path)| {
            let output = scenario.probe_record((*path)?);
            Some((id.clone(), json!({"status": "Success", "output": output})))
        })
        .collect();
    emulator.control("/_privlink/ssm/probe-results", &results.into());
}

fn probe_commands(emulator: &Emulator) -> Vec<Value> {
    emulator.get("/_privlink/ssm/commands")["Commands"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["Probe"] == true)
        .cloned()
        .collect()
}

#[tokio::test]
async fn verify_judges_each_agent_and_passes_only_when_all_are_private() {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::Nothing).await;
    assert_eq!(scenario.instances.len(), 4);
    use AgentPath::{Endpoints, Public};
    probes(
        &emulator,
        &scenario,
        &[Some(Endpoints), Some(Public), None, Some(Endpoints)],
    );
    let output = emulator
        .binary()
        .args(["verify", "--cluster", CLUSTER, "--output", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["kind"], "verify");
    assert_eq!(report["all_private"], false);
    let path_of = |id: &str| {
        report["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["instance_id"] == id)
            .unwrap_or_else(|| panic!("{id} missing from {report:#}"))
            .clone()
    };
    let expected = ["private", "public", "unknown", "private"];
    for (id, path) in scenario.instances.iter().zip(expected) {
        assert_eq!(path_of(id)["path"], path, "{id}: {:#}", path_of(id));
    }
    let public = path_of(&scenario.instances[1]);
    assert!(
        public["reason"]
            .as_str()
            .unwrap()
            .contains("ecs-t-1.eu-west-1.amazonaws.com"),
        "{public:#}"
    );
    let unknown = path_of(&scenario.instances[2]);
    assert!(
        unknown["reason"].as_str().unwrap().contains("no record"),
        "{unknown:#}"
    );
    assert_eq!(
        report["bottom_line"],
        "1 of 4 agents still use public ECS endpoints; 1 of 4 could not be proven either way (see each reason). Restart them: `privlink-restart --cluster prod` (docs/VERIFY.md says what each reason means)."
    );
    // One probe command for the four (SSM takes 50 per command), nothing else sent.
    let commands = emulator.get("/_privlink/ssm/commands")["Commands"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(commands.len(), 1, "{commands:#?}");
    assert_eq!(commands[0]["Probe"], true);
    assert_eq!(commands[0]["InstanceIds"].as_array().unwrap().len(), 4);

    // Every agent moved: exit 0 and a bottom line that says so, and no more.
    probes(&emulator, &scenario, &[Some(Endpoints); 4]);
    let output = emulator
        .binary()
        .args(["verify", "--cluster", CLUSTER])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("All 4 agents use the endpoints."),
        "{stdout}"
    );
    for id in &scenario.instances {
        let line = stdout.lines().find(|l| l.starts_with(id.as_str())).unwrap();
        assert!(line.contains("private"), "{line}");
        assert!(line.contains("(ecs-agent endpoint)"), "{line}");
    }
}

#[tokio::test]
async fn an_instance_ssm_cannot_reach_is_unknown_never_assumed_private() {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::Nothing).await;
    probes(&emulator, &scenario, &[Some(AgentPath::Endpoints); 4]);
    let unmanaged = scenario.instances[0].clone();
    let managed: Vec<Value> = scenario.instances[1..]
        .iter()
        .map(|i| json!({"InstanceId": i, "PingStatus": "Online", "PlatformType": "Linux"}))
        .collect();
    emulator.control(
        "/_privlink/ssm/managed-instances",
        &json!({"instances": managed, "replace": true}),
    );
    let output = emulator
        .binary()
        .args(["verify", "--cluster", CLUSTER, "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let row = report["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["instance_id"] == unmanaged.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["path"], "unknown", "{row:#}");
    assert!(
        row["reason"]
            .as_str()
            .unwrap()
            .contains("SSM does not manage the instance"),
        "{row:#}"
    );
    let probed: Vec<String> = probe_commands(&emulator)
        .iter()
        .flat_map(|c| c["InstanceIds"].as_array().unwrap().clone())
        .filter_map(|i| i.as_str().map(str::to_string))
        .collect();
    assert!(!probed.contains(&unmanaged), "{probed:?}");
}

#[tokio::test]
async fn the_cutover_skips_agents_already_on_the_endpoints() {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::Nothing).await;
    script_results(&emulator, &scenario, None);
    // Two agents were restarted after the endpoints came: they are on them already.
    use AgentPath::{Endpoints, Public};
    let results: serde_json::Map<String, Value> = scenario
        .instances
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let before = if n < 2 { Endpoints } else { Public };
            let result = json!({
                "status": "Success",
                "output": scenario.probe_record(before),
                "outputAfterRestart": scenario.probe_record(Endpoints),
            });
            (id.clone(), result)
        })
        .collect();
    emulator.control("/_privlink/ssm/probe-results", &results.into());
    let output = cutover(&emulator, &["--output", "json"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("2 agent(s) already use the endpoints and are skipped"),
        "{stderr}"
    );
    let sent = commands_per_instance(&emulator);
    assert_eq!(
        sent.keys().cloned().collect::<Vec<_>>(),
        {
            let mut rest = scenario.instances[2..].to_vec();
            rest.sort();
            rest
        },
        "only the agents on the public path were restarted"
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    for id in &scenario.instances {
        assert_eq!(
            summary["verdicts"][id]["path"], "private",
            "{id}: {summary:#}"
        );
    }
}

#[tokio::test]
async fn a_canary_still_public_after_its_restart_halts_the_rollout() {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::Nothing).await;
    script_results(&emulator, &scenario, None);
    // The agents stay on the public hosts whatever is done (their backend pinned).
    scenario.serve_probes(&emulator, AgentPath::Public, AgentPath::Public);
    let output = cutover(&emulator, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("Halted: the canary wave ("), "{stdout}");
    let canary = &scenario.instances[0];
    let line = stdout
        .lines()
        .find(|l| l.starts_with(canary.as_str()))
        .unwrap();
    assert!(
        line.contains("failed") && line.contains("not on the endpoints after the restart: public"),
        "{line}"
    );
    assert_eq!(
        commands_per_instance(&emulator).keys().collect::<Vec<_>>(),
        vec![canary],
        "nobody after the canary"
    );
}
