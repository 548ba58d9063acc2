//! Running the probe on many instances: one command per platform and 50 instances (SSM's
//! limit), polled until every invocation ended or the probe's own deadline passed, then
//! each record judged. Used by `verify`, by the cutover before it plans (to skip agents
//! already on the endpoints) and by the rollout after each restart or reboot.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::record::{ProbeRecord, RecordError};
use super::verdict::{PathMap, Verdict};
use crate::fleet::{
    patiently, CommandId, Fleet, FleetError, InvocationStatus, ProbeRequest, PROBE_EXECUTION,
};
use crate::inventory::{Inventory, Platform};

/// SSM takes at most 50 instance ids per `SendCommand`.
const SEND_BATCH: usize = 50;
/// Closer than this to the listing's 2,500 characters, the record may have been cut.
const TRUNCATED_OUTPUT: usize = 2400;
/// Time for SSM to report an invocation that ended.
const REPORT_GRACE: Duration = Duration::from_secs(30);

/// How probes are sent and followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeConfig {
    pub delivery_timeout: Duration,
    pub poll_interval: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            delivery_timeout: Duration::from_secs(60),
            poll_interval: Duration::from_secs(2),
        }
    }
}

/// What a probe needs to know about the cluster: its region and account (the names the
/// probe resolves) and its network facts (to judge the records).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeSite {
    pub region: String,
    pub account: Option<String>,
    pub paths: PathMap,
}

impl ProbeSite {
    pub fn of(inventory: &Inventory, shared_endpoints: bool) -> ProbeSite {
        ProbeSite {
            region: inventory.cluster.region.clone(),
            account: inventory.cluster.account.clone(),
            paths: PathMap::from_inventory(inventory, shared_endpoints),
        }
    }
}

/// Probes sent and not yet answered: instance id → (command, when to give up).
#[derive(Debug, Default)]
pub struct Outstanding {
    sent: BTreeMap<String, (CommandId, Instant)>,
}

impl Outstanding {
    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }
}

/// Sends probes to one cluster's instances and judges what they print.
pub struct Prober<'a, F> {
    pub fleet: &'a F,
    pub site: &'a ProbeSite,
    pub config: ProbeConfig,
}

