//! What earlier runs left behind, gathered from the local journal and from AWS (the run
//! record, done markers and restore records), and how it is settled before a run goes on:
//! every debt is paid (DRAINING undone, protection removed, processes resumed, Standby
//! left) and its record removed; the instances an unfinished run proved done are not
//! touched again; restarts it left under way are followed, not sent twice.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use serde::{Deserialize, Serialize};

use crate::clock::rfc3339;
use crate::fleet::{Fleet, FleetError, InstanceMark};
use crate::inventory::Inventory;
use crate::journal::marks::{
    DoneMark, GroupOwed, InstanceDebt, InstanceOwed, RunId, DONE_ATTRIBUTE, OWES_ATTRIBUTE,
};
use crate::journal::{InstanceObligation, Journal, RunStatus};
use crate::rollout::state::InstanceState;
use crate::rollout::state::Proof;

/// The run record kept in SSM ([`crate::fleet::Record::Run`]): which run is under way on
/// the cluster, so a fresh machine knows which done markers belong to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub schema: u32,
    pub run: RunId,
    pub status: RunStatus,
    pub started: i64,
    pub updated: i64,
}

pub const RUN_RECORD_SCHEMA: u32 = 1;

impl RunRecord {
    /// The journal's run as a record, to compare with the one on AWS.
    pub fn of(journal: &Journal) -> RunRecord {
        RunRecord {
            schema: RUN_RECORD_SCHEMA,
            run: journal.run.clone(),
            status: journal.status,
            started: journal.started_at,
            updated: journal.updated_at,
        }
    }

    /// This record (on AWS) tells more than `local` (a journal): it is of a later run,
    /// or of the same run finished elsewhere.
    pub fn supersedes(&self, local: &RunRecord) -> bool {
        self.run > local.run || (self.run == local.run && self.status == RunStatus::Finished)
    }

    pub fn parse(value: &str) -> Option<RunRecord> {
        serde_json::from_str::<RunRecord>(value)
            .ok()
            .filter(|r| r.schema == RUN_RECORD_SCHEMA)
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// An instance an earlier run proved done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneEarlier {
    pub at: i64,
    /// From the journal; a marker on AWS carries none.
    pub evidence: Option<Proof>,
}

/// Everything earlier runs left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prior {
    /// The unfinished run, with its start.
    pub run: Option<(RunId, i64)>,
    /// The journal of that run, when this machine has it.
    pub journal: Option<Journal>,
    /// Instances that run proved done, by instance id.
    pub done: BTreeMap<String, DoneEarlier>,
    /// Restarts under way when it stopped (from its journal), by instance id.
    pub in_flight: BTreeMap<String, InstanceState>,
    /// Debts to instances (from AWS and the journal), by instance id.
    pub owed_instances: BTreeMap<String, InstanceObligation>,
    /// Debts to this cluster's Auto Scaling groups, by group name.
    pub owed_groups: BTreeMap<String, GroupOwed>,
    /// Records this version cannot read where a debt may hide: the run must not go on.
    pub unreadable: Vec<String>,
    /// Records that were skipped with a warning (a done marker that does not parse).
    pub warnings: Vec<String>,
}

impl Prior {
    /// Something to resume or to put back.
    pub fn is_empty(&self) -> bool {
        self.run.is_none() && !self.owes()
    }

    pub fn owes(&self) -> bool {
        !self.owed_instances.is_empty() || self.owed_groups.values().any(|g| !g.is_empty())
    }

    /// A line per debt.
    pub fn debts(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (id, owed) in &self.owed_instances {
            let debts: Vec<&str> = owed.debts.iter().map(|d| debt_text(*d)).collect();
            lines.push(format!("Owed to {id}: {}.", debts.join(", ")));
        }
        for (group, owed) in &self.owed_groups {
            if !owed.resume.is_empty() {
                let list: Vec<&str> = owed.resume.iter().map(String::as_str).collect();
                lines.push(format!(
                    "Owed to group {group}: resume {}.",
                    list.join(", ")
                ));
            }
            if !owed.exit_standby.is_empty() {
                let list: Vec<&str> = owed.exit_standby.iter().map(String::as_str).collect();
                lines.push(format!(
                    "Owed to group {group}: return {} from Standby.",
                    list.join(", ")
                ));
            }
        }
        lines
    }

