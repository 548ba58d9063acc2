//! `privlink-restart verify`: probe every in-scope instance SSM can reach, judge each, and
//! say no more than was checked. Instances SSM cannot reach are listed `unknown` with the
//! reason, never assumed private.

use std::collections::BTreeMap;

use super::probing::{ProbeConfig, ProbeSite, Prober};
use super::verdict::{Path, Verdict};
use crate::fleet::{Fleet, FleetError};
use crate::inventory::{Cluster, Inventory, Platform};
use crate::preflight::{self, scope_of, Finding, InstanceScope, PreflightOptions};

/// What `verify` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyPlan {
    pub cluster: String,
    pub preflight: PreflightOptions,
    pub probe: ProbeConfig,
}

/// One instance's line in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyRow {
    pub instance_id: String,
    pub container_instance_arn: String,
    pub availability_zone: Option<String>,
    pub verdict: Verdict,
}

/// Everything a `verify` run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub cluster: Cluster,
    pub rows: Vec<VerifyRow>,
    /// Container instances left out (ECS Anywhere, not ACTIVE or DRAINING: not in the
    /// cluster's VPCs, or not running an agent for it), with why.
    pub out_of_scope: Vec<(String, String)>,
    /// The preflight's task-definition findings: what still needs a way out once the NAT
    /// gateway goes, whatever the agents do.
    pub task_findings: Vec<Finding>,
    pub requests: BTreeMap<String, u64>,
}

impl VerifyReport {
    pub fn count(&self, path: Path) -> usize {
        self.rows.iter().filter(|r| r.verdict.path == path).count()
    }

    /// Every instance checked is private (an empty cluster has nothing off the path).
    pub fn all_private(&self) -> bool {
        self.count(Path::Private) == self.rows.len()
    }

    /// The report's bottom line: what was proven, and nothing more.
    pub fn bottom_line(&self) -> String {
        let total = self.rows.len();
        let (public, unknown) = (self.count(Path::Public), self.count(Path::Unknown));
        let mut line = if total == 0 {
            format!(
                "No EC2 container instance in cluster {} to verify.",
                self.cluster.name
            )
        } else if self.all_private() {
            format!("All {total} agents use the endpoints.")
        } else {
            let mut parts = Vec::new();
            if public > 0 {
                parts.push(format!(
                    "{public} of {total} agents still use public ECS endpoints"
                ));
            }
            if unknown > 0 {
                parts.push(format!(
                    "{unknown} of {total} could not be proven either way (see each reason)"
                ));
            }
            let mut line = format!("{}.", parts.join("; "));
            if public > 0 {
                line.push_str(&format!(
                    " Restart them: `privlink-restart --cluster {}` (docs/VERIFY.md says what each reason means).",
                    self.cluster.name
                ));
            }
            line
        };
        if !self.task_findings.is_empty() {
            line.push_str(&format!(
                " {} task-definition finding(s) still need a way out: see the findings above.",
                self.task_findings.len()
            ));
        }
        line
    }
}

/// Discovers the cluster, probes it and judges every in-scope instance. Only a failure to
/// reach AWS or read the cluster at all is an error (exit 2).
pub async fn verify<F: Fleet>(fleet: &F, plan: &VerifyPlan) -> Result<VerifyReport, FleetError> {
    let inventory = fleet.discover(&plan.cluster).await?;
    let checked = preflight::run(&inventory, plan.preflight);
    let site = ProbeSite::of(&inventory, plan.preflight.shared_endpoints);
    let (probed, unreachable, out_of_scope) = sort_instances(&inventory);
    let prober = Prober {
        fleet,
        site: &site,
        config: plan.probe,
    };
    let mut verdicts = prober.verdicts(&probed).await?;
    for (id, why) in unreachable {
        verdicts.insert(
            id,
            Verdict::unprobed(format!("not probed: {why}; its path cannot be checked")),
        );
    }
    let rows = inventory
        .container_instances
        .iter()
        .filter_map(|ci| {
            let verdict = verdicts.remove(&ci.ec2_instance_id)?;
            Some(VerifyRow {
                instance_id: ci.ec2_instance_id.clone(),
                container_instance_arn: ci.arn.clone(),
                availability_zone: inventory
                    .ec2_of(ci)
                    .map(|ec2| ec2.availability_zone.clone()),
                verdict,
            })
        })
        .collect();
    Ok(VerifyReport {
        cluster: inventory.cluster.clone(),
        rows,
        out_of_scope,
        task_findings: checked
            .findings
            .into_iter()
            .filter(|f| f.id.starts_with("task-"))
            .collect(),
        requests: fleet.request_counts(),
    })
}

/// In-scope instances SSM can reach (to probe), those it cannot (with why), and the
/// container instances out of scope (with why).
#[allow(clippy::type_complexity)]
fn sort_instances(
    inventory: &Inventory,
) -> (
    Vec<(String, Platform)>,
    Vec<(String, String)>,
    Vec<(String, String)>,
) {
    let (mut probed, mut unreachable, mut out_of_scope) = (Vec::new(), Vec::new(), Vec::new());
    for ci in &inventory.container_instances {
        let id = ci.ec2_instance_id.clone();
        // The probe only reads: an instance whose agent is updating is probed too (it
        // is behind the same NAT), unlike in the cutover, which does not restart it.
        match scope_of(ci) {
            InstanceScope::InScope | InstanceScope::AgentUpdating(_) => {}
            scope => {
                out_of_scope.push((id, scope.reason().unwrap_or_default()));
                continue;
            }
        }
        match ssm_unreachable(inventory, &id) {
            Some(why) => unreachable.push((id, why)),
            None => probed.push((id, ci.platform)),
        }
    }
    (probed, unreachable, out_of_scope)
}

