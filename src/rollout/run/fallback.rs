//! The drain-and-reboot fallback, for instances whose agent SSM could not restart (or
//! all of them with `--strategy reboot`): `--max-reboots` at a time, each batch through
//! the same steps together.
//!
//! 1. Guards, before anything changes: no tasks outside a service (a reboot kills them),
//!    the service tasks fit elsewhere (`capacity::check_drain`), the services with tasks
//!    here settled, the Auto Scaling group in a state to hold the instance
//!    (`hold::plan_holds`). A guard that fails skips or fails the instance untouched.
//! 2. The debts are recorded — journal first, then on AWS — and only then are the holds
//!    put on (scale-in protection or Standby, suspended processes) and the instance set
//!    DRAINING.
//! 3. Wait until no service task runs there (`--drain-timeout`), and again until the
//!    services that had tasks here are back at their desired count.
//! 4. `RebootInstances`, then wait for proof (`reboot::judge_reboot`) within
//!    `--reboot-timeout`. An instance that does not come back halts the rollout.
//! 5. Put back exactly what was changed, and only then clear the debts. An instance
//!    terminated meanwhile is gone: its own debts are dropped (the group's are paid).
//!
//! Any failure after step 2 restores before the instance is marked failed. A restore
//! that fails keeps its debt recorded, halts the rollout and names the `aws` command
//! that finishes it.

use std::collections::{BTreeMap, BTreeSet};

use tokio::time::Instant;

use super::{Interruption, Rollout, RolloutEvent};
use crate::clock::Clock;
use crate::fleet::{Fleet, InstanceMark, Workload};
use crate::journal::marks::{GroupOwed, InstanceDebt, InstanceOwed, OWES_ATTRIBUTE};
use crate::rollout::capacity::{check_drain, MovingTask, Service};
use crate::rollout::estimate::StepKind;
use crate::rollout::hold::{exit_standby_allowed, plan_holds, Holds};
use crate::rollout::reboot::{judge_reboot, RebootSightings};
use crate::rollout::state::{InstanceState, Proof, RebootProof};

/// One instance the fallback holds: what it changed, so it can put back exactly that.
#[derive(Debug, Clone)]
struct Held {
    id: String,
    arn: String,
    group: Option<String>,
    holds: Holds,
    /// The debts still owed (recorded on AWS and in the journal).
    debts: BTreeSet<InstanceDebt>,
    /// The services with tasks here when it was chosen.
    services: BTreeSet<String>,
    /// The cluster's daemon services: their tasks stay until the reboot.
    daemons: BTreeSet<String>,
    boot_id_before: Option<String>,
    /// Service tasks on it when it was chosen: what its drain has to move.
    tasks: usize,
    /// Why it needs the reboot (kept in the states it passes).
    reason: String,
    /// What the tool tried to change on it (a call that failed may still have acted).
    attempted: Attempted,
}

/// The changes the tool attempted on a held instance.
#[derive(Debug, Clone, Copy, Default)]
struct Attempted {
    protect: bool,
    suspend: bool,
    standby: bool,
    drain: bool,
    reboot: bool,
}

/// How a held instance ended its steps.
enum Ending {
    Proven(RebootProof),
    Failed(String),
    Gone(String),
    /// Not rebooted: the run was asked to stop (or lost its lease) before the reboot. It
    /// is put back and waits for the next run.
    Stopped(String),
}