    /// One paragraph for the operator.
    pub fn describe(&self) -> String {
        let mut lines = Vec::new();
        if let Some((run, started)) = &self.run {
            lines.push(format!(
                "An unfinished run {run} (started {}) is on record: {} instance(s) done, {} instance(s) mid-restart or mid-reboot when it stopped{}.",
                rfc3339(*started),
                self.done.len(),
                self.in_flight.len(),
                if self.journal.is_some() { "" } else { " (from the records on AWS; this machine has no journal of it)" }
            ));
        }
        lines.extend(self.debts());
        lines.join("\n") + "\n"
    }
}

fn debt_text(debt: InstanceDebt) -> &'static str {
    match debt {
        InstanceDebt::Activate => "set ACTIVE again (the tool set it DRAINING)",
        InstanceDebt::Unprotect => "remove scale-in protection (the tool set it)",
    }
}

/// Gathers what earlier runs left. `journal` is this machine's journal of the cluster (if
/// any), `record` the run record on AWS, `group_marks` the region's groups carrying a
/// restore tag. Pure: the caller reads, this decides.
pub fn gather(
    inventory: &Inventory,
    journal: Option<Journal>,
    record: Option<RunRecord>,
    group_marks: &BTreeMap<String, String>,
) -> Prior {
    let mut prior = Prior::default();
    let unfinished_journal = journal.filter(|j| !j.is_finished());
    // The newer of the two decides. A journal older than the run on record, or of a run
    // that finished elsewhere, is stale (that run may have settled its debts, an operator
    // may have changed things since) and is not trusted.
    let unfinished_journal = match (unfinished_journal, &record) {
        (Some(j), Some(r)) if r.supersedes(&RunRecord::of(&j)) => {
            prior.warnings.push(format!(
                "this machine's journal of run {} is older than run {} on record ({}); it is ignored",
                j.run, r.run, r.status
            ));
            None
        }
        (journal, _) => journal,
    };
    let unfinished_record = record.filter(|r| r.status != RunStatus::Finished);
    prior.run = match (&unfinished_journal, &unfinished_record) {
        (Some(j), _) => Some((j.run.clone(), j.started_at)),
        (None, Some(r)) => Some((r.run.clone(), r.started)),
        (None, None) => None,
    };
    let current = prior.run.as_ref().map(|(run, _)| run.clone());
    if let Some(journal) = unfinished_journal.filter(|j| Some(&j.run) == current.as_ref()) {
        for (id, entry) in &journal.instances {
            match &entry.state {
                InstanceState::Done { evidence } => {
                    prior.done.insert(
                        id.clone(),
                        DoneEarlier {
                            at: entry.at,
                            evidence: Some(evidence.clone()),
                        },
                    );
                }
                // Its reboot was proven; the putting back was cut short (settling
                // finishes that), and the path probe that follows it never ran: the
                // instance resumes as verifying.
                InstanceState::Restoring { proof } => {
                    prior.in_flight.insert(
                        id.clone(),
                        InstanceState::Verifying {
                            proof: Proof::Reboot(proof.clone()),
                        },
                    );
                }
                state if state.is_in_flight() => {
                    prior.in_flight.insert(id.clone(), state.clone());
                }
                _ => {}
            }
        }
        prior.owed_instances = journal.owed_instances.clone();
        prior.owed_groups = journal.owed_groups.clone();
        prior.journal = Some(journal);
    }
    for instance in &inventory.container_instances {
        let id = &instance.ec2_instance_id;
        if let Some(value) = instance.marks.get(DONE_ATTRIBUTE) {
            match DoneMark::parse(value) {
                Ok(mark) if Some(&mark.run) == current.as_ref() => {
                    prior.done.entry(id.clone()).or_insert(DoneEarlier {
                        at: mark.at,
                        evidence: None,
                    });
                }
                Ok(_) => {}
                Err(error) => prior
                    .warnings
                    .push(format!("{id}: {error}; it is treated as not done, so this run restarts it again (harmless: a restart proven once more)")),
            }
        }
        if let Some(value) = instance.marks.get(OWES_ATTRIBUTE) {
            match InstanceOwed::parse(value) {
                Ok(owed) => {
                    prior
                        .owed_instances
                        .entry(id.clone())
                        .or_insert_with(|| InstanceObligation {
                            container_instance_arn: instance.arn.clone(),
                            debts: Default::default(),
                        })
                        .debts
                        .extend(owed.debts);
                }
                Err(error) => prior.unreadable.push(format!(
                    "container instance {} ({id}): {error}. Finish it with the version that wrote it, or put back by hand what it names, then: aws ecs delete-attributes --cluster {} --attributes name={OWES_ATTRIBUTE},targetId={}",
                    instance.arn, inventory.cluster.name, instance.arn
                )),
            }
        }
    }
    for (group, value) in group_marks {
        match GroupOwed::parse(value) {
            Ok(owed) if owed.cluster == inventory.cluster.name => {
                let entry = prior.owed_groups.entry(group.clone()).or_default();
                entry.cluster = owed.cluster;
                entry.run = entry.run.take().or(owed.run);
                entry.resume.extend(owed.resume);
                entry.exit_standby.extend(owed.exit_standby);
            }
            Ok(_) => {}
            // Another cluster's record could be this one's: do not guess.
            Err(error) => prior.unreadable.push(format!(
                "Auto Scaling group {group}: {error}. Finish it with the version that wrote it, or put back by hand what it names, then: aws autoscaling delete-tags --tags ResourceId={group},ResourceType=auto-scaling-group,Key={}",
                crate::journal::marks::OWES_TAG
            )),
        }
    }
    prior
}