/// Why SSM cannot run the probe on the instance, if it cannot. An unreadable SSM list
/// is tried anyway: SSM itself then says which instances it refuses.
pub fn ssm_unreachable(inventory: &Inventory, instance_id: &str) -> Option<String> {
    let ssm = inventory.ssm_instances.as_ref().ok()?;
    match ssm.get(instance_id) {
        None => Some("SSM does not manage the instance".into()),
        Some(record) if record.ping_status != "Online" => {
            Some(format!("SSM ping is {}", record.ping_status))
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::fleet::sim::{Fault, Latencies, SimFleet, SimInstance};
    use crate::report::{render_verify_human, render_verify_json, Colour};

    fn plan() -> VerifyPlan {
        VerifyPlan {
            cluster: "sim".into(),
            preflight: PreflightOptions::default(),
            probe: ProbeConfig::default(),
        }
    }

    fn sim(instances: Vec<SimInstance>) -> SimFleet {
        SimFleet::new(
            instances,
            Latencies::default(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn each_instance_gets_a_verdict_and_the_bottom_line_claims_no_more() {
        let fleet = sim(vec![
            SimInstance::healthy("i-1", "eu-west-1a").already_private(),
            SimInstance::healthy("i-2", "eu-west-1b"),
            SimInstance::healthy("i-3", "eu-west-1c").with_fault(Fault::SsmOffline),
        ]);
        let report = verify(&fleet, &plan()).await.unwrap();
        let paths: Vec<(&str, Path)> = report
            .rows
            .iter()
            .map(|r| (r.instance_id.as_str(), r.verdict.path))
            .collect();
        assert_eq!(
            paths,
            [
                ("i-1", Path::Private),
                ("i-2", Path::Public),
                ("i-3", Path::Unknown)
            ]
        );
        assert!(report.rows[2]
            .verdict
            .reason
            .contains("not probed: SSM does not manage the instance"));
        assert!(!report.all_private());
        assert_eq!(
            report.bottom_line(),
            "1 of 3 agents still use public ECS endpoints; 1 of 3 could not be proven either way (see each reason). Restart them: `privlink-restart --cluster sim` (docs/VERIFY.md says what each reason means)."
        );
        // One probe command for the instances SSM reaches, nothing else sent.
        assert_eq!(report.requests["ssm:SendCommand"], 1);
        let human = render_verify_human(&report, Colour::Off);
        let line = human.lines().find(|l| l.starts_with("i-2")).unwrap();
        assert!(
            line.contains("public") && line.contains("54.239.36.10 (public)"),
            "{human}"
        );
        let json: serde_json::Value = serde_json::from_str(&render_verify_json(&report)).unwrap();
        assert_eq!(json["kind"], "verify");
        assert_eq!(json["summary"]["public"], 1);
        assert_eq!(json["instances"][0]["path"], "private");
        assert_eq!(json["instances"][0]["peers"][0]["class"], "endpoint");
    }

    #[test]
    fn an_instance_whose_agent_is_updating_is_probed_anyway() {
        let mut inventory = crate::preflight::testkit::ready_inventory();
        inventory.container_instances[0].agent_update_status = Some("UPDATING".into());
        inventory.container_instances[1].status = "REGISTERING".into();
        let (probed, unreachable, out_of_scope) = sort_instances(&inventory);
        let probed: Vec<&str> = probed.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(probed, ["i-a", "i-c"]);
        assert!(unreachable.is_empty());
        assert_eq!(out_of_scope.len(), 1);
        assert_eq!(out_of_scope[0].0, "i-b");
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_never_answers_is_cancelled_and_unknown_a_cut_record_read_whole() {
        let fleet = sim(vec![
            SimInstance::healthy("i-1", "eu-west-1a")
                .already_private()
                .with_fault(Fault::ProbeHangs),
            SimInstance::healthy("i-2", "eu-west-1b")
                .already_private()
                .with_fault(Fault::NoisyProbe),
        ]);
        let report = verify(&fleet, &plan()).await.unwrap();
        let hung = &report.rows[0].verdict;
        assert_eq!(hung.path, Path::Unknown);
        assert_eq!(hung.reason, "the probe did not answer within 120s");
        assert_eq!(report.requests["ssm:CancelCommand"], 1);
        // The listing cut the noisy record off: read whole, once.
        assert_eq!(report.rows[1].verdict.path, Path::Private);
        assert_eq!(report.requests["ssm:GetCommandInvocation"], 1);
    }

    #[tokio::test(start_paused = true)]
    async fn all_private_says_so_and_only_then() {
        let fleet = sim(vec![
            SimInstance::healthy("i-1", "eu-west-1a").already_private(),
            SimInstance::healthy("i-2", "eu-west-1b").already_private(),
        ]);
        let report = verify(&fleet, &plan()).await.unwrap();
        assert!(report.all_private());
        assert_eq!(report.bottom_line(), "All 2 agents use the endpoints.");
    }
}
