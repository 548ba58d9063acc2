//! The orchestrator: drives a [`Fleet`] through the waves, one state change at a time,
//! and emits an event for each. It never prints, keeps no wall clock of its own (times in
//! events come from the [`Clock`]), and waits only on `tokio::time`, so a simulated
//! rollout of hours runs in milliseconds under a paused clock.
//!
//! Through its [`Hooks`] it asks for a checkpoint (the journal made durable) before every
//! action on AWS, and whether it may start new work (no interrupt, the lease held) before
//! every wave. Work already under way is followed to its end either way. Restarts still
//! under way when an earlier run stopped come in as preset `restarting`/`reconnecting`
//! states and are followed first, not sent again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::estimate::{Estimates, StepKind};
use super::script::{parse_evidence, Evidence, EvidenceError, RestartMethod};
use super::state::{Event, InstanceState, Proof};
use super::waves::{next_wave, plan_waves, Candidate, MaxUnavailable, Wave, WavePolicy};
use crate::clock::{unix_seconds, Clock};
use crate::fleet::{
    AgentState, CommandId, Fleet, FleetError, InstanceMark, InvocationStatus, RestartRequest,
    EXECUTION_GRACE,
};
use crate::inventory::Platform;
use crate::journal::marks::{DoneMark, GroupOwed, InstanceDebt, RunId, DONE_ATTRIBUTE};
use crate::verify::record::ProbeRecord;
use crate::verify::{Outstanding, Path, ProbeConfig, ProbeSite, Prober, Verdict, VerifyMode};
use crate::window::{Start, TimeLimits};

/// SSM takes at most 50 instance ids per `SendCommand`.
const SEND_BATCH: usize = 50;
/// The pause before probing again an agent whose websockets are not all up yet.
const SETTLE_PAUSE: Duration = Duration::from_secs(5);
/// `ListCommandInvocations` returns at most 2,500 characters of output; this close to it,
/// the output may have been cut.
const TRUNCATED_OUTPUT: usize = 2400;

/// How the rollout behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutConfig {
    pub waves: WavePolicy,
    /// Failures tolerated before the rollout halts (`--max-failures`).
    pub max_failures: usize,
    /// Wait between waves (`--wave-pause`).
    pub wave_pause: Duration,
    /// How long an agent may take to restart and reconnect (`--agent-timeout`).
    pub agent_timeout: Duration,
    /// How long SSM may take to deliver a command.
    pub delivery_timeout: Duration,
    pub method: RestartMethod,
    /// How often the fleet is read while a wave is in flight.
    pub poll_interval: Duration,
    /// Where SSM cannot restart the agent: drain and reboot, or not.
    pub fallback: FallbackConfig,
    /// What proves an instance done after its restart or reboot (`--verify`); `None`:
    /// `private` where SSM reaches the instance, `connected` where it does not.
    pub verify: Option<VerifyMode>,
    /// When steps may start (`--window`, `--deadline`): each wave and each reboot batch
    /// starts only if its expected duration ends in time.
    pub limits: TimeLimits,
}

/// Which instances may be drained and rebooted (`--strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Restart over SSM; drain and reboot where SSM cannot.
    #[default]
    Auto,
    /// Only restart over SSM; instances SSM cannot restart fail with "needs reboot".
    Restart,
    /// Drain and reboot every instance.
    Reboot,
}

/// How the drain-and-reboot fallback behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackConfig {
    pub strategy: Strategy,
    /// Instances draining or rebooting at once (`--max-reboots`).
    pub max_reboots: usize,
    /// How long a drain (and a wait for services to settle) may take (`--drain-timeout`).
    pub drain_timeout: Duration,
    /// How long an instance may take to come back after the reboot (`--reboot-timeout`).
    pub reboot_timeout: Duration,
    /// Hold the instance in Standby instead of scale-in protection (`--use-standby`).
    pub use_standby: bool,
    /// Drain even when the placement check says the tasks do not fit.
    pub skip_capacity_check: bool,
    /// Reboot instances that run tasks outside any service (they die).
    pub reboot_standalone_tasks: bool,
    /// Reboot when the drain timed out, rather than restore and fail.
    pub reboot_after_drain_timeout: bool,
    /// How often the cluster's tasks are read during a drain.
    pub drain_poll: Duration,
    /// How often a rebooting instance is read.
    pub rejoin_poll: Duration,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        FallbackConfig {
            strategy: Strategy::Auto,
            max_reboots: 1,
            drain_timeout: Duration::from_secs(15 * 60),
            reboot_timeout: Duration::from_secs(15 * 60),
            use_standby: false,
            skip_capacity_check: false,
            reboot_standalone_tasks: false,
            reboot_after_drain_timeout: false,
            drain_poll: Duration::from_secs(10),
            rejoin_poll: Duration::from_secs(5),
        }
    }
}

impl RolloutConfig {
    /// Probes go out and are polled like restarts.
    pub fn probe_config(&self) -> ProbeConfig {
        ProbeConfig {
            delivery_timeout: self.delivery_timeout,
            poll_interval: self.poll_interval,
        }
    }
}

impl Default for RolloutConfig {
    fn default() -> Self {
        RolloutConfig {
            waves: WavePolicy {
                max_unavailable: MaxUnavailable::Percent(10),
                canary: 1,
                by_az: false,
            },
            max_failures: 0,
            wave_pause: Duration::ZERO,
            agent_timeout: Duration::from_secs(300),
            delivery_timeout: Duration::from_secs(60),
            method: RestartMethod::Auto,
            poll_interval: Duration::from_secs(1),
            fallback: FallbackConfig::default(),
            verify: None,
            limits: TimeLimits::default(),
        }
    }
}