/// Done markers an unfinished run owes: instances its journal has as done whose
/// container instance carries no marker of that run.
pub fn unmarked_done(inventory: &Inventory, prior: &Prior, run: &RunId) -> Vec<InstanceMark> {
    inventory
        .container_instances
        .iter()
        .filter(|ci| {
            prior
                .done
                .get(&ci.ec2_instance_id)
                .is_some_and(|done| done.evidence.is_some())
        })
        .filter(|ci| {
            ci.marks
                .get(DONE_ATTRIBUTE)
                .and_then(|v| DoneMark::parse(v).ok())
                .is_none_or(|mark| &mark.run != run)
        })
        .filter_map(|ci| {
            let at = prior.done.get(&ci.ec2_instance_id)?.at;
            let value = DoneMark {
                run: run.clone(),
                at,
            }
            .encode()
            .ok()?;
            Some(InstanceMark {
                container_instance_arn: ci.arn.clone(),
                name: DONE_ATTRIBUTE,
                value: Some(value),
            })
        })
        .collect()
}

/// An earlier run may have stopped in the middle of a reboot: putting Auto Scaling's
/// health checks back now would have the group replace the instance, and setting it
/// ACTIVE would offer tasks a host that is not there. Waits, up to `patience`, until
/// every instance it owes a restore is back (status checks OK, agent connected) or gone.
/// Returns what the wait was, if there was one.
pub async fn await_return<F: Fleet>(
    fleet: &F,
    inventory: &Inventory,
    prior: &Prior,
    patience: Duration,
) -> Result<Option<String>, FleetError> {
    let standby: BTreeSet<&String> = prior
        .owed_groups
        .values()
        .flat_map(|g| g.exit_standby.iter())
        .collect();
    let owed: BTreeMap<String, String> = inventory
        .container_instances
        .iter()
        .filter(|ci| {
            prior.owed_instances.contains_key(&ci.ec2_instance_id)
                || standby.contains(&ci.ec2_instance_id)
        })
        .map(|ci| (ci.ec2_instance_id.clone(), ci.arn.clone()))
        .collect();
    if owed.is_empty() {
        return Ok(None);
    }
    let ids: Vec<String> = owed.keys().cloned().collect();
    let arns: Vec<String> = owed.values().cloned().collect();
    let began = Instant::now();
    loop {
        let health = fleet.instance_health(&ids).await?;
        let connected: BTreeSet<String> = fleet
            .agent_states(&inventory.cluster.name, &arns)
            .await?
            .into_iter()
            .filter(|a| a.connected)
            .map(|a| a.container_instance_arn)
            .collect();
        let away: Vec<&String> = ids
            .iter()
            // Missing from EC2's answer is not taken as back: it waits like the others.
            .filter(|id| match health.get(*id) {
                None => true,
                Some(h) => {
                    let back = h.status_ok && connected.contains(&owed[*id]);
                    !(h.is_leaving() || back)
                }
            })
            .collect();
        let waited = began.elapsed().as_secs();
        let list = away
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if away.is_empty() {
            return Ok((waited > 0).then(|| {
                format!("waited {waited}s for the instances it held to come back before putting anything back")
            }));
        }
        if began.elapsed() >= patience {
            return Ok(Some(format!(
                "{list} not back (status checks or agent) after {waited}s: putting back anyway"
            )));
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// What settling did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// A line per thing put back.
    pub lines: Vec<String>,
    /// Some instance was set ACTIVE again (the plan saw it DRAINING).
    pub activated: bool,
}

/// Pays every debt in `prior` and removes its records, on AWS and in `journal`. An
/// instance that left the cluster has nothing to put back (its records went with it);
/// one that is not DRAINING any more is not touched. A debt that cannot be paid (the
/// instance's group unknown) is an error and its record stays.
pub async fn settle<F: Fleet>(
    fleet: &F,
    inventory: &Inventory,
    prior: &Prior,
    mut journal: Option<&mut Journal>,
) -> Result<Settled, FleetError> {
    let cluster = &inventory.cluster.name;
    let mut settled = Settled::default();
    // Decide everything first (a debt that cannot be paid stops before any call), then
    // pay in batches, then remove the records.
    let mut activate = Vec::new();
    let mut unprotect: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut cleared = Vec::new();
    // An instance ECS no longer lists may still run (its agent registered anew, or an
    // operator deregistered it) and still be protected: ask EC2 and Auto Scaling.
    let unlisted: Vec<String> = prior
        .owed_instances
        .iter()
        .filter(|(id, owed)| {
            owed.debts.contains(&InstanceDebt::Unprotect)
                && !inventory
                    .container_instances
                    .iter()
                    .any(|ci| &ci.ec2_instance_id == *id)
        })
        .map(|(id, _)| id.clone())
        .collect();
    let (health, scaling) = if unlisted.is_empty() {
        (BTreeMap::new(), crate::fleet::AutoScaling::default())
    } else {
        (
            fleet.instance_health(&unlisted).await?,
            fleet.auto_scaling(cluster, &unlisted).await?,
        )
    };
    for (id, owed) in &prior.owed_instances {
        let Some(instance) = inventory
            .container_instances
            .iter()
            .find(|ci| &ci.ec2_instance_id == id)
        else {
            let running = health.get(id).is_some_and(|h| !h.is_leaving());
            match scaling.members.get(id) {
                Some((group, member))
                    if running
                        && owed.debts.contains(&InstanceDebt::Unprotect)
                        && member.protected_from_scale_in =>
                {
                    unprotect.entry(group.clone()).or_default().push(id.clone());
                    settled.lines.push(format!(
                        "{id} (no longer in the cluster, still running): scale-in protection removed"
                    ));
                }
                _ => settled
                    .lines
                    .push(format!("{id} left the cluster: nothing to put back")),
            }
            continue;
        };
        if owed.debts.contains(&InstanceDebt::Activate) && instance.status == "DRAINING" {
            activate.push(instance.arn.clone());
            settled.lines.push(format!("{id}: set ACTIVE again"));
        }
        if owed.debts.contains(&InstanceDebt::Unprotect) {
            let Some(ec2) = inventory.ec2_of(instance) else {
                return Err(FleetError::Aws {
                    action: "autoscaling:SetInstanceProtection".into(),
                    scope: id.clone(),
                    reason: "the instance's Auto Scaling group could not be read, so its scale-in protection (set by an earlier run) stays; run again, or remove it by hand".into(),
                });
            };
            if let Some(group) = &ec2.auto_scaling_group {
                unprotect.entry(group.clone()).or_default().push(id.clone());
                settled
                    .lines
                    .push(format!("{id}: scale-in protection removed"));
            }
        }
        cleared.push(InstanceMark {
            container_instance_arn: instance.arn.clone(),
            name: OWES_ATTRIBUTE,
            value: None,
        });
    }
    if !activate.is_empty() {
        fleet.set_draining(cluster, &activate, false).await?;
        settled.activated = true;
    }
    for (group, ids) in &unprotect {
        fleet.set_scale_in_protection(group, ids, false).await?;
    }
    if !cleared.is_empty() {
        crate::fleet::patiently(|| fleet.write_instance_marks(cluster, &cleared)).await?;
    }
    if let Some(journal) = journal.as_deref_mut() {
        for id in prior.owed_instances.keys() {
            journal.owed_instances.remove(id);
        }
    }
    let said = &mut settled.lines;
    for (group, owed) in &prior.owed_groups {
        let resume: Vec<String> = owed.resume.iter().cloned().collect();
        if !resume.is_empty() {
            fleet.set_processes_suspended(group, &resume, false).await?;
            said.push(format!("group {group}: resumed {}", resume.join(", ")));
        }
        let standby: Vec<String> = owed.exit_standby.iter().cloned().collect();
        if !standby.is_empty() {
            fleet.set_standby(group, &standby, false).await?;
            said.push(format!(
                "group {group}: {} back in service",
                standby.join(", ")
            ));
        }
        crate::fleet::patiently(|| fleet.write_group_mark(group, None)).await?;
        if let Some(journal) = journal.as_deref_mut() {
            journal.owed_groups.remove(group);
        }
    }
    Ok(settled)
}

#[cfg(test)]
mod tests;
