//! `check` on a ready cluster and on one broken cluster per error-level check: the exit
//! code, and the finding id with the offending resource in human and JSON output alike.

use serde_json::Value;

use crate::harness::Emulator;
use crate::scenario::{build, Break, Scenario, CLUSTER};

struct Run {
    code: i32,
    human: String,
    json: Value,
}

fn check(emulator: &Emulator) -> Run {
    let human = emulator
        .binary()
        .args(["check", "--cluster", CLUSTER])
        .output()
        .expect("run check");
    let json = emulator
        .binary()
        .args(["check", "--cluster", CLUSTER, "--output", "json"])
        .output()
        .expect("run check");
    let stdout = String::from_utf8_lossy(&human.stdout).to_string();
    assert_eq!(
        human.status.code(),
        json.status.code(),
        "human and JSON runs disagree:\n{stdout}"
    );
    let doc: Value = serde_json::from_slice(&json.stdout).unwrap_or_else(|e| {
        panic!(
            "check --output json printed no JSON ({e}): {}",
            String::from_utf8_lossy(&json.stderr)
        )
    });
    Run {
        code: human.status.code().unwrap_or(-1),
        human: stdout,
        json: doc,
    }
}

#[tokio::test]
async fn ready_cluster_passes() {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::Nothing).await;
    let run = check(&emulator);
    assert_eq!(run.code, 0, "{}", run.human);
    assert!(
        run.human
            .contains("Ready for the cutover: 0 blocking findings"),
        "{}",
        run.human
    );
    assert!(run.human.contains(&scenario.vpc), "{}", run.human);
    assert!(
        run.human.contains(&format!(
            "✓ ecs-agent        {}",
            scenario.endpoints["ecs-agent"]
        )),
        "{}",
        run.human
    );
    assert_eq!(run.json["schema"], 1);
    assert_eq!(run.json["ready"], true);
    assert_eq!(run.json["summary"]["container_instances"], 4);
    assert_eq!(run.json["summary"]["in_scope"], 4);
    assert_eq!(
        run.json["vpcs"][0]["availability_zones"],
        serde_json::json!(["eu-west-1a", "eu-west-1b", "eu-west-1c"])
    );
    let errors: Vec<&Value> = run.json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