/// An instance the rollout restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub instance_id: String,
    pub container_instance_arn: String,
    pub availability_zone: String,
    pub platform: Platform,
    /// Why SSM cannot run commands on it (not managed, ping not Online); `None`: it can.
    pub no_ssm: Option<String>,
    /// The Auto Scaling group its EC2 tag names, if any: the fallback holds an instance
    /// of a group only when Auto Scaling itself lists it there.
    pub auto_scaling_group: Option<String>,
}

/// What the orchestrator tells its reporter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum RolloutEvent {
    WaveStarted {
        number: usize,
        canary: bool,
        /// A wave of the drain-and-reboot fallback.
        reboot: bool,
        instance_ids: Vec<String>,
        at: i64,
    },
    /// Something the operator should know that changes no state (an outage warning, a
    /// check overridden).
    Notice {
        instance_id: String,
        message: String,
        at: i64,
    },
    StateChanged {
        instance_id: String,
        state: Box<InstanceState>,
        at: i64,
    },
    /// The path probe's verdict on an instance, with its evidence.
    Verified {
        instance_id: String,
        verdict: Box<Verdict>,
        at: i64,
    },
    Halted {
        reason: String,
        at: i64,
    },
}

/// How the rollout ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub states: BTreeMap<String, InstanceState>,
    /// Why no more instances were started, if the rollout stopped early.
    pub halted: Option<String>,
    /// The rollout stopped because AWS failed (not because of an instance).
    pub aws_error: bool,
    /// The rollout stopped because the journal could not be written.
    pub journal_error: bool,
    /// The rollout stopped on request (interrupt, lease lost) and can be resumed.
    pub stopped: bool,
    pub waves: usize,
    /// The path verdicts taken during the rollout.
    pub verdicts: BTreeMap<String, Verdict>,
    /// Stopped by its time limits: when the next window opens (Unix seconds), if one
    /// does before the deadline.
    pub resumes_at: Option<i64>,
    /// Out of time: the rollout stopped before a step that would not have ended in time.
    pub out_of_time: bool,
    /// What the steps took, this session's measurements added.
    pub estimates: Estimates,
}

/// What the orchestrator needs from whoever runs it, besides the fleet and the clock.
pub trait Hooks {
    /// Something happened: a wave started, an instance changed state, the rollout halted.
    fn event(&mut self, event: RolloutEvent);

    /// Makes every change so far durable (the journal). Called before each action on AWS
    /// that changes something; an error stops the rollout before that action.
    fn checkpoint(&mut self) -> Result<(), String> {
        Ok(())
    }

    /// Why no new work may start now (an interrupt, the lease lost), if it may not.
    fn stop_reason(&mut self) -> Option<String> {
        None
    }

    /// From now on the tool owes the instance these restores (none: it owes nothing).
    /// Called before the change that creates a debt, and after a debt is paid; a
    /// checkpoint follows before the change is made.
    fn owe_instance(
        &mut self,
        _instance_id: &str,
        _container_instance_arn: &str,
        _debts: &BTreeSet<InstanceDebt>,
    ) {
    }

    /// From now on the tool owes the group this (empty: nothing).
    fn owe_group(&mut self, _group: &str, _owed: &GroupOwed) {}
}

/// A closure is hooks that only watch the events.
impl<F: FnMut(RolloutEvent)> Hooks for F {
    fn event(&mut self, event: RolloutEvent) {
        self(event)
    }
}

/// What the rollout works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutInput {
    pub cluster: String,
    /// Written into each done marker.
    pub run: RunId,
    pub targets: Vec<Target>,
    /// Instances decided before the rollout (skipped, failed because SSM cannot reach
    /// them, done by an earlier run), or restarts an earlier run left under way
    /// (`restarting`, `reconnecting`): those are followed, not sent again.
    pub preset: Vec<(String, InstanceState)>,
    /// The container-instance ARNs of the cluster's other instances: any of them with
    /// its agent disconnected is unavailable too and counts against the bound.
    pub bystanders: Vec<String>,
    /// This rollout continues an earlier run: restarts it sent may still be under way on
    /// instances it does not know about (no journal), so pending instances whose agent
    /// is away are waited for before the first wave.
    pub resumed: bool,
    /// Where path probes go and how they are judged.
    pub site: ProbeSite,
    /// What earlier sessions of this run measured, for the time limits.
    pub estimates: Estimates,
}

/// Why the rollout cannot go on.
enum Interruption {
    Aws(FleetError),
    Journal(String),
}

impl From<FleetError> for Interruption {
    fn from(error: FleetError) -> Self {
        Interruption::Aws(error)
    }
}

impl Outcome {
    pub fn count(&self, state: &str) -> usize {
        self.states.values().filter(|s| s.name() == state).count()
    }
}

struct Rollout<'a, F, C: ?Sized> {
    fleet: &'a F,
    clock: &'a C,
    cluster: &'a str,
    config: &'a RolloutConfig,
    run: RunId,
    targets: BTreeMap<String, Target>,
    states: BTreeMap<String, InstanceState>,
    hooks: &'a mut dyn Hooks,
    waves_done: usize,
    aws_error: bool,
    journal_error: bool,
    stopped: bool,
    resumed: bool,
    bystanders: Vec<String>,
    /// Done instances whose marker is on AWS (or that were done before this rollout).
    marked: BTreeSet<String>,
    /// What this rollout owes each Auto Scaling group (as its tag on AWS says).
    group_owed: BTreeMap<String, GroupOwed>,
    site: ProbeSite,
    verdicts: BTreeMap<String, Verdict>,
    /// What steps took so far, for the time limits.
    estimates: Estimates,
    /// The order the waves take the instances in: the plan's, fixed at the first wave.
    wave_order: Option<Vec<String>>,
    out_of_time: bool,
    resumes_at: Option<i64>,
}

