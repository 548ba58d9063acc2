//! The `check` report: a table per VPC and the findings with their fixes for people, one
//! JSON document (schema in docs/OUTPUT.md) for pipelines.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::text::{wrap, wrap_command};
use super::{Colour, JSON_SCHEMA};
use crate::inventory::{EndpointKind, Inventory};
use crate::preflight::{scope_of, EndpointState, Finding, Preflight, Severity, VpcReport};

/// Everything a `check` run found.
pub struct CheckReport<'a> {
    pub inventory: &'a Inventory,
    pub preflight: &'a Preflight,
    /// AWS requests per IAM action.
    pub requests: &'a BTreeMap<String, u64>,
}

impl CheckReport<'_> {
    fn ec2_instance_count(&self) -> usize {
        self.inventory
            .container_instances
            .iter()
            .filter(|ci| !ci.ec2_instance_id.starts_with("mi-"))
            .count()
    }

    fn in_scope_count(&self) -> usize {
        self.inventory
            .container_instances
            .iter()
            .filter(|ci| scope_of(ci).is_in_scope())
            .count()
    }
}

#[derive(Serialize)]
struct JsonCheck<'a> {
    schema: u32,
    kind: &'static str,
    ready: bool,
    cluster: &'a crate::inventory::Cluster,
    summary: JsonSummary,
    vpcs: &'a [VpcReport],
    instances: Vec<JsonInstance<'a>>,
    findings: &'a [Finding],
    requests: &'a BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct JsonSummary {
    container_instances: usize,
    in_scope: usize,
    vpcs: usize,
    errors: usize,
    warnings: usize,
    infos: usize,
}

#[derive(Serialize)]
struct JsonInstance<'a> {
    ec2_instance_id: &'a str,
    container_instance_arn: &'a str,
    status: &'a str,
    agent_version: Option<&'a str>,
    agent_connected: bool,
    vpc_id: Option<&'a str>,
    subnet_id: Option<&'a str>,
    availability_zone: Option<&'a str>,
    ssm_ping_status: Option<&'a str>,
    in_scope: bool,
    skip_reason: Option<String>,
}