/// Asserts exit 1 and that `finding` names `resource` in both outputs.
fn assert_blocked(run: &Run, finding: &str, resource: &str) {
    assert_eq!(run.code, 1, "expected exit 1 for {finding}:\n{}", run.human);
    // The finding's own lines: from its "✗ error ID" heading to the next heading.
    let mut sections: Vec<String> = Vec::new();
    for line in run.human.lines() {
        let heading = ["✗ ", "! ", "i "].iter().any(|mark| line.starts_with(mark));
        match sections.last_mut() {
            Some(section) if !heading && line.starts_with("  ") => {
                section.push('\n');
                section.push_str(line);
            }
            _ => sections.push(line.to_string()),
        }
    }
    sections.retain(|s| s.starts_with(&format!("✗ error {finding}")));
    assert!(
        !sections.is_empty(),
        "no {finding} error in the human report:\n{}",
        run.human
    );
    assert!(
        sections.iter().any(|s| s.contains(resource)),
        "{finding} does not name {resource}:\n{}",
        run.human
    );
    let findings = run.json["findings"].as_array().expect("findings array");
    let matching: Vec<&Value> = findings
        .iter()
        .filter(|f| f["id"] == finding && f["severity"] == "error")
        .collect();
    assert!(!matching.is_empty(), "no {finding} in JSON: {findings:#?}");
    assert!(
        matching.iter().any(|f| f["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains(resource))),
        "{finding} does not name {resource} in JSON: {matching:#?}"
    );
    assert_eq!(run.json["ready"], false);
}

async fn broken(brk: Break) -> (Scenario, Run) {
    let emulator = Emulator::start();
    let scenario = build(&emulator, brk).await;
    let run = check(&emulator);
    (scenario, run)
}

#[tokio::test]
async fn missing_ecs_agent_endpoint_blocks() {
    let (scenario, run) = broken(Break::MissingEndpoint("ecs-agent")).await;
    assert_blocked(&run, "interface-endpoint-missing", &scenario.vpc);
    assert!(
        run.human.contains("no ecs-agent interface endpoint"),
        "{}",
        run.human
    );
    assert!(
        run.human.contains("fix: aws ec2 create-vpc-endpoint"),
        "{}",
        run.human
    );
}

#[tokio::test]
async fn missing_ecr_dkr_endpoint_blocks() {
    let (scenario, run) = broken(Break::MissingEndpoint("ecr.dkr")).await;
    assert_blocked(&run, "interface-endpoint-missing", &scenario.vpc);
    assert!(
        run.human.contains("no ecr.dkr interface endpoint"),
        "{}",
        run.human
    );
}

#[tokio::test]
async fn shared_endpoints_turn_a_missing_endpoint_into_a_warning() {
    let emulator = Emulator::start();
    build(&emulator, Break::MissingEndpoint("ecs")).await;
    let output = emulator
        .binary()
        .args(["check", "--cluster", CLUSTER, "--shared-endpoints"])
        .output()
        .unwrap();
    let human = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{human}");
    assert!(
        human.contains("warning interface-endpoint-shared"),
        "{human}"
    );
}

#[tokio::test]
async fn private_dns_off_blocks() {
    let (scenario, run) = broken(Break::PrivateDnsOff("ecs-telemetry")).await;
    assert_blocked(
        &run,
        "interface-endpoint-private-dns-disabled",
        &scenario.endpoints["ecs-telemetry"],
    );
}

#[tokio::test]
async fn missing_s3_gateway_blocks() {
    let (scenario, run) = broken(Break::NoS3Gateway).await;
    assert_blocked(&run, "s3-gateway-endpoint-missing", &scenario.vpc);
}

#[tokio::test]
async fn s3_gateway_missing_the_main_route_table_blocks() {
    let (scenario, run) = broken(Break::S3GatewayOnlyOnExplicitTable).await;
    assert_blocked(
        &run,
        "s3-gateway-route-table-missing",
        &scenario.main_route_table,
    );
    assert!(
        !run.human
            .contains(&format!("route table {}", scenario.explicit_route_table)),
        "{}",
        run.human
    );
}

#[tokio::test]
async fn dns_support_off_blocks() {
    let (scenario, run) = broken(Break::DnsSupportOff).await;
    assert_blocked(&run, "vpc-dns-support-disabled", &scenario.vpc);
}

#[tokio::test]
async fn dns_hostnames_off_blocks() {
    let (scenario, run) = broken(Break::DnsHostnamesOff).await;
    assert_blocked(&run, "vpc-dns-hostnames-disabled", &scenario.vpc);
}

#[tokio::test]
async fn endpoint_security_group_without_443_from_instances_blocks() {
    let (scenario, run) = broken(Break::EndpointIngressClosed).await;
    assert_blocked(&run, "endpoint-sg-ingress-443", &scenario.endpoint_sg);
    assert_blocked(&run, "endpoint-sg-ingress-443", &scenario.instances[0]);
}

#[tokio::test]
async fn instance_egress_without_the_endpoints_blocks() {
    let (scenario, run) = broken(Break::EgressOnlyToS3).await;
    assert_blocked(
        &run,
        "instance-sg-egress-endpoint",
        &scenario.endpoints["ecs-agent"],
    );
    assert!(
        !run.human.contains("instance-sg-egress-s3"),
        "{}",
        run.human
    );
}

#[tokio::test]
async fn instance_egress_without_s3_blocks() {
    let (scenario, run) = broken(Break::EgressOnlyToEndpoints).await;
    assert_blocked(&run, "instance-sg-egress-s3", &scenario.instances[1]);
    assert!(
        !run.human.contains("instance-sg-egress-endpoint"),
        "{}",
        run.human
    );
}

#[tokio::test]
async fn old_agent_blocks_and_names_the_instance() {
    let (scenario, run) = broken(Break::OldAgent).await;
    assert_blocked(&run, "agent-too-old", &scenario.instances[0]);
    assert!(run.human.contains("(1.20.0)"), "{}", run.human);
}

#[tokio::test]
async fn out_of_scope_and_ssm_states_are_reported_not_blocking() {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::Nothing).await;
    let agents = serde_json::json!({
        scenario.instances[0].clone(): {"agentUpdateStatus": "STAGING"},
        scenario.instances[1].clone(): {"status": "DRAINING", "agentConnected": false},
    });
    emulator.control("/_privlink/ecs/agent-state", &agents);
    emulator.control(
        "/_privlink/ssm/managed-instances",
        &serde_json::json!({"instances": [{"InstanceId": scenario.instances[2], "PingStatus": "ConnectionLost"}]}),
    );
    let run = check(&emulator);
    assert_eq!(run.code, 0, "{}", run.human);
    let ids: Vec<&str> = run.json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    for expected in [
        "instance-out-of-scope",
        "instance-draining",
        "agent-disconnected",
        "ssm-not-online",
    ] {
        assert!(ids.contains(&expected), "{expected} missing from {ids:?}");
    }
    assert_eq!(run.json["summary"]["in_scope"], 3);
}

#[tokio::test]
async fn custom_dns_servers_warn_without_blocking() {
    let (scenario, run) = broken(Break::CustomDnsServers).await;
    assert_eq!(run.code, 0, "{}", run.human);
    let finding = run.json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "dhcp-custom-dns-servers")
        .cloned();
    let finding = finding.unwrap_or_else(|| panic!("no DHCP warning: {}", run.human));
    assert_eq!(finding["severity"], "warning");
    assert_eq!(
        finding["resources"],
        serde_json::json!([scenario.vpc, "10.0.0.53"])
    );
}