/// Restarts the input's targets in waves, marking each on AWS once it is proven done.
pub async fn roll<F: Fleet, C: Clock + ?Sized>(
    fleet: &F,
    clock: &C,
    input: RolloutInput,
    config: &RolloutConfig,
    hooks: &mut dyn Hooks,
) -> Outcome {
    let RolloutInput {
        cluster,
        run,
        targets,
        preset,
        bystanders,
        resumed,
        site,
        estimates,
    } = input;
    let mut rollout = Rollout {
        fleet,
        clock,
        cluster: &cluster,
        config,
        run,
        states: targets
            .iter()
            .map(|t| (t.instance_id.clone(), InstanceState::Pending))
            .collect(),
        targets: targets
            .into_iter()
            .map(|t| (t.instance_id.clone(), t))
            .collect(),
        hooks,
        waves_done: 0,
        aws_error: false,
        journal_error: false,
        stopped: false,
        resumed,
        bystanders,
        marked: BTreeSet::new(),
        group_owed: BTreeMap::new(),
        site,
        verdicts: BTreeMap::new(),
        estimates,
        wave_order: None,
        out_of_time: false,
        resumes_at: None,
    };
    for (id, state) in preset {
        if matches!(state, InstanceState::Done { .. }) {
            rollout.marked.insert(id.clone());
        }
        let state = match state {
            InstanceState::NeedsReboot { reason }
                if config.fallback.strategy == Strategy::Restart =>
            {
                InstanceState::Failed {
                    reason: format!("{NEEDS_REBOOT}{reason} (--strategy restart)"),
                }
            }
            other => other,
        };
        rollout.set(&id, state);
    }
    let halted = match rollout.run().await {
        Ok(halted) => halted,
        Err(Interruption::Aws(error)) => {
            rollout.aws_error = true;
            Some(format!("AWS error: {error}"))
        }
        Err(Interruption::Journal(error)) => {
            rollout.journal_error = true;
            Some(journal_reason(&error))
        }
    };
    if let Some(reason) = &halted {
        let at = rollout.now();
        rollout.hooks.event(RolloutEvent::Halted {
            reason: reason.clone(),
            at,
        });
    }
    let waves = rollout.waves_done;
    Outcome {
        states: rollout.states,
        halted,
        aws_error: rollout.aws_error,
        journal_error: rollout.journal_error,
        stopped: rollout.stopped,
        waves,
        verdicts: rollout.verdicts,
        resumes_at: rollout.resumes_at,
        out_of_time: rollout.out_of_time,
        estimates: rollout.estimates,
    }
}