pub fn render_check_json(report: &CheckReport) -> String {
    let inventory = report.inventory;
    let preflight = report.preflight;
    let instances = inventory
        .container_instances
        .iter()
        .map(|ci| {
            let ec2 = inventory.ec2_of(ci);
            let scope = scope_of(ci);
            JsonInstance {
                ec2_instance_id: &ci.ec2_instance_id,
                container_instance_arn: &ci.arn,
                status: &ci.status,
                agent_version: ci.agent_version.as_deref(),
                agent_connected: ci.agent_connected,
                vpc_id: ec2.map(|e| e.vpc_id.as_str()),
                subnet_id: ec2.map(|e| e.subnet_id.as_str()),
                availability_zone: ec2.map(|e| e.availability_zone.as_str()),
                ssm_ping_status: inventory
                    .ssm_instances
                    .as_ref()
                    .ok()
                    .and_then(|ssm| ssm.get(&ci.ec2_instance_id))
                    .map(|s| s.ping_status.as_str()),
                in_scope: scope.is_in_scope(),
                skip_reason: scope.reason(),
            }
        })
        .collect();
    let document = JsonCheck {
        schema: JSON_SCHEMA,
        kind: "check",
        ready: preflight.is_ready(),
        cluster: &inventory.cluster,
        summary: JsonSummary {
            container_instances: inventory.container_instances.len(),
            in_scope: report.in_scope_count(),
            vpcs: preflight.vpcs.len(),
            errors: preflight.count(Severity::Error),
            warnings: preflight.count(Severity::Warning),
            infos: preflight.count(Severity::Info),
        },
        vpcs: &preflight.vpcs,
        instances,
        findings: &preflight.findings,
        requests: report.requests,
    };
    // Serializing plain structs of strings, numbers and maps with string keys cannot fail.
    serde_json::to_string_pretty(&document).unwrap_or_default() + "\n"
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub fn render_check_human(report: &CheckReport, colour: Colour) -> String {
    let inventory = report.inventory;
    let preflight = report.preflight;
    let cluster = &inventory.cluster;
    let mut out = String::new();
    let account = cluster
        .account
        .as_deref()
        .map(|a| format!(" · account {a}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{}",
        colour.paint(
            "1",
            &format!("Cluster {} · {}{account}", cluster.name, cluster.region)
        )
    );
    let _ = writeln!(
        out,
        "{} container instances, {} in scope, in {}",
        report.ec2_instance_count(),
        report.in_scope_count(),
        plural(preflight.vpcs.len(), "VPC", "VPCs")
    );
    for vpc in &preflight.vpcs {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{}  {} · {}",
            colour.paint("1", &vpc.id),
            plural(vpc.instances, "instance", "instances"),
            vpc.availability_zones.join(" ")
        );
        for endpoint in &vpc.endpoints {
            let (mark, code) = match endpoint.state {
                EndpointState::Ok => ("✓", "32"),
                EndpointState::Unknown => ("?", "33"),
                _ => ("✗", "31"),
            };
            let name = match endpoint.kind {
                EndpointKind::Gateway => format!("{} (gateway)", endpoint.service),
                _ => endpoint.service.to_string(),
            };
            let state = match endpoint.state {
                EndpointState::Ok => "",
                EndpointState::Missing => "missing",
                EndpointState::Unavailable => "not available",
                EndpointState::NoPrivateDns => "private DNS off",
                EndpointState::NotAssociated => "not on every instance subnet's route table",
                EndpointState::Unknown => "could not be read",
            };
            let line = format!(
                "{name:<16} {:<24} {state}",
                endpoint.endpoint_id.as_deref().unwrap_or("-")
            );
            let _ = writeln!(out, "  {} {}", colour.paint(code, mark), line.trim_end());
        }
    }
    if !preflight.findings.is_empty() {
        let _ = writeln!(out);
    }
    for finding in &preflight.findings {
        render_finding(&mut out, finding, colour);
    }
    let _ = writeln!(out);
    let (errors, warnings, infos) = (
        preflight.count(Severity::Error),
        preflight.count(Severity::Warning),
        preflight.count(Severity::Info),
    );
    let counts = format!(
        "{}, {}, {}",
        plural(errors, "blocking finding", "blocking findings"),
        plural(warnings, "warning", "warnings"),
        plural(infos, "note", "notes")
    );
    let verdict = if report.ec2_instance_count() == 0 && preflight.is_ready() {
        colour.paint(
            "32",
            &format!(
                "Nothing to restart: cluster {} has no EC2 container instances.",
                cluster.name
            ),
        )
    } else if preflight.is_ready() {
        colour.paint("32", &format!("Ready for the cutover: {counts}."))
    } else {
        colour.paint(
            "31",
            &format!("Not ready: {counts}. Fix the errors above, then run check again."),
        )
    };
    let _ = writeln!(out, "{verdict}");
    out
}

/// One finding: its severity, id and VPC, the summary, and the fix (commands wrapped).
pub(super) fn render_finding(out: &mut String, finding: &Finding, colour: Colour) {
    let (mark, code, label) = match finding.severity {
        Severity::Error => ("✗", "31", "error"),
        Severity::Warning => ("!", "33", "warning"),
        Severity::Info => ("i", "36", "info"),
    };
    let scope = finding
        .vpc_id
        .as_deref()
        .map(|v| format!("  {v}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{} {} {}{scope}",
        colour.paint(code, mark),
        colour.paint(code, label),
        finding.id
    );
    for line in wrap(&finding.summary, "    ") {
        let _ = writeln!(out, "{line}");
    }
    if let Some(fix) = &finding.fix {
        for (n, command) in fix.lines().enumerate() {
            let first = if n == 0 { "    fix: " } else { "         " };
            let lines = if command.starts_with("aws ") {
                wrap_command(command, first, "           ")
            } else {
                let mut lines = wrap(command, "         ");
                if let Some(head) = lines.first_mut() {
                    *head = format!("{first}{}", head.trim_start());
                }
                lines
            };
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preflight::testkit::*;
    use crate::preflight::{ids, run, PreflightOptions};

    fn render(inventory: &Inventory, colour: Colour) -> (String, String) {
        let preflight = run(inventory, PreflightOptions::default());
        let requests = BTreeMap::from([("ecs:DescribeClusters".to_string(), 1)]);
        let report = CheckReport {
            inventory,
            preflight: &preflight,
            requests: &requests,
        };
        (
            render_check_human(&report, colour),
            render_check_json(&report),
        )
    }

    #[test]
    fn human_report_of_a_broken_cluster_names_finding_resource_and_fix() {
        let mut inventory = ready_inventory();
        remove_endpoint(&mut inventory, "ecs-agent");
        let (human, _) = render(&inventory, Colour::Off);
        assert!(
            human.contains("Cluster prod · eu-west-1 · account 123456789012"),
            "{human}"
        );
        assert!(
            human.contains("  ✗ ecs-agent        -                        missing"),
            "{human}"
        );
        assert!(
            human.contains("  ✓ ecr.dkr          vpce-ecr.dkr"),
            "{human}"
        );
        assert!(
            human.contains(&format!(
                "✗ error {}  vpc-1",
                ids::INTERFACE_ENDPOINT_MISSING
            )),
            "{human}"
        );
        assert!(
            human.contains("    fix: aws ec2 create-vpc-endpoint"),
            "{human}"
        );
        assert!(human.contains("Not ready: 1 blocking finding"), "{human}");
        assert!(!human.contains('\x1b'), "no colour when off");
        assert!(human.lines().all(|l| l.chars().count() <= 100), "{human}");
    }

    #[test]
    fn human_report_of_a_ready_cluster_says_so() {
        let (human, _) = render(&ready_inventory(), Colour::Off);
        assert!(
            human.ends_with("Ready for the cutover: 0 blocking findings, 0 warnings, 0 notes.\n"),
            "{human}"
        );
        let (coloured, _) = render(&ready_inventory(), Colour::On);
        assert!(coloured.contains("\x1b[32m✓\x1b[0m"));
    }

    #[test]
    fn json_report_is_versioned_and_names_findings() {
        let mut inventory = ready_inventory();
        remove_endpoint(&mut inventory, "ecs-agent");
        inventory
            .container_instances
            .push(container_instance("mi-0abc"));
        let (_, json) = render(&inventory, Colour::Off);
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(doc["schema"], 1);
        assert_eq!(doc["kind"], "check");
        assert_eq!(doc["ready"], false);
        assert_eq!(doc["cluster"]["account"], "123456789012");
        assert_eq!(doc["summary"]["container_instances"], 4);
        assert_eq!(doc["summary"]["in_scope"], 3);
        assert_eq!(doc["summary"]["errors"], 1);
        let finding = doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == ids::INTERFACE_ENDPOINT_MISSING)
            .unwrap();
        assert_eq!(finding["severity"], "error");
        assert_eq!(finding["vpc_id"], "vpc-1");
        let agent = doc["vpcs"][0]["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["service"] == "ecs-agent")
            .unwrap();
        assert_eq!(agent["state"], "missing");
        let anywhere = doc["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["ec2_instance_id"] == "mi-0abc")
            .unwrap();
        assert_eq!(anywhere["in_scope"], false);
        assert_eq!(doc["requests"]["ecs:DescribeClusters"], 1);
    }

    #[test]
    fn fargate_only_cluster_says_nothing_to_restart() {
        let mut inventory = ready_inventory();
        inventory.container_instances.clear();
        inventory.vpcs.clear();
        let (human, _) = render(&inventory, Colour::Off);
        assert!(
            human.contains("Nothing to restart: cluster prod has no EC2 container instances."),
            "{human}"
        );
    }
}