impl<F: Fleet> Prober<'_, F> {
    /// Probes the instances and judges each one; an instance whose probe gave no record
    /// gets an `unknown` verdict that says why. Only a failure to reach AWS is an error.
    pub async fn verdicts(
        &self,
        instances: &[(String, Platform)],
    ) -> Result<BTreeMap<String, Verdict>, FleetError> {
        let records = self.records(instances).await?;
        Ok(records
            .into_iter()
            .map(|(id, record)| {
                let verdict = self.judge(&id, record);
                (id, verdict)
            })
            .collect())
    }

    /// The verdict on a record, or on why there is none.
    pub fn judge(&self, instance_id: &str, record: Result<ProbeRecord, String>) -> Verdict {
        match record {
            Ok(record) => self.site.paths.verdict(instance_id, &record),
            Err(why) => Verdict::unprobed(why),
        }
    }

    /// Each instance's record, or why there is none.
    pub async fn records(
        &self,
        instances: &[(String, Platform)],
    ) -> Result<BTreeMap<String, Result<ProbeRecord, String>>, FleetError> {
        let mut outstanding = Outstanding::default();
        let mut results = self.start(instances, &mut outstanding).await?;
        while !outstanding.is_empty() {
            tokio::time::sleep(self.config.poll_interval).await;
            results.extend(self.collect(&mut outstanding).await?);
        }
        Ok(results)
    }

    /// Sends the probe to the instances (one command per platform and 50 instances);
    /// returns at once those SSM refused, with why.
    pub async fn start(
        &self,
        instances: &[(String, Platform)],
        outstanding: &mut Outstanding,
    ) -> Result<BTreeMap<String, Result<ProbeRecord, String>>, FleetError> {
        let mut by_platform: BTreeMap<Platform, Vec<String>> = BTreeMap::new();
        for (id, platform) in instances {
            by_platform.entry(*platform).or_default().push(id.clone());
        }
        let mut results = BTreeMap::new();
        let deadline =
            Instant::now() + self.config.delivery_timeout + PROBE_EXECUTION + REPORT_GRACE;
        for (platform, ids) in by_platform {
            for batch in ids.chunks(SEND_BATCH) {
                let (commands, refused) = self.send(platform, batch).await?;
                for (id, command) in commands {
                    outstanding.sent.insert(id, (command, deadline));
                }
                for id in refused {
                    results.insert(
                        id,
                        Err("SSM refuses commands for it (not managed, or not running)".into()),
                    );
                }
            }
        }
        Ok(results)
    }

    /// One look at the outstanding probes: the records of those that ended (taken out of
    /// `outstanding`); those past their deadline are cancelled and given up.
    pub async fn collect(
        &self,
        outstanding: &mut Outstanding,
    ) -> Result<BTreeMap<String, Result<ProbeRecord, String>>, FleetError> {
        let mut results = BTreeMap::new();
        let commands: BTreeSet<CommandId> =
            outstanding.sent.values().map(|(c, _)| c.clone()).collect();
        for command in commands {
            let invocations = patiently(|| self.fleet.command_results(&command)).await?;
            for invocation in invocations {
                let ours = matches!(outstanding.sent.get(&invocation.instance_id), Some((c, _)) if *c == command);
                if !ours {
                    continue;
                }
                let id = invocation.instance_id.clone();
                let result = match invocation.status {
                    InvocationStatus::Running => continue,
                    InvocationStatus::Success => self
                        .record(&command, &id, &invocation.output)
                        .await?
                        .map_err(|e| e.to_string()),
                    // A probe that failed part-way may still have printed its record.
                    InvocationStatus::Ended { status, details } => {
                        ProbeRecord::parse(&invocation.output)
                            .map_err(|_| format!("the probe ended {status} ({details})"))
                    }
                };
                outstanding.sent.remove(&id);
                results.insert(id, result);
            }
        }
        let now = Instant::now();
        let mut late: BTreeMap<CommandId, Vec<String>> = BTreeMap::new();
        outstanding.sent.retain(|id, (command, deadline)| {
            if now < *deadline {
                return true;
            }
            late.entry(command.clone()).or_default().push(id.clone());
            false
        });
        for (command, ids) in late {
            // Best effort: the probe only reads, a late one does no harm.
            let _ = self.fleet.cancel(&command, &ids).await;
            for id in ids {
                results.insert(
                    id,
                    Err(format!(
                        "the probe did not answer within {}s",
                        (self.config.delivery_timeout + PROBE_EXECUTION).as_secs()
                    )),
                );
            }
        }
        Ok(results)
    }

    /// Sends one batch; SSM refuses a whole batch when one instance cannot take commands,
    /// so those are set aside and the rest sent again.
    async fn send(
        &self,
        platform: Platform,
        batch: &[String],
    ) -> Result<(BTreeMap<String, CommandId>, Vec<String>), FleetError> {
        let mut ids = batch.to_vec();
        let mut refused = Vec::new();
        // Each refusal removes at least one id, so this ends.
        while !ids.is_empty() {
            let request = ProbeRequest {
                instance_ids: ids.clone(),
                platform,
                region: self.site.region.clone(),
                account: self.site.account.clone(),
                delivery_timeout: self.config.delivery_timeout,
            };
            match patiently(|| self.fleet.send_probe(&request)).await {
                Ok(command) => {
                    let sent = ids.into_iter().map(|id| (id, command.clone())).collect();
                    return Ok((sent, refused));
                }
                Err(FleetError::InvalidInstances { instance_ids, .. })
                    if instance_ids.iter().any(|bad| ids.contains(bad)) =>
                {
                    ids.retain(|id| !instance_ids.contains(id));
                    refused.extend(instance_ids);
                }
                Err(error) => return Err(error),
            }
        }
        Ok((BTreeMap::new(), refused))
    }

    /// The record in a finished probe's output; when the listing cut it off, the whole
    /// output (`GetCommandInvocation`).
    async fn record(
        &self,
        command: &CommandId,
        id: &str,
        listed: &str,
    ) -> Result<Result<ProbeRecord, RecordError>, FleetError> {
        match ProbeRecord::parse(listed) {
            Err(RecordError::Missing) if listed.chars().count() >= TRUNCATED_OUTPUT => {
                let whole = patiently(|| self.fleet.command_output(command, id)).await?;
                Ok(ProbeRecord::parse(&whole))
            }
            parsed => Ok(parsed),
        }
    }
}
