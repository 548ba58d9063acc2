//! The `verify` report: a line per instance (verdict and the agent's peers, then the
//! reason), the task-definition findings that still need a way out, and a bottom line
//! that claims no more than was checked; or one JSON document (docs/OUTPUT.md).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::check::render_finding;
use super::text::wrap;
use super::{Colour, JSON_SCHEMA};
use crate::inventory::Cluster;
use crate::preflight::Finding;
use crate::verify::command::VerifyReport;
use crate::verify::{Path, Verdict};

pub fn render_verify_human(report: &VerifyReport, colour: Colour) -> String {
    let mut out = String::new();
    let cluster = &report.cluster;
    let _ = writeln!(
        out,
        "{}",
        colour.paint(
            "1",
            &format!(
                "Cluster {} · {}: the path of {} agent(s)",
                cluster.name,
                cluster.region,
                report.rows.len()
            )
        )
    );
    if !report.rows.is_empty() {
        let _ = writeln!(
            out,
            "{:<21} {:<12} {:<8} agent's :443 peers",
            "instance", "zone", "verdict"
        );
    }
    for row in &report.rows {
        let verdict = &row.verdict;
        let code = match verdict.path {
            Path::Private => "32",
            Path::Public => "31",
            Path::Unknown => "33",
        };
        let _ = writeln!(
            out,
            "{:<21} {:<12} {} {}",
            row.instance_id,
            row.availability_zone.as_deref().unwrap_or("-"),
            colour.paint(code, &format!("{:<8}", verdict.path.as_str())),
            verdict.peers_summary()
        );
        for line in wrap(&evidence(verdict), "    ") {
            let _ = writeln!(out, "{line}");
        }
    }
    if !report.out_of_scope.is_empty() {
        let _ = writeln!(
            out,
            "Not checked ({}): {}",
            report.out_of_scope.len(),
            report
                .out_of_scope
                .iter()
                .map(|(id, why)| format!("{id} ({why})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !report.task_findings.is_empty() {
        let _ = writeln!(out, "\nWhat else still needs a way out once the NAT goes:");
        for finding in &report.task_findings {
            render_finding(&mut out, finding, colour);
        }
    }
    let code = if report.all_private() { "32" } else { "31" };
    let _ = writeln!(out, "\n{}", colour.paint(code, &report.bottom_line()));
    out
}

/// The reason, then the supporting evidence, in one paragraph.
fn evidence(verdict: &Verdict) -> String {
    let mut text = verdict.reason.clone();
    if let Some(websocket) = &verdict.websocket {
        text.push_str(&format!(" · last websocket {websocket}"));
    }
    if let Some(proxy) = &verdict.proxy {
        text.push_str(&format!(" · proxy {proxy}"));
    }
    // Shown for private agents too: once the NAT goes, a name that resolves publicly
    // breaks the agent's API calls or image pulls even with its websockets moved.
    if !verdict.dns_problems.is_empty() {
        text.push_str(&format!(" · DNS: {}", verdict.dns_problems.join("; ")));
    }
    text
}

#[derive(Serialize)]
struct JsonVerify<'a> {
    schema: u32,
    kind: &'static str,
    cluster: &'a Cluster,
    all_private: bool,
    summary: JsonCounts,
    bottom_line: String,
    instances: Vec<JsonRow<'a>>,
    out_of_scope: Vec<JsonOutOfScope<'a>>,
    task_findings: &'a [Finding],
    requests: &'a BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct JsonCounts {
    instances: usize,
    private: usize,
    public: usize,
    unknown: usize,
}

#[derive(Serialize)]
struct JsonRow<'a> {
    instance_id: &'a str,
    container_instance_arn: &'a str,
    availability_zone: Option<&'a str>,
    #[serde(flatten)]
    verdict: &'a Verdict,
}

#[derive(Serialize)]
struct JsonOutOfScope<'a> {
    instance_id: &'a str,
    reason: &'a str,
}

pub fn render_verify_json(report: &VerifyReport) -> String {
    let document = JsonVerify {
        schema: JSON_SCHEMA,
        kind: "verify",
        cluster: &report.cluster,
        all_private: report.all_private(),
        summary: JsonCounts {
            instances: report.rows.len(),
            private: report.count(Path::Private),
            public: report.count(Path::Public),
            unknown: report.count(Path::Unknown),
        },
        bottom_line: report.bottom_line(),
        instances: report
            .rows
            .iter()
            .map(|row| JsonRow {
                instance_id: &row.instance_id,
                container_instance_arn: &row.container_instance_arn,
                availability_zone: row.availability_zone.as_deref(),
                verdict: &row.verdict,
            })
            .collect(),
        out_of_scope: report
            .out_of_scope
            .iter()
            .map(|(id, reason)| JsonOutOfScope {
                instance_id: id,
                reason,
            })
            .collect(),
        task_findings: &report.task_findings,
        requests: &report.requests,
    };
    serde_json::to_string(&document).unwrap_or_default() + "\n"
}