#[tokio::test]
async fn a_fact_that_cannot_be_read_blocks_naming_the_action() {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::Nothing).await;
    emulator.control(
        "/_privlink/faults",
        &serde_json::json!({
            "ec2:DescribeNetworkAcls": {"status": 403, "code": "UnauthorizedOperation", "message": "not authorized"},
            "ssm:DescribeInstanceInformation": {"status": 400, "code": "AccessDeniedException", "message": "denied"},
        }),
    );
    let run = check(&emulator);
    assert_blocked(&run, "facts-unreadable", &scenario.vpc);
    assert!(
        run.human.contains("could not read ec2:DescribeNetworkAcls"),
        "{}",
        run.human
    );
    assert!(run.human.contains("UnauthorizedOperation"), "{}", run.human);
    assert!(
        run.human
            .contains("could not read ssm:DescribeInstanceInformation"),
        "{}",
        run.human
    );
    // Without the SSM answer nothing is claimed about SSM reachability either way.
    assert!(!run.human.contains("ssm-not-online"), "{}", run.human);
}

#[tokio::test]
async fn a_cluster_that_cannot_be_listed_is_an_access_error() {
    let emulator = Emulator::start();
    build(&emulator, Break::Nothing).await;
    emulator.control(
        "/_privlink/faults",
        &serde_json::json!({"ecs:DescribeClusters": {"status": 400, "code": "AccessDeniedException", "message": "no"}}),
    );
    let output = emulator
        .binary()
        .args(["check", "--cluster", CLUSTER])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("ecs:DescribeClusters was denied on prod"),
        "{stderr}"
    );
    assert!(stderr.contains("iam-policy"), "{stderr}");
}

#[tokio::test]
async fn endpoint_ingress_through_a_customer_prefix_list_passes() {
    let (_, run) = broken(Break::IngressByPrefixList).await;
    assert_eq!(run.code, 0, "{}", run.human);
}

#[tokio::test]
async fn warning_level_checks_report_without_blocking() {
    let (scenario, run) = broken(Break::Warnings).await;
    assert_eq!(run.code, 0, "{}", run.human);
    let findings = run.json["findings"].as_array().unwrap();
    let of = |id: &str| -> Vec<&Value> { findings.iter().filter(|f| f["id"] == id).collect() };
    let named = |f: &Value, resource: &str| {
        f["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == resource)
    };

    let acl = of("network-acl-blocks-443");
    assert!(!acl.is_empty(), "{}", run.human);
    assert!(acl.iter().all(|f| f["severity"] == "warning"
        && f["summary"].as_str().unwrap().contains("outbound TCP 443")));
    let policy = of("endpoint-policy-denies");
    assert_eq!(policy.len(), 2, "{policy:#?}");
    assert!(policy.iter().all(|f| named(f, &scenario.endpoints["s3"])));
    let az = of("interface-endpoint-az-missing");
    assert_eq!(az.len(), 1, "{az:#?}");
    assert!(named(az[0], &scenario.endpoints["ecr.dkr"]) && named(az[0], "eu-west-1c"));
    let image = of("task-image-outside-private-ecr");
    assert_eq!(image.len(), 1);
    assert!(image[0]["summary"].as_str().unwrap().contains("nginx:1.27"));
    for id in [
        "network-acl-blocks-443",
        "endpoint-policy-denies",
        "interface-endpoint-az-missing",
    ] {
        assert!(
            run.human.contains(&format!("! warning {id}")),
            "{id} missing:\n{}",
            run.human
        );
    }
}

#[tokio::test]
async fn endpoints_that_are_not_available_block() {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::Nothing).await;
    let (agent, s3) = (&scenario.endpoints["ecs-agent"], &scenario.endpoints["s3"]);
    emulator.control(
        "/_privlink/ec2/endpoint-state",
        &serde_json::json!({agent: "pending", s3: "failed"}),
    );
    let run = check(&emulator);
    assert_blocked(&run, "interface-endpoint-unavailable", agent);
    assert_blocked(&run, "s3-gateway-endpoint-unavailable", s3);
    assert!(
        run.human.contains("is pending, not available"),
        "{}",
        run.human
    );
}

#[tokio::test]
async fn unreadable_agent_version_blocks() {
    let emulator = Emulator::start();
    let scenario = build(&emulator, Break::Nothing).await;
    let instance = &scenario.instances[2];
    emulator.control(
        "/_privlink/ecs/agent-state",
        &serde_json::json!({instance: {"agentVersion": "unknown"}}),
    );
    let run = check(&emulator);
    assert_blocked(&run, "agent-version-unknown", instance);
}