impl<F: Fleet, C: Clock + ?Sized> Rollout<'_, F, C> {
    /// Drains and reboots every instance that needs it, `--max-reboots` at a time.
    pub(super) async fn reboots(
        &mut self,
        width: usize,
        failures_before: usize,
    ) -> Result<Option<String>, Interruption> {
        loop {
            let mut queue = self.needing_reboot();
            if queue.is_empty() {
                return Ok(None);
            }
            if let Some(reason) = self.hooks.stop_reason() {
                self.stopped = true;
                return Ok(Some(reason));
            }
            let (away, _) = self.failed_and_away().await?;
            // An instance whose agent is away already costs nothing more to reboot: those
            // go first, and only the ones outside the queue use up the bound.
            queue.sort_by_key(|id| !away.contains(id));
            let outside: Vec<&String> = away.iter().filter(|a| !queue.contains(a)).collect();
            let still_away = outside.len();
            let room = width
                .saturating_sub(still_away)
                .min(self.config.fallback.max_reboots.max(1));
            if room == 0 {
                return Ok(Some(format!(
                    "{still_away} instance(s) outside the rollout or failed have their agent \
                     disconnected ({}), which uses up --max-unavailable {width}: no reboot \
                     starts; bring them back or raise --max-unavailable, then --resume",
                    outside
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            let batch: Vec<String> = queue.into_iter().take(room).collect();
            let halted = self.reboot_batch(&batch).await?;
            self.mark_done().await?;
            if halted.is_some() {
                return Ok(halted);
            }
            if let Some(halted) = self.too_many_failures(failures_before) {
                return Ok(Some(halted));
            }
        }
    }

    fn notice(&mut self, id: &str, message: String) {
        let at = self.now();
        self.hooks.event(RolloutEvent::Notice {
            instance_id: id.to_string(),
            message,
            at,
        });
    }

    fn reason_of(&self, id: &str) -> String {
        match self.states.get(id) {
            Some(InstanceState::NeedsReboot { reason }) => reason.clone(),
            _ => String::new(),
        }
    }

    /// One batch through every step; returns why the rollout halts, if it must.
    async fn reboot_batch(&mut self, batch: &[String]) -> Result<Option<String>, Interruption> {
        let chosen = self.guard(batch).await?;
        if chosen.is_empty() {
            return Ok(None);
        }
        // Only a batch that ends in time starts; nothing has changed on it yet.
        let busiest = chosen.iter().map(|h| h.tasks).max().unwrap_or(0);
        if let Some(why) = self.out_of_time(self.estimates.reboot_batch(busiest)) {
            return Ok(Some(why));
        }
        self.waves_done += 1;
        let at = self.now();
        self.hooks.event(RolloutEvent::WaveStarted {
            number: self.waves_done,
            canary: false,
            reboot: true,
            instance_ids: chosen.iter().map(|h| h.id.clone()).collect(),
            at,
        });
        // The guards can wait a while: nothing is changed once a stop is asked for.
        if let Some(reason) = self.hooks.stop_reason() {
            self.stopped = true;
            return Ok(Some(reason));
        }
        let mut held = Vec::new();
        let began = Instant::now();
        let changed = self.hold(chosen, &mut held).await;
        let mut endings: BTreeMap<String, Ending> = BTreeMap::new();
        let mut drained = None;
        let steps = match changed {
            Ok(()) => {
                self.drain_and_reboot(&mut held, &mut endings, &mut drained)
                    .await
            }
            Err(error) => Err(error),
        };
        let interrupted = match steps {
            Ok(()) => None,
            Err(error) => {
                let why = match &error {
                    Interruption::Aws(error) => format!("AWS error: {error}"),
                    Interruption::Journal(error) => super::journal_reason(error),
                };
                for h in &held {
                    endings
                        .entry(h.id.clone())
                        .or_insert_with(|| Ending::Failed(format!("stopped: {why}")));
                }
                Some(error)
            }
        };
        let stopped = held.iter().find_map(|h| match endings.get(&h.id) {
            Some(Ending::Stopped(why)) => Some(why.clone()),
            _ => None,
        });
        let halt_on_return = held.iter().any(|h| {
            matches!(endings.get(&h.id), Some(Ending::Failed(why)) if why.starts_with(NOT_BACK))
        });
        // Lost contact (or the journal) after the reboot was sent: putting back now would
        // resume Auto Scaling's health checks under a host that may still be down. Its
        // debts stay recorded; the next run waits for it, then pays them.
        let (mut held, kept): (Vec<Held>, Vec<Held>) = held.into_iter().partition(|h| {
            interrupted.is_none()
                || !h.attempted.reboot
                || matches!(
                    endings.get(&h.id),
                    Some(Ending::Proven(_) | Ending::Gone(_))
                )
        });
        for h in &kept {
            let why = match endings.remove(&h.id) {
                Some(Ending::Failed(why)) => why,
                _ => "stopped".into(),
            };
            let reason = format!(
                "{why} while following its reboot: what the tool changed on it stays recorded, and the next run (--resume) puts it back once the instance is back"
            );
            self.set(&h.id, InstanceState::Failed { reason });
        }
        let unpaid = self.restore(&mut held, &endings).await;
        for h in &held {
            let state = match (unpaid.get(&h.id), endings.remove(&h.id)) {
                (_, Some(Ending::Gone(reason))) => InstanceState::Gone { reason },
                (Some(restore), Some(Ending::Failed(why))) => InstanceState::Failed {
                    reason: format!("{why}; and putting it back failed: {restore}"),
                },
                (Some(restore), _) => InstanceState::Failed {
                    reason: format!("rebooted, but putting it back failed: {restore}"),
                },
                (None, Some(Ending::Proven(proof))) => self.proven(&h.id, Proof::Reboot(proof)),
                (None, Some(Ending::Failed(why))) => InstanceState::Failed { reason: why },
                (None, Some(Ending::Stopped(why))) => InstanceState::NeedsReboot {
                    reason: format!("{}; put back, not rebooted: {why}", h.reason),
                },
                (None, None) => InstanceState::Failed {
                    reason: "internal error: the reboot ended without a verdict".into(),
                },
            };
            self.set(&h.id, state);
        }
        if let Some(error) = interrupted {
            return Err(error);
        }
        // Back and put back: where SSM reaches it, its agent's path is probed now.
        self.verify_paths().await?;
        // What this batch took, for the next one's start decision.
        if let Some(drained) = drained {
            if busiest > 0 {
                let per_task = drained / u32::try_from(busiest).unwrap_or(u32::MAX);
                self.estimates.record(StepKind::Drain, drained);
                self.estimates.record(StepKind::DrainPerTask, per_task);
            }
            let rebooted = held
                .iter()
                .any(|h| matches!(self.states.get(&h.id), Some(s) if s.name() == "done"));
            if rebooted {
                self.estimates
                    .record(StepKind::Reboot, began.elapsed().saturating_sub(drained));
            }
        }
        if let Some(why) = stopped {
            self.stopped = true;
            return Ok(Some(why));
        }
        if !unpaid.is_empty() {
            return Ok(Some(format!(
                "putting back what the tool changed failed on {}: nothing more is touched; \
                 finish it with the commands above, or run again to retry",
                unpaid.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        if halt_on_return {
            return Ok(Some(
                "an instance did not come back after its reboot: something is wrong with the \
                 fleet, so nothing else is rebooted"
                    .into(),
            ));
        }
        Ok(None)
    }

    /// The guards that need no change: standalone tasks, placement, service health, Auto
    /// Scaling. Returns the instances that pass, with the holds each needs.
    async fn guard(&mut self, batch: &[String]) -> Result<Vec<Held>, Interruption> {
        let agents = self.agents(batch).await?;
        let mut candidates = Vec::new();
        for id in batch {
            match self
                .agent_of(&agents, id)
                .map(|a| a.status.as_deref() == Some("DRAINING"))
            {
                None => self.set(
                    id,
                    InstanceState::Gone {
                        reason: "left the cluster before its reboot".into(),
                    },
                ),
                Some(true) => self.set(
                    id,
                    InstanceState::Skipped {
                        reason: "set DRAINING by someone else during the run: left alone".into(),
                    },
                ),
                Some(false) => candidates.push(id.clone()),
            }
        }
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let workload = self.patiently(|| self.fleet.workload(self.cluster)).await?;
        let fallback = self.config.fallback.clone();
        let mut passed = Vec::new();
        for id in &candidates {
            let standalone: Vec<&str> = workload
                .tasks_on(id)
                .filter(|t| t.service().is_none())
                .map(|t| t.task_arn.as_str())
                .collect();
            if !standalone.is_empty() {
                let list = standalone.join(", ");
                if fallback.reboot_standalone_tasks {
                    self.notice(
                        id,
                        format!("the reboot kills {} task(s) outside any service: {list} (--reboot-standalone-tasks)", standalone.len()),
                    );
                } else {
                    self.set(
                        id,
                        InstanceState::Skipped {
                            reason: format!(
                                "runs {} task(s) outside any service, which draining does not move and a reboot kills: {list}; stop them or pass --reboot-standalone-tasks",
                                standalone.len()
                            ),
                        },
                    );
                    continue;
                }
            }
            let earlier: Vec<&str> = passed
                .iter()
                .map(|(id, _): &(String, BTreeSet<String>)| id.as_str())
                .collect();
            let check = placement(&workload, id, &earlier, &candidates);
            for warning in check.warnings {
                self.notice(id, warning);
            }
            if !check.blocking.is_empty() {
                let why = check.blocking.join("; ");
                if fallback.skip_capacity_check {
                    self.notice(
                        id,
                        format!(
                            "drained despite the placement check (--skip-capacity-check): {why}"
                        ),
                    );
                } else {
                    self.set(
                        id,
                        InstanceState::Failed {
                            reason: format!(
                                "not drained: {why} (--skip-capacity-check to drain anyway)"
                            ),
                        },
                    );
                    continue;
                }
            }
            let services = workload
                .tasks_on(id)
                .filter_map(|t| t.service())
                .map(str::to_string)
                .collect();
            passed.push((id.clone(), services));
        }
        // Services that are short of tasks or deploying: wait (bounded) before draining.
        let services: BTreeMap<String, BTreeSet<String>> = passed.iter().cloned().collect();
        let unsettled = self.settle_services(&services, "draining").await?;
        passed.retain(|(id, _)| match unsettled.get(id) {
            Some(why) => {
                self.set(
                    id,
                    InstanceState::Failed {
                        reason: why.clone(),
                    },
                );
                false
            }
            None => true,
        });
        if passed.is_empty() {
            return Ok(Vec::new());
        }
        let daemons: BTreeSet<String> = workload
            .services
            .values()
            .filter(|s| s.service.daemon)
            .map(|s| s.service.name.clone())
            .collect();
        // The waits above can be long: what an operator did meanwhile counts. An
        // instance set DRAINING since is left alone.
        let ids: Vec<String> = passed.iter().map(|(id, _)| id.clone()).collect();
        let agents = self.agents(&ids).await?;
        passed.retain(|(id, _)| {
            let draining = self
                .agent_of(&agents, id)
                .is_none_or(|a| a.status.as_deref() == Some("DRAINING"));
            if draining {
                let reason = "set DRAINING by someone else (or left) during the run: left alone";
                self.set(
                    id,
                    InstanceState::Skipped {
                        reason: reason.into(),
                    },
                );
            }
            !draining
        });
        // The boot ids before anything changes (where SSM works).
        let mut boots: BTreeMap<String, String> = BTreeMap::new();
        let mut by_platform: BTreeMap<_, Vec<String>> = BTreeMap::new();
        for (id, _) in &passed {
            let target = &self.targets[id];
            if target.no_ssm.is_none() {
                by_platform
                    .entry(target.platform)
                    .or_default()
                    .push(id.clone());
            }
        }
        for (platform, ids) in by_platform {
            boots.extend(
                self.patiently(|| self.fleet.boot_ids(&ids, platform))
                    .await?,
            );
        }
        // Auto Scaling last, right before the holds go on.
        let ids: Vec<String> = passed.iter().map(|(id, _)| id.clone()).collect();
        let scaling = self
            .patiently(|| self.fleet.auto_scaling(self.cluster, &ids))
            .await?;
        let in_group = passed
            .iter()
            .any(|(id, _)| self.targets[id].auto_scaling_group.is_some());
        let tags = if scaling.members.is_empty() && !in_group {
            BTreeMap::new()
        } else {
            self.patiently(|| self.fleet.group_marks()).await?
        };
        // Instances each group puts into Standby in this batch: its minimum counts them all.
        let mut entering: BTreeMap<String, i32> = BTreeMap::new();
        let mut chosen = Vec::new();
        for (id, services) in passed {
            let mut held = Held {
                arn: self.targets[&id].container_instance_arn.clone(),
                reason: self.reason_of(&id),
                id: id.clone(),
                group: None,
                holds: Holds::default(),
                debts: BTreeSet::new(),
                services,
                daemons: daemons.clone(),
                boot_id_before: boots.get(&id).cloned(),
                tasks: workload
                    .tasks_on(&id)
                    .filter(|t| t.service().is_some())
                    .count(),
                attempted: Attempted::default(),
            };
            let tagged = self.targets[&id].auto_scaling_group.clone();
            let skip = match (scaling.members.get(&id), tagged) {
                (None, None) => None,
                // Fail closed: a group that does not list its instance cannot hold it.
                (None, Some(name)) => Some(format!(
                    "its EC2 tag names Auto Scaling group {name}, which does not list it: it cannot be held, so it is not rebooted"
                )),
                (Some((name, member)), _) => match scaling.groups.get(name) {
                    None => Some(format!("its Auto Scaling group {name} could not be read (autoscaling:DescribeAutoScalingGroups), so it cannot be held and is not rebooted; run again, or see `privlink-restart check` for a denied permission")),
                    Some(group) => match group_record(tags.get(name), self.cluster) {
                        Err(why) => Some(format!("Auto Scaling group {name}: {why}")),
                        Ok(()) => {
                            let mut group = group.clone();
                            group.desired -= entering.get(name).copied().unwrap_or(0);
                            match plan_holds(&group, member, fallback.use_standby) {
                                Ok(holds) => {
                                    if holds.standby {
                                        *entering.entry(name.clone()).or_default() += 1;
                                    }
                                    held.holds = holds;
                                    held.group = Some(name.clone());
                                    None
                                }
                                Err(why) => Some(why),
                            }
                        }
                    },
                },
            };
            if let Some(reason) = skip {
                self.set(&id, InstanceState::Skipped { reason });
                continue;
            }
            chosen.push(held);
        }
        Ok(chosen)
    }

    /// Records the debts, then puts on the holds and sets DRAINING. `held` gets each
    /// instance as soon as anything may have changed on it.
    async fn hold(
        &mut self,
        mut chosen: Vec<Held>,
        held: &mut Vec<Held>,
    ) -> Result<(), Interruption> {
        // Debts first: journal, then AWS.
        for h in &mut chosen {
            h.debts = h.holds.instance_debts();
            self.hooks.owe_instance(&h.id, &h.arn, &h.debts);
            if let Some(group) = &h.group {
                let owed = self
                    .group_owed
                    .entry(group.clone())
                    .or_insert_with(|| GroupOwed {
                        run: Some(self.run.clone()),
                        cluster: self.cluster.to_string(),
                        ..GroupOwed::default()
                    });
                owed.resume.extend(h.holds.suspend.iter().cloned());
                if h.holds.standby {
                    owed.exit_standby.insert(h.id.clone());
                }
            }
        }
        let groups: BTreeSet<String> = chosen.iter().filter_map(|h| h.group.clone()).collect();
        for group in &groups {
            let owed = self.group_owed[group].clone();
            self.hooks.owe_group(group, &owed);
        }
        held.extend(chosen);
        self.checkpoint()?;
        let marks = held
            .iter()
            .map(|h| owes_mark(&self.run, h))
            .collect::<Result<Vec<_>, _>>()?;
        self.patiently(|| self.fleet.write_instance_marks(self.cluster, &marks))
            .await?;
        for group in &groups {
            let value = self.group_owed[group]
                .encode()
                .map_err(|e| Interruption::Journal(e.to_string()))?;
            self.patiently(|| self.fleet.write_group_mark(group, Some(&value)))
                .await?;
        }
        // Then the holds, group by group; each marked attempted before its call, so that
        // putting back undoes what may have been done and nothing else.
        for group in &groups {
            let members: Vec<usize> = (0..held.len())
                .filter(|i| held[*i].group.as_ref() == Some(group))
                .collect();
            let protect: Vec<String> = members
                .iter()
                .filter(|i| held[**i].holds.protect)
                .map(|i| held[*i].id.clone())
                .collect();
            if !protect.is_empty() {
                for i in &members {
                    held[*i].attempted.protect = held[*i].holds.protect;
                }
                self.patiently(|| self.fleet.set_scale_in_protection(group, &protect, true))
                    .await?;
            }
            let suspend: BTreeSet<String> = members
                .iter()
                .flat_map(|i| held[*i].holds.suspend.iter().cloned())
                .collect();
            if !suspend.is_empty() {
                for i in &members {
                    held[*i].attempted.suspend = true;
                }
                let suspend: Vec<String> = suspend.into_iter().collect();
                self.patiently(|| self.fleet.set_processes_suspended(group, &suspend, true))
                    .await?;
            }
            let standby: Vec<String> = members
                .iter()
                .filter(|i| held[**i].holds.standby)
                .map(|i| held[*i].id.clone())
                .collect();
            if !standby.is_empty() {
                for i in &members {
                    held[*i].attempted.standby = held[*i].holds.standby;
                }
                self.patiently(|| self.fleet.set_standby(group, &standby, true))
                    .await?;
            }
        }
        for h in held.iter_mut() {
            h.attempted.drain = true;
        }
        let arns: Vec<String> = held.iter().map(|h| h.arn.clone()).collect();
        self.patiently(|| self.fleet.set_draining(self.cluster, &arns, true))
            .await?;
        for h in held.iter() {
            self.set(
                &h.id,
                InstanceState::Draining {
                    reason: h.reason.clone(),
                },
            );
        }
        Ok(())
    }

    /// Waits for the drain, the services, the reboot and the return; each instance ends
    /// in `endings`.
    async fn drain_and_reboot(
        &mut self,
        held: &mut [Held],
        endings: &mut BTreeMap<String, Ending>,
        drained: &mut Option<std::time::Duration>,
    ) -> Result<(), Interruption> {
        let began = Instant::now();
        self.wait_for_drain(held, endings).await?;
        let services: BTreeMap<String, BTreeSet<String>> = held
            .iter()
            .filter(|h| !endings.contains_key(&h.id))
            .map(|h| (h.id.clone(), h.services.clone()))
            .collect();
        for (id, why) in self.settle_services(&services, "rebooting").await? {
            endings.insert(id, Ending::Failed(why));
        }
        *drained = Some(began.elapsed());
        let rebooting: Vec<&Held> = held
            .iter()
            .filter(|h| !endings.contains_key(&h.id))
            .collect();
        if rebooting.is_empty() {
            return Ok(());
        }
        // A reboot is a new step: not after a stop request or with the lease lost.
        if let Some(why) = self.hooks.stop_reason() {
            for h in rebooting {
                endings.insert(h.id.clone(), Ending::Stopped(why.clone()));
            }
            return Ok(());
        }
        let ids: Vec<String> = rebooting.iter().map(|h| h.id.clone()).collect();
        for h in held.iter_mut().filter(|h| ids.contains(&h.id)) {
            h.attempted.reboot = true;
        }
        let rebooting: Vec<&Held> = held.iter().filter(|h| ids.contains(&h.id)).collect();
        let at = self.now();
        for h in &rebooting {
            self.set(
                &h.id,
                InstanceState::Rebooting {
                    rebooted_at: at,
                    boot_id_before: h.boot_id_before.clone(),
                },
            );
        }
        self.checkpoint()?;
        self.patiently(|| self.fleet.reboot(&ids)).await?;
        self.wait_for_return(&rebooting, at, endings).await
    }

    /// Polls until no service task runs on the draining instances, they leave, or the
    /// drain times out.
    async fn wait_for_drain(
        &mut self,
        held: &[Held],
        endings: &mut BTreeMap<String, Ending>,
    ) -> Result<(), Interruption> {
        let fallback = self.config.fallback.clone();
        let deadline = Instant::now() + fallback.drain_timeout;
        let mut drained: BTreeSet<String> = BTreeSet::new();
        loop {
            let waiting: Vec<&Held> = held
                .iter()
                .filter(|h| !endings.contains_key(&h.id) && !drained.contains(&h.id))
                .collect();
            if waiting.is_empty() {
                return Ok(());
            }
            // A stop request (Ctrl-C, the lease lost) ends the wait: the instance is put
            // back without its reboot, its tasks where the drain left them.
            if let Some(why) = self.hooks.stop_reason() {
                for h in waiting {
                    endings.insert(h.id.clone(), Ending::Stopped(why.clone()));
                }
                return Ok(());
            }
            self.checkpoint()?;
            tokio::time::sleep(fallback.drain_poll).await;
            let ids: Vec<String> = waiting.iter().map(|h| h.id.clone()).collect();
            let health = self.patiently(|| self.fleet.instance_health(&ids)).await?;
            let instances: Vec<(String, String)> = waiting
                .iter()
                .map(|h| (h.arn.clone(), h.id.clone()))
                .collect();
            let tasks = self
                .patiently(|| self.fleet.tasks_on(self.cluster, &instances))
                .await?;
            let timed_out = Instant::now() >= deadline;
            for h in waiting {
                // Only a terminating state counts: an instance missing from the answer is
                // not taken for gone (its restore would be skipped).
                if health.get(&h.id).is_some_and(|x| x.is_leaving()) {
                    endings.insert(
                        h.id.clone(),
                        Ending::Gone("terminated while draining: nothing of it to put back".into()),
                    );
                    continue;
                }
                let left: Vec<&str> = tasks
                    .iter()
                    .filter(|t| t.instance_id == h.id)
                    .filter(|t| t.service().is_some_and(|s| !h.daemons.contains(s)))
                    .map(|t| t.task_arn.as_str())
                    .collect();
                if left.is_empty() {
                    drained.insert(h.id.clone());
                } else if timed_out {
                    let why = format!(
                        "draining: {} service task(s) still ran after --drain-timeout {}s: {}",
                        left.len(),
                        fallback.drain_timeout.as_secs(),
                        left.join(", ")
                    );
                    if fallback.reboot_after_drain_timeout {
                        let message =
                            format!("{why}; rebooting anyway (--reboot-after-drain-timeout)");
                        self.notice(&h.id, message);
                        drained.insert(h.id.clone());
                    } else {
                        endings.insert(h.id.clone(), Ending::Failed(why));
                    }
                }
            }
        }
    }

    /// Waits (within `--drain-timeout`) until every service with tasks on each instance
    /// runs its desired count and is not mid-deployment. Returns the instances whose
    /// services did not settle, with why.
    async fn settle_services(
        &mut self,
        services: &BTreeMap<String, BTreeSet<String>>,
        before: &str,
    ) -> Result<BTreeMap<String, String>, Interruption> {
        let timeout = self.config.fallback.drain_timeout;
        let deadline = Instant::now() + timeout;
        let mut announced = BTreeSet::new();
        let names: Vec<String> = services
            .values()
            .flatten()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        loop {
            let current = if names.is_empty() {
                BTreeMap::new()
            } else {
                self.patiently(|| self.fleet.services(self.cluster, &names))
                    .await?
            };
            let mut unsettled: BTreeMap<String, String> = BTreeMap::new();
            for (id, names) in services {
                // Fail closed: a service missing from the answer is not taken as settled.
                let why: Vec<String> = names
                    .iter()
                    .filter_map(|name| match current.get(name) {
                        Some(service) => service.unsettled(),
                        None => Some(format!(
                            "service {name} could not be read (ecs:DescribeServices)"
                        )),
                    })
                    .collect();
                if !why.is_empty() {
                    unsettled.insert(id.clone(), why.join("; "));
                }
            }
            if unsettled.is_empty() {
                return Ok(unsettled);
            }
            if Instant::now() >= deadline {
                return Ok(unsettled
                    .into_iter()
                    .map(|(id, why)| {
                        let reason =
                            format!("not {before}: {why}, still after {}s", timeout.as_secs());
                        (id, reason)
                    })
                    .collect());
            }
            for (id, why) in &unsettled {
                if announced.insert(id.clone()) {
                    self.notice(id, format!("waiting before {before}: {why}"));
                }
            }
            self.checkpoint()?;
            tokio::time::sleep(self.config.fallback.drain_poll).await;
        }
    }

    /// Polls until each rebooted instance is proven back, leaves, or the reboot times
    /// out (an instance that does not come back is failed with [`NOT_BACK`]).
    async fn wait_for_return(
        &mut self,
        rebooting: &[&Held],
        rebooted_at: i64,
        endings: &mut BTreeMap<String, Ending>,
    ) -> Result<(), Interruption> {
        let timeout = self.config.fallback.reboot_timeout;
        let deadline = Instant::now() + timeout;
        let poll = self.config.fallback.rejoin_poll;
        let mut seen: BTreeMap<String, RebootSightings> = rebooting
            .iter()
            .map(|h| {
                (
                    h.id.clone(),
                    RebootSightings {
                        boot_id_before: h.boot_id_before.clone(),
                        ..RebootSightings::default()
                    },
                )
            })
            .collect();
        loop {
            let waiting: Vec<&Held> = rebooting
                .iter()
                .copied()
                .filter(|h| !endings.contains_key(&h.id))
                .collect();
            if waiting.is_empty() {
                return Ok(());
            }
            self.checkpoint()?;
            tokio::time::sleep(poll).await;
            let ids: Vec<String> = waiting.iter().map(|h| h.id.clone()).collect();
            let agents = self.agents(&ids).await?;
            let health = self.patiently(|| self.fleet.instance_health(&ids)).await?;
            let timed_out = Instant::now() >= deadline;
            for h in waiting {
                let Some(sightings) = seen.get_mut(&h.id) else {
                    continue;
                };
                // Gone only when EC2 or Auto Scaling says it is being terminated: a
                // container instance ECS stopped listing may be an agent that registered
                // anew, on a host that still holds what the tool changed.
                if health.get(&h.id).is_some_and(|x| x.is_leaving()) {
                    endings.insert(
                        h.id.clone(),
                        Ending::Gone(
                            "terminated during its reboot: nothing of it to put back".into(),
                        ),
                    );
                    continue;
                }
                let connected = self.agent_of(&agents, &h.id).is_some_and(|a| a.connected);
                let was_down = sightings.disconnect_seen;
                sightings.disconnect_seen |= !connected;
                if sightings.disconnect_seen && !was_down {
                    self.set(
                        &h.id,
                        InstanceState::Rejoining {
                            rebooted_at,
                            boot_id_before: h.boot_id_before.clone(),
                        },
                    );
                }
                sightings.connected = connected;
                sightings.status_ok = health.get(&h.id).is_some_and(|x| x.status_ok);
                if sightings.connected && sightings.status_ok && h.boot_id_before.is_some() {
                    let platform = self.targets[&h.id].platform;
                    let one = [h.id.clone()];
                    // Not answering yet is not an error: the host is still coming up.
                    sightings.boot_id_after = self
                        .patiently(|| self.fleet.boot_ids(&one, platform))
                        .await?
                        .remove(&h.id);
                }
                if judge_reboot(sightings).is_ok() {
                    let proof = RebootProof {
                        method: "reboot".into(),
                        rebooted_at,
                        back_at: self.now(),
                        boot_id_before: sightings.boot_id_before.clone(),
                        boot_id_after: sightings.boot_id_after.clone(),
                        disconnect_seen: sightings.disconnect_seen,
                    };
                    self.set(
                        &h.id,
                        InstanceState::Restoring {
                            proof: proof.clone(),
                        },
                    );
                    endings.insert(h.id.clone(), Ending::Proven(proof));
                } else if timed_out {
                    let why = judge_reboot(sightings).err().unwrap_or_default();
                    endings.insert(
                        h.id.clone(),
                        Ending::Failed(format!(
                            "{NOT_BACK} within --reboot-timeout {}s: {why}",
                            timeout.as_secs()
                        )),
                    );
                }
            }
        }
    }

    /// Puts back what was changed on the held instances and clears the debts paid.
    /// Returns, per instance, what could not be put back (with the command that would).
    async fn restore(
        &mut self,
        held: &mut [Held],
        endings: &BTreeMap<String, Ending>,
    ) -> BTreeMap<String, String> {
        let mut unpaid: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if held.is_empty() {
            return BTreeMap::new();
        }
        // Only what was attempted is undone; a debt recorded for a hold never tried is
        // simply dropped (an operator may have put the same hold on since).
        for h in held.iter_mut() {
            if !h.attempted.drain {
                h.debts.remove(&InstanceDebt::Activate);
            }
            if !h.attempted.protect {
                h.holds.protect = false;
                h.debts.remove(&InstanceDebt::Unprotect);
            }
            let owed = h.group.as_ref().and_then(|g| self.group_owed.get_mut(g));
            if let Some(owed) = owed {
                if !h.attempted.suspend {
                    for process in h.holds.suspend.drain(..) {
                        owed.resume.remove(&process);
                    }
                }
                if !h.attempted.standby && h.holds.standby {
                    h.holds.standby = false;
                    owed.exit_standby.remove(&h.id);
                }
            }
        }
        let gone: BTreeSet<String> = held
            .iter()
            .filter(|h| matches!(endings.get(&h.id), Some(Ending::Gone(_))))
            .map(|h| h.id.clone())
            .collect();
        let cluster = self.cluster.to_string();
        // ACTIVE again, where ECS still shows it DRAINING (an instance the tool drained
        // that someone has since set ACTIVE is left as it is).
        let ids: Vec<String> = held.iter().map(|h| h.id.clone()).collect();
        let draining: BTreeSet<String> = match self.agents(&ids).await {
            Ok(agents) => held
                .iter()
                .filter(|h| {
                    self.agent_of(&agents, &h.id)
                        .is_some_and(|a| a.status.as_deref() == Some("DRAINING"))
                })
                .map(|h| h.id.clone())
                .collect(),
            // Not knowing: set them ACTIVE (the tool set DRAINING, so it may undo it).
            Err(_) => ids.iter().cloned().collect(),
        };
        let activate: Vec<&Held> = held
            .iter()
            .filter(|h| h.debts.contains(&InstanceDebt::Activate) && !gone.contains(&h.id))
            .collect();
        let arns: Vec<String> = activate
            .iter()
            .filter(|h| draining.contains(&h.id))
            .map(|h| h.arn.clone())
            .collect();
        let activated = arns.is_empty()
            || self
                .patiently(|| self.fleet.set_draining(&cluster, &arns, false))
                .await
                .map_err(|error| {
                    for h in &activate {
                        unpaid.entry(h.id.clone()).or_default().push(format!(
                            "set ACTIVE failed ({error}): aws ecs update-container-instances-state --cluster {cluster} --container-instances {} --status ACTIVE",
                            h.arn
                        ));
                    }
                })
                .is_ok();
        for h in held.iter_mut() {
            if activated || gone.contains(&h.id) {
                h.debts.remove(&InstanceDebt::Activate);
            }
        }
        let groups: BTreeSet<String> = held.iter().filter_map(|h| h.group.clone()).collect();
        // The groups' records as they are now: one that is no longer this cluster's is
        // not overwritten (not knowing, this run's own record is updated).
        let tags = if groups.is_empty() {
            BTreeMap::new()
        } else {
            self.patiently(|| self.fleet.group_marks())
                .await
                .unwrap_or_default()
        };
        for group in groups {
            let members: Vec<usize> = (0..held.len())
                .filter(|i| held[*i].group.as_ref() == Some(&group))
                .collect();
            let protected: Vec<String> = members
                .iter()
                .map(|i| &held[*i])
                .filter(|h| h.debts.contains(&InstanceDebt::Unprotect) && !gone.contains(&h.id))
                .map(|h| h.id.clone())
                .collect();
            let unprotected = protected.is_empty()
                || self
                    .patiently(|| self.fleet.set_scale_in_protection(&group, &protected, false))
                    .await
                    .map_err(|error| {
                        for id in &protected {
                            unpaid.entry(id.clone()).or_default().push(format!(
                                "removing scale-in protection failed ({error}): aws autoscaling set-instance-protection --auto-scaling-group-name {group} --instance-ids {id} --no-protected-from-scale-in"
                            ));
                        }
                    })
                    .is_ok();
            for i in &members {
                if unprotected || gone.contains(&held[*i].id) {
                    held[*i].debts.remove(&InstanceDebt::Unprotect);
                }
            }
            // Standby: only members the tool put there and that still exist.
            let standby: Vec<String> = members
                .iter()
                .map(|i| &held[*i])
                .filter(|h| h.holds.standby && !gone.contains(&h.id))
                .map(|h| h.id.clone())
                .collect();
            let mut exited: Vec<String> = members
                .iter()
                .map(|i| &held[*i])
                .filter(|h| h.holds.standby && gone.contains(&h.id))
                .map(|h| h.id.clone())
                .collect();
            if !standby.is_empty() {
                let exit = match self
                    .patiently(|| self.fleet.auto_scaling(&cluster, &standby))
                    .await
                {
                    Ok(scaling) => match scaling.groups.get(&group) {
                        Some(g) => exit_standby_allowed(
                            g,
                            i32::try_from(standby.len()).unwrap_or(i32::MAX),
                        ),
                        None => Err(format!("Auto Scaling group {group} could not be read")),
                    },
                    Err(error) => Err(error.to_string()),
                };
                let exit = match exit {
                    Ok(()) => self
                        .patiently(|| self.fleet.set_standby(&group, &standby, false))
                        .await
                        .map_err(|e| e.to_string()),
                    Err(why) => Err(why),
                };
                match exit {
                    Ok(()) => exited.extend(standby.iter().cloned()),
                    Err(why) => {
                        for id in &standby {
                            unpaid.entry(id.clone()).or_default().push(format!(
                                "leaving Standby failed ({why}): aws autoscaling exit-standby --auto-scaling-group-name {group} --instance-ids {id}"
                            ));
                        }
                    }
                }
            }
            // The processes this batch suspended, once for the group.
            let resume: BTreeSet<String> = members
                .iter()
                .flat_map(|i| held[*i].holds.suspend.iter().cloned())
                .collect();
            let resume: Vec<String> = resume.into_iter().collect();
            let resumed = resume.is_empty()
                || self
                    .patiently(|| self.fleet.set_processes_suspended(&group, &resume, false))
                    .await
                    .map_err(|error| {
                        for i in &members {
                            unpaid.entry(held[*i].id.clone()).or_default().push(format!(
                                "resuming processes failed ({error}): aws autoscaling resume-processes --auto-scaling-group-name {group} --scaling-processes {}",
                                resume.join(" ")
                            ));
                        }
                    })
                    .is_ok();
            // The group's record: what is still owed.
            let owed = self.group_owed.entry(group.clone()).or_default();
            if resumed {
                for process in &resume {
                    owed.resume.remove(process);
                }
            }
            for id in &exited {
                owed.exit_standby.remove(id);
            }
            let owed = owed.clone();
            self.hooks.owe_group(&group, &owed);
            let value = if owed.is_empty() {
                self.group_owed.remove(&group);
                None
            } else {
                owed.encode().ok()
            };
            if let Err(error) = self.hooks.checkpoint() {
                for i in &members {
                    unpaid.entry(held[*i].id.clone()).or_default().push(format!(
                        "cannot write the journal ({error}): the group's record on AWS is left as it was"
                    ));
                }
                continue;
            }
            if let Err(why) = group_record(tags.get(&group), &cluster) {
                for i in &members {
                    unpaid.entry(held[*i].id.clone()).or_default().push(format!(
                        "Auto Scaling group {group} {why}; its record was left as it is"
                    ));
                }
                continue;
            }
            if let Err(error) = self
                .patiently(|| self.fleet.write_group_mark(&group, value.as_deref()))
                .await
            {
                for i in &members {
                    unpaid.entry(held[*i].id.clone()).or_default().push(format!(
                        "updating the group's restore record failed ({error}); run again to clear it"
                    ));
                }
            }
        }
        // The instances' records: cleared when nothing is owed, else what is.
        for h in held.iter_mut() {
            if gone.contains(&h.id) {
                h.debts.clear();
            }
            self.hooks.owe_instance(&h.id, &h.arn, &h.debts);
        }
        if let Err(error) = self.hooks.checkpoint() {
            for h in held.iter() {
                unpaid.entry(h.id.clone()).or_default().push(format!(
                    "cannot write the journal ({error}): its record on AWS is left as it was"
                ));
            }
            return unpaid
                .into_iter()
                .map(|(id, lines)| (id, lines.join("; ")))
                .collect();
        }
        let marks: Vec<InstanceMark> = held
            .iter()
            .filter_map(|h| {
                if h.debts.is_empty() {
                    Some(InstanceMark {
                        container_instance_arn: h.arn.clone(),
                        name: OWES_ATTRIBUTE,
                        value: None,
                    })
                } else {
                    owes_mark(&self.run, h).ok()
                }
            })
            .collect();
        if let Err(error) = self
            .patiently(|| self.fleet.write_instance_marks(&cluster, &marks))
            .await
        {
            for h in held.iter() {
                unpaid.entry(h.id.clone()).or_default().push(format!(
                    "updating its restore record failed ({error}); run again to clear it"
                ));
            }
        }
        unpaid
            .into_iter()
            .map(|(id, lines)| (id, lines.join("; ")))
            .collect()
    }
}

/// The start of the failure of an instance that did not come back: it halts the rollout.
const NOT_BACK: &str = "did not come back after the reboot";

/// The instance's restore record as it stands.
fn owes_mark(
    run: &crate::journal::marks::RunId,
    held: &Held,
) -> Result<InstanceMark, Interruption> {
    let value = InstanceOwed {
        run: run.clone(),
        debts: held.debts.clone(),
    }
    .encode()
    .map_err(|e| Interruption::Journal(e.to_string()))?;
    Ok(InstanceMark {
        container_instance_arn: held.arn.clone(),
        name: OWES_ATTRIBUTE,
        value: Some(value),
    })
}

/// Whether the group's restore record (if any) lets this cluster's run add to it: none,
/// or one of this cluster. Another cluster's, or one this version cannot read, blocks.
fn group_record(value: Option<&String>, cluster: &str) -> Result<(), String> {
    let Some(value) = value else {
        return Ok(());
    };
    match GroupOwed::parse(value) {
        Ok(owed) if owed.cluster == cluster => Ok(()),
        Ok(owed) => Err(format!(
            "carries a restore record of cluster {}: finish that cluster's run first",
            owed.cluster
        )),
        Err(error) => Err(format!("{error}")),
    }
}

/// The placement check for one instance of a batch: its service tasks, with those of the
/// batch's members that passed before it (all of them move at once), against the
/// cluster's other hosts; no member of the batch counts as room.
fn placement(
    workload: &Workload,
    id: &str,
    earlier: &[&str],
    batch: &[String],
) -> crate::rollout::capacity::DrainCheck {
    let moving: Vec<MovingTask> = workload
        .tasks
        .iter()
        .filter(|t| t.instance_id == id || earlier.contains(&t.instance_id.as_str()))
        .filter_map(|t| {
            Some(MovingTask {
                task_arn: t.task_arn.clone(),
                service: t.service()?.to_string(),
                cpu: t.cpu,
                memory: t.memory,
                host_ports: t.host_ports.clone(),
                awsvpc: t.awsvpc,
            })
        })
        .collect();
    let services: BTreeMap<String, Service> = workload
        .services
        .iter()
        .map(|(name, s)| (name.clone(), s.service.clone()))
        .collect();
    let hosts: Vec<_> = workload
        .hosts
        .iter()
        .filter(|h| h.instance_id == id || !batch.contains(&h.instance_id))
        .cloned()
        .collect();
    check_drain(id, &moving, &services, &hosts)
}