impl<F: Fleet, C: Clock + ?Sized> Rollout<'_, F, C> {
    fn now(&self) -> i64 {
        unix_seconds(self.clock.now())
    }

    fn set(&mut self, id: &str, state: InstanceState) {
        let at = self.now();
        self.hooks.event(RolloutEvent::StateChanged {
            instance_id: id.to_string(),
            state: Box::new(state.clone()),
            at,
        });
        self.states.insert(id.to_string(), state);
    }

    /// Applies an event; an impossible one is a bug and fails the instance loudly.
    fn apply(&mut self, id: &str, event: Event) {
        let Some(current) = self.states.get(id).cloned() else {
            return;
        };
        // Whatever keeps SSM from proving a restart can be mended by a reboot, where the
        // strategy allows; losing AWS cannot.
        let rebootable = !matches!(event, Event::Abandoned { .. });
        let next = match current.clone().on(event) {
            Ok(InstanceState::Failed { reason })
                if rebootable
                    && self.config.fallback.strategy != Strategy::Restart
                    && !current.is_final() =>
            {
                InstanceState::NeedsReboot {
                    reason: reason
                        .strip_prefix(NEEDS_REBOOT)
                        .unwrap_or(&reason)
                        .to_string(),
                }
            }
            Ok(InstanceState::Done { evidence }) => self.proven(id, evidence),
            Ok(next) => next,
            Err(bug) => InstanceState::Failed {
                reason: format!("internal error: {bug}"),
            },
        };
        if next != current {
            self.set(id, next);
        }
    }

    fn pending(&self) -> Vec<Candidate> {
        self.states
            .iter()
            .filter(|(_, s)| **s == InstanceState::Pending)
            .filter_map(|(id, _)| self.targets.get(id))
            .map(|t| Candidate {
                instance_id: t.instance_id.clone(),
                availability_zone: t.availability_zone.clone(),
            })
            .collect()
    }

    fn failures(&self) -> usize {
        self.states
            .values()
            .filter(|s| matches!(s, InstanceState::Failed { .. }))
            .count()
    }

    /// Calls the fleet, retrying what AWS throttled with a growing pause.
    async fn patiently<T, Fut>(&self, call: impl FnMut() -> Fut) -> Result<T, FleetError>
    where
        Fut: std::future::Future<Output = Result<T, FleetError>>,
    {
        crate::fleet::patiently(call).await
    }

    fn checkpoint(&mut self) -> Result<(), Interruption> {
        self.hooks.checkpoint().map_err(Interruption::Journal)
    }

    /// Marks on AWS every instance proven done since the last call, after the journal
    /// has recorded it: a run from anywhere then knows not to touch it again.
    async fn mark_done(&mut self) -> Result<(), Interruption> {
        let at = self.now();
        let done: Vec<(String, String)> = self
            .states
            .iter()
            .filter(|(id, s)| matches!(s, InstanceState::Done { .. }) && !self.marked.contains(*id))
            .filter_map(|(id, _)| {
                Some((
                    id.clone(),
                    self.targets.get(id)?.container_instance_arn.clone(),
                ))
            })
            .collect();
        if done.is_empty() {
            return Ok(());
        }
        self.checkpoint()?;
        let value = DoneMark {
            run: self.run.clone(),
            at,
        }
        .encode()
        .map_err(|e| Interruption::Journal(e.to_string()))?;
        let marks: Vec<InstanceMark> = done
            .iter()
            .map(|(_, arn)| InstanceMark {
                container_instance_arn: arn.clone(),
                name: DONE_ATTRIBUTE,
                value: Some(value.clone()),
            })
            .collect();
        self.patiently(|| self.fleet.write_instance_marks(self.cluster, &marks))
            .await?;
        self.marked.extend(done.into_iter().map(|(id, _)| id));
        Ok(())
    }

    /// Restarts an earlier run left under way: followed to their end, never sent again.
    async fn adopt(&mut self) -> Result<(), Interruption> {
        let now = Instant::now();
        let commands: BTreeMap<String, (CommandId, Instant)> = self
            .states
            .iter()
            .filter(|(id, _)| self.targets.contains_key(*id))
            .filter_map(|(id, state)| match state {
                InstanceState::Restarting { command_id }
                | InstanceState::Reconnecting { command_id, .. } => {
                    Some((id.clone(), (CommandId(command_id.clone()), now)))
                }
                _ => None,
            })
            .collect();
        if !commands.is_empty() {
            self.follow(commands).await?;
        }
        // Proven by an earlier run, its path not yet judged.
        self.verify_paths().await?;
        self.mark_done().await
    }

    /// How an instance's path decides (`--verify`, else by SSM's reach).
    fn verify_mode(&self, id: &str) -> VerifyMode {
        VerifyMode::for_instance(self.config.verify, self.ssm_reachable(id))
    }

    fn ssm_reachable(&self, id: &str) -> bool {
        self.targets.get(id).is_some_and(|t| t.no_ssm.is_none())
    }

    /// A restart or reboot proven: done, or first verifying where its path is probed.
    fn proven(&self, id: &str, proof: Proof) -> InstanceState {
        if self.verify_mode(id).probes(self.ssm_reachable(id)) {
            InstanceState::Verifying { proof }
        } else {
            InstanceState::Done { evidence: proof }
        }
    }

    fn prober(&self) -> Prober<'_, F> {
        Prober {
            fleet: self.fleet,
            site: &self.site,
            config: self.config.probe_config(),
        }
    }

    /// Probes every verifying instance, one command per platform and 50 instances, and
    /// judges each as its record comes in. A wave's probes go out together once its
    /// restarts are proven: probing each instance as soon as its own restart was proven
    /// ended the waves no sooner on the simulated fleet (the slowest restart's host is
    /// also the slowest to answer its probe) and cost more reads (docs/PERFORMANCE.md).
    ///
    /// An agent whose websockets are not all up yet (TCS connects a moment after ACS) is
    /// probed again, every few seconds, for up to `--agent-timeout`.
    async fn verify_paths(&mut self) -> Result<(), Interruption> {
        let mut waiting: Vec<(String, Platform)> = self
            .states
            .iter()
            .filter(|(_, s)| matches!(s, InstanceState::Verifying { .. }))
            .filter_map(|(id, _)| Some((id.clone(), self.targets.get(id)?.platform)))
            .collect();
        let settle_until = Instant::now() + self.config.agent_timeout;
        while !waiting.is_empty() {
            let mut outstanding = Outstanding::default();
            let mut refused = self.prober().start(&waiting, &mut outstanding).await?;
            // SSM refuses a probe for an instance that is gone (terminated after its
            // restart): it left, it did not fail.
            if !refused.is_empty() {
                let ids: Vec<String> = refused.keys().cloned().collect();
                let agents = self.agents(&ids).await?;
                for id in ids {
                    if self.agent_of(&agents, &id).is_none() {
                        refused.remove(&id);
                        let reason =
                            "left the cluster after its restart, before its path was probed";
                        self.set(
                            &id,
                            InstanceState::Gone {
                                reason: reason.into(),
                            },
                        );
                    }
                }
            }
            self.conclude(refused, None);
            let mut again = Vec::new();
            while !outstanding.is_empty() {
                tokio::time::sleep(self.config.poll_interval).await;
                let results = self.prober().collect(&mut outstanding).await?;
                again.extend(self.conclude(results, Some(settle_until)));
            }
            if !again.is_empty() {
                tokio::time::sleep(SETTLE_PAUSE).await;
            }
            waiting = again
                .into_iter()
                .filter_map(|id| Some((id.clone(), self.targets.get(&id)?.platform)))
                .collect();
        }
        Ok(())
    }

    /// Judges probe results: under `private` an instance is done only when its agent is
    /// on the endpoints, else failed with the verdict; under `connected` the verdict is
    /// evidence only. Returns the instances still settling before `settle_until`, to be
    /// probed again rather than judged.
    fn conclude(
        &mut self,
        results: BTreeMap<String, Result<ProbeRecord, String>>,
        settle_until: Option<Instant>,
    ) -> Vec<String> {
        let mut again = Vec::new();
        for (id, record) in results {
            let Some(InstanceState::Verifying { proof }) = self.states.get(&id).cloned() else {
                continue;
            };
            let verdict = self.prober().judge(&id, record);
            let settling = verdict.settling
                && self.verify_mode(&id) == VerifyMode::Private
                && settle_until.is_some_and(|until| Instant::now() < until);
            if settling {
                again.push(id);
                continue;
            }
            let at = self.now();
            self.hooks.event(RolloutEvent::Verified {
                instance_id: id.clone(),
                verdict: Box::new(verdict.clone()),
                at,
            });
            let next = match (self.verify_mode(&id), verdict.path) {
                (VerifyMode::Private, Path::Public | Path::Unknown) => {
                    let after = match proof {
                        Proof::Restart(_) => "restart",
                        Proof::Reboot(_) => "reboot",
                    };
                    InstanceState::Failed {
                        reason: format!("not on the endpoints after the {after}: {verdict}"),
                    }
                }
                _ => InstanceState::Done { evidence: proof },
            };
            self.verdicts.insert(id.clone(), verdict);
            self.set(&id, next);
        }
        again
    }

    /// Whether a step expected to take `expected` would end in time (`--window`,
    /// `--deadline`); if not, why the rollout stops here. Nothing is waited for once the
    /// rollout has begun: the run ends with what it started finished, and the next run
    /// (`--resume`) goes on in the next window.
    fn out_of_time(&mut self, expected: Duration) -> Option<String> {
        let limits = &self.config.limits;
        if limits.is_none() {
            return None;
        }
        let now = match jiff::Timestamp::try_from(self.clock.now()) {
            Ok(now) => now,
            // Fail closed: without the time, nothing may be said to fit.
            Err(error) => return Some(format!("cannot read the time: {error}")),
        };
        let (why, resumes_at) = match limits.may_start(now, expected) {
            Start::Go => return None,
            Start::WaitUntil(opens) => {
                ("the maintenance window has closed".to_string(), Some(opens))
            }
            Start::Stop { why, resumes_at } => (why, resumes_at),
        };
        self.out_of_time = true;
        self.stopped = true;
        self.resumes_at = resumes_at.map(|t| t.as_second());
        Some(why)
    }

    /// Waits `pause`, in short steps so that a stop request is not kept waiting.
    async fn pause(&mut self, pause: Duration) {
        let step = Duration::from_secs(1);
        let until = Instant::now() + pause;
        while Instant::now() < until && self.hooks.stop_reason().is_none() {
            tokio::time::sleep(step.min(until - Instant::now())).await;
        }
    }

    /// The restarts over SSM in waves, then the drains and reboots; returns why it
    /// halted, if it did.
    async fn run(&mut self) -> Result<Option<String>, Interruption> {
        self.adopt().await?;
        let failures_before = self.failures();
        let width =
            self.config.waves.max_unavailable.resolve(
                self.pending().len() + self.in_flight_count() + self.needing_reboot().len(),
            );
        if let Some(halted) = self.ssm_waves(width, failures_before).await? {
            return Ok(Some(halted));
        }
        self.reboots(width, failures_before).await
    }

    /// Too many failures since the rollout began: why it halts.
    fn too_many_failures(&self, failures_before: usize) -> Option<String> {
        let failures = self.failures() - failures_before;
        (failures > self.config.max_failures).then(|| {
            format!(
                "{failures} instance(s) failed, more than --max-failures {}",
                self.config.max_failures
            )
        })
    }

    /// The restarts over SSM, wave by wave.
    async fn ssm_waves(
        &mut self,
        width: usize,
        failures_before: usize,
    ) -> Result<Option<String>, Interruption> {
        let mut waiting_since: Option<Instant> = None;
        loop {
            let mut pending = self.pending();
            if pending.is_empty() {
                return Ok(None);
            }
            if let Some(reason) = self.hooks.stop_reason() {
                self.stopped = true;
                return Ok(Some(reason));
            }
            // A failed instance whose agent is still away is still unavailable: it uses up
            // part of the bound until it comes back.
            let (mut away, mut pending_away) = self.failed_and_away().await?;
            // Wait for them no longer than an agent may take to come back; after that
            // they are planned like the others (their own restart is what counts).
            let waiting = *waiting_since.get_or_insert_with(Instant::now);
            if Instant::now() >= waiting + self.config.agent_timeout {
                away.retain(|name| !pending_away.contains(name));
                pending_away.clear();
            }
            let still_away = away.len();
            pending.retain(|c| !pending_away.contains(&c.instance_id));
            let room = width.saturating_sub(still_away);
            if room == 0 && !pending_away.is_empty() {
                // Restarts of an earlier run still under way: wait for them to end.
                tokio::time::sleep(self.config.poll_interval).await;
                continue;
            }
            if room == 0 {
                // Restarts whose agent never came back use up the bound: their reboots
                // come first (rebooting an instance already away costs nothing more),
                // then the waves go on.
                let needing_reboot = self.needing_reboot();
                if away.iter().any(|name| needing_reboot.contains(name)) {
                    if let Some(halted) = self.reboots(width, failures_before).await? {
                        return Ok(Some(halted));
                    }
                    continue;
                }
                return Ok(Some(format!(
                    "{still_away} instance(s) outside the rollout or failed have their agent \
                     disconnected ({}), which uses up --max-unavailable {width}; bring them \
                     back or raise --max-unavailable, then --resume",
                    away.join(", ")
                )));
            }
            // The waves follow the plan's order (as the plan showed them), each as wide as
            // the room left; only the first wave is a canary.
            if self.wave_order.is_none() {
                let policy = WavePolicy {
                    max_unavailable: MaxUnavailable::Count(
                        u32::try_from(width).unwrap_or(u32::MAX),
                    ),
                    ..self.config.waves
                };
                let order = plan_waves(&self.pending(), policy)
                    .into_iter()
                    .flat_map(|w| w.instance_ids)
                    .collect();
                self.wave_order = Some(order);
            }
            let order = self.wave_order.as_deref().unwrap_or_default();
            let by_id: BTreeMap<&str, &Candidate> = pending
                .iter()
                .map(|c| (c.instance_id.as_str(), c))
                .collect();
            let mut ordered: Vec<Candidate> = order
                .iter()
                .filter_map(|id| by_id.get(id.as_str()).map(|c| (*c).clone()))
                .collect();
            let known: BTreeSet<&String> = order.iter().collect();
            ordered.extend(
                pending
                    .iter()
                    .filter(|c| !known.contains(&c.instance_id))
                    .cloned(),
            );
            let canary = self.waves_done == 0 && self.config.waves.canary > 0;
            let take = if canary {
                self.config.waves.canary.min(room)
            } else {
                room
            };
            let instance_ids = next_wave(&ordered, take, self.config.waves.by_az);
            // No wave left: the rollout is complete, not halted (or every pending
            // instance is still away from an earlier run: wait for them).
            if instance_ids.is_empty() {
                if pending_away.is_empty() {
                    return Ok(None);
                }
                tokio::time::sleep(self.config.poll_interval).await;
                continue;
            }
            let wave = Wave {
                canary,
                instance_ids,
            };
            if let Some(why) = self.out_of_time(self.estimates.expected(StepKind::Restart)) {
                return Ok(Some(why));
            }
            self.waves_done += 1;
            let at = self.now();
            self.hooks.event(RolloutEvent::WaveStarted {
                number: self.waves_done,
                canary: wave.canary,
                reboot: false,
                instance_ids: wave.instance_ids.clone(),
                at,
            });
            let began = Instant::now();
            self.run_wave(&wave.instance_ids).await?;
            self.estimates.record(StepKind::Restart, began.elapsed());
            self.mark_done().await?;
            let failed_in_wave = wave
                .instance_ids
                .iter()
                .filter(|id| matches!(self.states.get(*id), Some(InstanceState::Failed { .. })))
                .count();
            // A canary that needs a reboot failed too: the restart over SSM did not work
            // on the first instance it was tried on.
            let failed_in_wave = failed_in_wave
                + wave
                    .instance_ids
                    .iter()
                    .filter(|id| {
                        matches!(
                            self.states.get(*id),
                            Some(InstanceState::NeedsReboot { .. })
                        )
                    })
                    .count();
            if wave.canary && failed_in_wave > 0 {
                // The canary does not fall back: its failure is the finding.
                for id in &wave.instance_ids {
                    if let Some(InstanceState::NeedsReboot { reason }) = self.states.get(id) {
                        let reason = needs_reboot(reason);
                        self.set(id, InstanceState::Failed { reason });
                    }
                }
                return Ok(Some(format!(
                    "the canary wave ({}) failed ({failed_in_wave} of {}): nothing else was touched; mend what its detail says, then run again",
                    wave.instance_ids.join(", "),
                    wave.instance_ids.len()
                )));
            }
            if let Some(halted) = self.too_many_failures(failures_before) {
                return Ok(Some(halted));
            }
            if !self.pending().is_empty() && !self.config.wave_pause.is_zero() {
                self.pause(self.config.wave_pause).await;
            }
        }
    }

    /// Instances waiting for the fallback, in order.
    fn needing_reboot(&self) -> Vec<String> {
        self.states
            .iter()
            .filter(|(id, s)| {
                matches!(s, InstanceState::NeedsReboot { .. }) && self.targets.contains_key(*id)
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn in_flight_count(&self) -> usize {
        self.states.values().filter(|s| s.is_in_flight()).count()
    }

    /// The evidence in a command's output; when the listing cut it off, read the whole
    /// output (`GetCommandInvocation`) and look again.
    async fn evidence(
        &self,
        command: &CommandId,
        id: &str,
        listed: &str,
    ) -> Result<Result<Evidence, EvidenceError>, FleetError> {
        match parse_evidence(listed) {
            Err(EvidenceError::Missing) if listed.chars().count() >= TRUNCATED_OUTPUT => {
                let whole = self
                    .patiently(|| self.fleet.command_output(command, id))
                    .await?;
                Ok(parse_evidence(&whole))
            }
            parsed => Ok(parsed),
        }
    }

    /// Instances whose agent ECS shows disconnected now, among the failed targets, those
    /// waiting for a reboot (a restart whose agent never came back) and the cluster's
    /// other instances: they are unavailable whatever the rollout does.
    /// Before the first wave the pending targets are read too: a run that resumes without
    /// its journal may find restarts of the run before it still under way. Those count,
    /// and are returned so the wave leaves them out until they are back.
    async fn failed_and_away(&self) -> Result<(Vec<String>, BTreeSet<String>), FleetError> {
        let first = self.resumed && self.waves_done == 0;
        let watched: BTreeMap<String, Option<String>> = self
            .states
            .iter()
            .filter(|(_, s)| {
                matches!(
                    s,
                    InstanceState::Failed { .. } | InstanceState::NeedsReboot { .. }
                ) || (first && **s == InstanceState::Pending)
            })
            .filter_map(|(id, _)| self.targets.get(id))
            .map(|t| {
                (
                    t.container_instance_arn.clone(),
                    Some(t.instance_id.clone()),
                )
            })
            .chain(self.bystanders.iter().map(|arn| (arn.clone(), None)))
            .collect();
        if watched.is_empty() {
            return Ok((Vec::new(), BTreeSet::new()));
        }
        let arns: Vec<String> = watched.keys().cloned().collect();
        let states = self
            .patiently(|| self.fleet.agent_states(self.cluster, &arns))
            .await?;
        let away: Vec<&AgentState> = states.iter().filter(|a| !a.connected).collect();
        let pending_away = away
            .iter()
            .filter_map(|a| watched.get(&a.container_instance_arn).cloned().flatten())
            .filter(|id| self.states.get(id) == Some(&InstanceState::Pending))
            .collect();
        // By instance id where known, else the container instance's own id.
        let names = away
            .iter()
            .map(|a| match watched.get(&a.container_instance_arn) {
                Some(Some(id)) => id.clone(),
                _ => a
                    .container_instance_arn
                    .rsplit('/')
                    .next()
                    .unwrap_or(&a.container_instance_arn)
                    .to_string(),
            })
            .collect();
        Ok((names, pending_away))
    }

    /// What ECS says about these targets now, by container-instance ARN.
    async fn agents(&self, ids: &[String]) -> Result<BTreeMap<String, AgentState>, FleetError> {
        let arns: Vec<String> = ids
            .iter()
            .filter_map(|id| self.targets.get(id))
            .map(|t| t.container_instance_arn.clone())
            .collect();
        Ok(self
            .patiently(|| self.fleet.agent_states(self.cluster, &arns))
            .await?
            .into_iter()
            .map(|a| (a.container_instance_arn.clone(), a))
            .collect())
    }

    fn agent_of<'m>(
        &self,
        agents: &'m BTreeMap<String, AgentState>,
        id: &str,
    ) -> Option<&'m AgentState> {
        let agent = agents.get(&self.targets.get(id)?.container_instance_arn)?;
        // ECS keeps describing deregistered instances for a while: they are gone too.
        let gone = matches!(agent.status.as_deref(), Some("INACTIVE" | "DEREGISTERING"));
        (!gone).then_some(agent)
    }

    async fn run_wave(&mut self, members: &[String]) -> Result<(), Interruption> {
        // The instance list is re-read before each wave: whoever left is gone, not failed,
        // and an instance someone set DRAINING meanwhile is left alone.
        let agents = self.agents(members).await?;
        let mut by_platform: BTreeMap<Platform, Vec<String>> = BTreeMap::new();
        for id in members {
            match self
                .agent_of(&agents, id)
                .map(|a| a.status.as_deref() == Some("DRAINING"))
            {
                None => self.apply(
                    id,
                    Event::Vanished {
                        reason: "left the cluster before its wave".into(),
                    },
                ),
                Some(true) => self.apply(
                    id,
                    Event::Skip {
                        reason: "set DRAINING during the run: left alone".into(),
                    },
                ),
                Some(false) => {
                    if let Some(target) = self.targets.get(id) {
                        by_platform
                            .entry(target.platform)
                            .or_default()
                            .push(id.clone());
                    }
                }
            }
        }
        // instance id → (command, when sent)
        let mut commands: BTreeMap<String, (CommandId, Instant)> = BTreeMap::new();
        let mut failure: Option<Interruption> = None;
        'send: for (platform, ids) in by_platform {
            for batch in ids.chunks(SEND_BATCH) {
                match self.send(platform, batch).await {
                    Ok(sent) => commands.extend(sent),
                    Err(error) => {
                        // Stop starting work (the rest stays pending: not touched); follow
                        // what is already out.
                        failure = Some(error);
                        break 'send;
                    }
                }
            }
        }
        let followed = self.follow(commands).await;
        match (failure, followed) {
            (Some(error), _) | (None, Err(error)) => Err(error),
            (None, Ok(())) => self.verify_paths().await,
        }
    }

    /// Sends one batch. SSM refuses a whole batch when one instance is not in a state to
    /// take commands (unmanaged, stopped, terminated): those fail, the rest go again.
    async fn send(
        &mut self,
        platform: Platform,
        batch: &[String],
    ) -> Result<BTreeMap<String, (CommandId, Instant)>, Interruption> {
        let mut ids = batch.to_vec();
        for _ in 0..2 {
            if ids.is_empty() {
                break;
            }
            let request = RestartRequest {
                instance_ids: ids.clone(),
                platform,
                method: self.config.method,
                delivery_timeout: self.config.delivery_timeout,
                script_wait: self.config.agent_timeout,
            };
            self.checkpoint()?;
            match self.patiently(|| self.fleet.send_restart(&request)).await {
                Ok(command) => {
                    let sent = Instant::now();
                    let mut commands = BTreeMap::new();
                    for id in &ids {
                        commands.insert(id.clone(), (command.clone(), sent));
                        self.apply(
                            id,
                            Event::CommandSent {
                                command_id: command.0.clone(),
                            },
                        );
                    }
                    return Ok(commands);
                }
                Err(FleetError::InvalidInstances { instance_ids, .. })
                    if instance_ids.iter().any(|bad| ids.contains(bad)) =>
                {
                    for bad in &instance_ids {
                        let reason = needs_reboot(
                            "SSM refuses commands for it (not managed, or not running)",
                        );
                        self.apply(bad, Event::Refused { reason });
                    }
                    ids.retain(|id| !instance_ids.contains(id));
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(BTreeMap::new())
    }

    /// The instances of these commands whose restart is still under way.
    fn in_flight(&self, commands: &BTreeMap<String, (CommandId, Instant)>) -> Vec<String> {
        commands
            .keys()
            .filter(|id| {
                matches!(
                    self.states.get(*id),
                    Some(InstanceState::Restarting { .. } | InstanceState::Reconnecting { .. })
                )
            })
            .cloned()
            .collect()
    }

    /// Polls the commands and agents until every instance is final. If AWS stops
    /// answering (or the journal cannot be written), the commands still out are
    /// cancelled (best effort) and their instances failed: nothing is left looking as if
    /// it were being followed.
    async fn follow(
        &mut self,
        commands: BTreeMap<String, (CommandId, Instant)>,
    ) -> Result<(), Interruption> {
        let result = self.poll_until_final(&commands).await;
        if let Err(interruption) = &result {
            let why = match interruption {
                Interruption::Aws(error) => {
                    format!("lost contact with AWS while following the restart: {error}")
                }
                Interruption::Journal(error) => {
                    format!("stopped following the restart: {}", journal_reason(error))
                }
            };
            let open = self.in_flight(&commands);
            // One cancel per command (best effort: AWS may be what failed).
            let mut by_command: BTreeMap<&CommandId, Vec<String>> = BTreeMap::new();
            for id in &open {
                if let Some((command, _)) = commands.get(id) {
                    by_command.entry(command).or_default().push(id.clone());
                }
            }
            for (command, ids) in by_command {
                let _ = self.fleet.cancel(command, &ids).await;
            }
            for id in &open {
                self.apply(
                    id,
                    Event::Abandoned {
                        reason: needs_reboot(&why),
                    },
                );
            }
        }
        result
    }

    async fn poll_until_final(
        &mut self,
        commands: &BTreeMap<String, (CommandId, Instant)>,
    ) -> Result<(), Interruption> {
        // A command ends on its own by delivery + execution timeout; past that (and a
        // grace for SSM to report) it is cancelled and the instance given up.
        let command_deadline = self.config.delivery_timeout
            + self.config.agent_timeout
            + EXECUTION_GRACE
            + Duration::from_secs(30);
        let mut succeeded_at: BTreeMap<String, Instant> = BTreeMap::new();
        loop {
            let in_flight = self.in_flight(commands);
            if in_flight.is_empty() {
                return Ok(());
            }
            // What changed in the last round is durable before anything more is done.
            self.checkpoint()?;
            tokio::time::sleep(self.config.poll_interval).await;
            let now = Instant::now();
            let running: BTreeSet<&CommandId> = in_flight
                .iter()
                .filter(|id| matches!(self.states.get(*id), Some(InstanceState::Restarting { .. })))
                .filter_map(|id| commands.get(id).map(|(c, _)| c))
                .collect();
            let mut results = BTreeMap::new();
            for command in running {
                for invocation in self
                    .patiently(|| self.fleet.command_results(command))
                    .await?
                {
                    results.insert(invocation.instance_id.clone(), invocation);
                }
            }
            // Read ECS after the commands: an agent seen connected here was seen so after
            // its restart finished, never from before it.
            let agents = self.agents(&in_flight).await?;
            for id in &in_flight {
                let (command, sent) = &commands[id];
                let Some(connected) = self.agent_of(&agents, id).map(|a| a.connected) else {
                    if matches!(self.states.get(id), Some(InstanceState::Restarting { .. })) {
                        // Best effort: do not leave the command queued for a gone host.
                        let _ = self.fleet.cancel(command, std::slice::from_ref(id)).await;
                    }
                    self.apply(
                        id,
                        Event::Vanished {
                            reason: "left the cluster during its restart".into(),
                        },
                    );
                    continue;
                };
                match self.states.get(id) {
                    Some(InstanceState::Restarting { .. }) => match results
                        .get(id)
                        .map(|i| (&i.status, i.output.as_str()))
                    {
                        Some((InvocationStatus::Success, output)) => {
                            match self.evidence(command, id, output).await? {
                                Ok(evidence) if evidence.ok => {
                                    succeeded_at.insert(id.clone(), now);
                                    self.apply(id, Event::CommandSucceeded { evidence });
                                    self.apply(id, Event::AgentState { connected });
                                }
                                Ok(evidence) => self.apply(
                                    id,
                                    Event::CommandFailed {
                                        reason: needs_reboot(
                                            evidence.reason.as_deref().unwrap_or("restart failed"),
                                        ),
                                    },
                                ),
                                Err(error) => self.apply(
                                    id,
                                    Event::CommandFailed {
                                        reason: needs_reboot(&error.to_string()),
                                    },
                                ),
                            }
                        }
                        Some((InvocationStatus::Ended { status, details }, output)) => {
                            let on_host = parse_evidence(output).ok().and_then(|e| e.reason);
                            // The command id, for `aws ssm get-command-invocation`.
                            let why = match on_host {
                                Some(reason) => {
                                    format!("{status} ({details}): {reason}; command {}", command.0)
                                }
                                None => format!("{status} ({details}); command {}", command.0),
                            };
                            self.apply(
                                id,
                                Event::CommandFailed {
                                    reason: needs_reboot(&why),
                                },
                            );
                        }
                        _ if now >= *sent + command_deadline => {
                            self.checkpoint()?;
                            self.patiently(|| self.fleet.cancel(command, std::slice::from_ref(id)))
                                .await?;
                            let why = format!(
                                "command {} did not finish in {}s and was cancelled",
                                command.0,
                                command_deadline.as_secs()
                            );
                            self.apply(
                                id,
                                Event::CommandFailed {
                                    reason: needs_reboot(&why),
                                },
                            );
                        }
                        _ => {}
                    },
                    Some(InstanceState::Reconnecting { .. }) => {
                        self.apply(id, Event::AgentState { connected });
                        // An adopted restart was already reconnecting: count from adoption.
                        let waited = now - *succeeded_at.get(id).unwrap_or(sent);
                        if !connected && waited >= self.config.agent_timeout {
                            self.apply(id, Event::AgentTimedOut);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

const NEEDS_REBOOT: &str = "needs reboot: ";

/// Why the journal stopped the rollout: its error names the file and what to check;
/// anything else (a record that cannot be encoded) is said to be about the journal.
fn journal_reason(error: &str) -> String {
    if error.contains("journal") {
        error.to_string()
    } else {
        format!("cannot write the journal: {error}")
    }
}

fn needs_reboot(reason: &str) -> String {
    format!("{NEEDS_REBOOT}{reason}")
}

mod fallback;

#[cfg(test)]
mod tests;
