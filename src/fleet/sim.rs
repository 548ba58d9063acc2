//! `SimFleet`: a working in-memory cluster on tokio time, behind the same [`Fleet`] trait
//! as AWS. It drives the rollout's scenario tests (with tokio's paused clock, hours pass
//! in milliseconds), the demo, and time estimates.
//!
//! Nothing runs in the background: when a restart is sent, each instance's timeline
//! (delivery, agent down, agent up, ACS connected, ECS shows it) is computed from the
//! fleet's latencies and the instance's faults, and every later read evaluates that
//! timeline at `tokio::time::Instant::now()`. The fleet counts its calls like the AWS
//! adapter, and checks its invariant on every send: never more instances away at once
//! than the limit it was given.

mod copy;
mod network;
mod records;
mod workload;

pub use copy::{Blueprint, Draws, PACE_RANGE};
pub use workload::{FallbackLatencies, SimService};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::EXECUTION_GRACE;
use super::{
    AgentState, CommandId, Fleet, FleetError, InstanceMark, Invocation, InvocationStatus,
    ProbeRequest, Record, RestartRequest,
};
use crate::clock::unix_seconds;
use crate::inventory::*;
use crate::rollout::run::Target;
use crate::rollout::script::{RestartMethod, EVIDENCE_MARKER};

/// How the agent is supervised on a simulated host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervisor {
    Systemd,
    Upstart,
    /// A bare `ecs-agent` container.
    Docker,
    /// The Windows `AmazonECS` service.
    WindowsService,
}

/// Something that goes wrong on one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SSM does not manage it (or its ping is not Online): SSM refuses commands for it.
    SsmOffline,
    /// The command is delivered but never runs: it times out undelivered.
    NeverDelivered,
    /// The restart command fails on the host.
    CommandFails,
    /// The script runs past its execution timeout.
    CommandTimesOut,
    /// The invocation stays in progress and never ends (a stuck SSM agent).
    CommandHangs,
    /// The agent restarts but never reconnects to ACS.
    NeverReconnects,
    /// The agent reconnects this much later than usual.
    SlowReconnect(Duration),
    /// The restart is so fast that ECS never shows the agent disconnected.
    FastRestart,
    /// The instance is terminated this long after the fleet was made.
    TerminatedAfter(Duration),
    /// The agent is disconnected from the start and stays so.
    AgentDown,
    /// Someone sets the instance DRAINING this long after the fleet was made.
    DrainedAfter(Duration),
    /// Tasks start and stop on the instance every 2 seconds, moving the container
    /// instance's `version` counter without any restart.
    TaskChurn,
    /// Set DRAINING, its tasks never move.
    DrainStuck,
    /// After a reboot the instance never comes back: agent away, status checks failing.
    RebootNeverReturns,
    /// After a reboot the agent comes back but the EC2 status checks keep failing.
    StatusChecksFail,
    /// After a reboot the status checks pass but the agent never reconnects.
    AgentNeverRejoins,
    /// Terminated (a spot interruption) this long after it is set DRAINING.
    TerminatedWhenDrained(Duration),
    /// After a reboot its agent registers anew: ECS shows the old container instance
    /// INACTIVE while the EC2 instance runs on.
    ReregistersAfterReboot,
    /// Auto Scaling's instance listing leaves it out (as right after it joined a group).
    UnlistedByAutoScaling,
    /// The restart does nothing: the agent keeps running from before, and the evidence
    /// says so (its start is before the restart).
    RestartIneffective,
    /// The script prints 3,000 characters of noise before its evidence, so the
    /// listing's 2,500 characters cut the evidence off.
    NoisyOutput,
    /// The agent stays on the public path whatever is done (its backend host pinned).
    StaysPublic,
    /// The agent goes through an HTTPS proxy inside the VPC to the public hosts.
    ProxyInPath,
    /// The path probe finds none of its tools on the host.
    ProbeBlind,
    /// The path probe prints 3,000 characters of noise before its record.
    NoisyProbe,
    /// The path probe's invocation stays in progress and never ends.
    ProbeHangs,
    /// After a restart or reboot the agent's TCS websocket connects this much later than
    /// its ACS one.
    TelemetryLate(Duration),
}

/// Latencies of the simulated world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latencies {
    /// From `SendCommand` to the script starting on the host.
    pub delivery: Duration,
    /// From the restart to the agent's introspection API answering again.
    pub restart: Duration,
    /// From the agent starting to its ACS connection.
    pub reconnect: Duration,
    /// From the ACS connection to ECS showing `agentConnected: true`.
    pub report: Duration,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            delivery: Duration::from_secs(2),
            restart: Duration::from_secs(5),
            reconnect: Duration::from_secs(3),
            report: Duration::from_secs(1),
        }
    }
}

/// One simulated container instance.
#[derive(Debug, Clone, PartialEq)]
pub struct SimInstance {
    pub id: String,
    pub availability_zone: String,
    pub platform: Platform,
    pub supervisor: Supervisor,
    pub agent_version: String,
    pub status: String,
    /// The Auto Scaling group that launched it, if any.
    pub auto_scaling_group: Option<String>,
    pub running_tasks: i32,
    /// Multiplies this instance's latencies: hosts are not all equally fast.
    pub pace: f64,
    pub faults: Vec<Fault>,
    /// Custom attributes the tool set (`privlink-restart.*`).
    pub marks: BTreeMap<String, String>,
    /// Scale-in protection in its Auto Scaling group.
    pub protected: bool,
    /// In Standby in its Auto Scaling group.
    pub standby: bool,
    /// Registered CPU units and memory (MiB) for tasks.
    pub cpu: i64,
    pub memory: i64,
    /// ENIs it can give awsvpc tasks.
    pub enis: u32,
    /// ECS attributes (for `memberOf`).
    pub attributes: BTreeMap<String, String>,
    /// Its agent was already on the endpoints before the run (restarted after they
    /// were created).
    pub starts_private: bool,
    /// When the simulated world terminated it (Auto Scaling, a spot interruption).
    terminated_at: Option<Instant>,
}

impl SimInstance {
    /// A healthy Amazon Linux 2023 instance managed by SSM.
    pub fn healthy(id: impl Into<String>, availability_zone: impl Into<String>) -> SimInstance {
        SimInstance {
            id: id.into(),
            availability_zone: availability_zone.into(),
            platform: Platform::Linux,
            supervisor: Supervisor::Systemd,
            agent_version: "1.80.0".into(),
            status: "ACTIVE".into(),
            auto_scaling_group: None,
            running_tasks: 2,
            pace: 1.0,
            faults: Vec::new(),
            marks: BTreeMap::new(),
            protected: false,
            standby: false,
            cpu: 4096,
            memory: 8192,
            enis: 3,
            attributes: BTreeMap::new(),
            starts_private: false,
            terminated_at: None,
        }
    }

    /// Its agent is on the endpoints already.
    pub fn already_private(mut self) -> SimInstance {
        self.starts_private = true;
        self
    }

    /// With a custom attribute already set, as an earlier run would have left it.
    pub fn with_mark(mut self, name: &str, value: &str) -> SimInstance {
        self.marks.insert(name.into(), value.into());
        self
    }

    pub fn with_status(mut self, status: &str) -> SimInstance {
        self.status = status.into();
        self
    }

    pub fn with_pace(mut self, pace: f64) -> SimInstance {
        self.pace = pace;
        self
    }

    pub fn in_group(mut self, group: impl Into<String>) -> SimInstance {
        self.auto_scaling_group = Some(group.into());
        self
    }

    pub fn with_fault(mut self, fault: Fault) -> SimInstance {
        self.faults.push(fault);
        self
    }

    pub fn with_attribute(mut self, name: &str, value: &str) -> SimInstance {
        self.attributes.insert(name.into(), value.into());
        self
    }

    pub fn with_resources(mut self, cpu: i64, memory: i64) -> SimInstance {
        self.cpu = cpu;
        self.memory = memory;
        self
    }

    fn has(&self, fault: Fault) -> bool {
        self.faults.contains(&fault)
    }

    fn slow_reconnect(&self) -> Duration {
        self.faults
            .iter()
            .find_map(|f| match f {
                Fault::SlowReconnect(extra) => Some(*extra),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// The status ECS shows at `elapsed` since the fleet was made.
    fn status_at(&self, elapsed: Duration) -> String {
        let drained = self
            .faults
            .iter()
            .any(|f| matches!(f, Fault::DrainedAfter(after) if elapsed >= *after));
        if drained {
            "DRAINING".into()
        } else {
            self.status.clone()
        }
    }

    fn terminated_after(&self) -> Option<Duration> {
        self.faults.iter().find_map(|f| match f {
            Fault::TerminatedAfter(after) => Some(*after),
            _ => None,
        })
    }
}

/// What happens to one instance after a restart was sent, as offsets from the send.
#[derive(Debug, Clone)]
struct Timeline {
    sent: Instant,
    /// When the command ends, with its final status and output; `None`: never (until
    /// cancelled or the delivery timeout).
    ends: Option<(Duration, InvocationStatus, String)>,
    /// When the agent went down and came back as ECS sees it (`None`: never back).
    away: Option<(Duration, Option<Duration>)>,
    cancelled: bool,
}

struct State {
    instances: Vec<SimInstance>,
    /// instance id → the latest restart's timeline, per command.
    commands: BTreeMap<CommandId, BTreeMap<String, Timeline>>,
    /// Path probes, kept apart: they restart nothing.
    probes: BTreeMap<CommandId, BTreeMap<String, Timeline>>,
    next_command: u64,
    calls: BTreeMap<String, u64>,
    /// Every Nth call is throttled (0: never).
    throttle_every: u64,
    /// A throttling storm: the calls numbered after the first and up to the second.
    storm: Option<(u64, u64)>,
    total_calls: u64,
    outage_after: Option<u64>,
    /// Actions that always fail (as a missing permission or a broken API would).
    failing: BTreeSet<String>,
    /// Every call after the first call of this action fails (AWS lost right after it).
    outage_after_action: Option<String>,
    groups: BTreeMap<String, SimGroup>,
    /// SSM parameters by name.
    parameters: BTreeMap<String, String>,
    /// When each instance was first marked done.
    marked_done: BTreeMap<String, Instant>,
    /// How long an SSM parameter read or write takes, so that racing runs interleave.
    record_latency: Duration,
    /// The drain-and-reboot world: services, tasks, reboots.
    world: workload::World,
}

/// An Auto Scaling group's state as far as the tool touches it. Its desired capacity is
/// the number of its instances in service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimGroup {
    pub suspended: BTreeSet<String>,
    /// The value of the tool's restore-record tag.
    pub owes_tag: Option<String>,
    pub min_size: i32,
    pub max_size: i32,
    pub instance_refresh: bool,
    /// A capacity provider with managed termination protection owns the group.
    pub managed_termination_protection: bool,
    /// A capacity provider with managed scaling scales in an emptied instance that is
    /// not protected (nor in Standby) a minute after it empties.
    pub managed_scaling: bool,
}

impl Default for SimGroup {
    fn default() -> Self {
        SimGroup {
            suspended: BTreeSet::new(),
            owes_tag: None,
            min_size: 0,
            max_size: 1000,
            instance_refresh: false,
            managed_termination_protection: false,
            managed_scaling: false,
        }
    }
}

/// An in-memory cluster; see the module docs.
pub struct SimFleet {
    cluster: String,
    region: String,
    latencies: Latencies,
    /// The invariant: never more instances away at once.
    max_unavailable: Option<usize>,
    created: Instant,
    wall_start: SystemTime,
    state: Mutex<State>,
}

const ACCOUNT: &str = "123456789012";
/// Characters of output `ListCommandInvocations` returns per invocation.
const LISTED_OUTPUT: usize = 2500;

impl SimFleet {
    pub fn new(
        instances: Vec<SimInstance>,
        latencies: Latencies,
        wall_start: SystemTime,
    ) -> SimFleet {
        SimFleet {
            cluster: "sim".into(),
            region: "eu-west-1".into(),
            latencies,
            max_unavailable: None,
            created: Instant::now(),
            wall_start,
            state: Mutex::new(State {
                instances,
                commands: BTreeMap::new(),
                probes: BTreeMap::new(),
                next_command: 1,
                calls: BTreeMap::new(),
                throttle_every: 0,
                storm: None,
                total_calls: 0,
                outage_after: None,
                failing: BTreeSet::new(),
                outage_after_action: None,
                groups: BTreeMap::new(),
                parameters: BTreeMap::new(),
                marked_done: BTreeMap::new(),
                record_latency: Duration::ZERO,
                world: workload::World::default(),
            }),
        }
    }

    /// Makes every send check that no more than `limit` instances are away at once.
    pub fn with_max_unavailable(mut self, limit: usize) -> SimFleet {
        self.max_unavailable = Some(limit);
        self
    }

    /// Every call after the first `n` fails, as when credentials expire or the network
    /// goes away mid-run.
    pub fn with_outage_after(self, n: u64) -> SimFleet {
        self.lock().outage_after = Some(n);
        self
    }

    /// Every call after the first call of `action` fails, as when the network goes away
    /// right after it.
    pub fn with_outage_after_action(self, action: &str) -> SimFleet {
        self.lock().outage_after_action = Some(action.to_string());
        self
    }

    /// Makes every call of `action` (e.g. `autoscaling:ResumeProcesses`) fail.
    pub fn with_failing(self, action: &str) -> SimFleet {
        self.lock().failing.insert(action.to_string());
        self
    }

    /// Throttles every `n`th call, as a busy account would.
    pub fn with_throttling_every(self, n: u64) -> SimFleet {
        self.lock().throttle_every = n;
        self
    }

    /// A throttling storm: every call from the one after the first `after` calls, for
    /// `calls` calls, is throttled, as when another tool floods the account's API.
    pub fn with_throttling_storm(self, after: u64, calls: u64) -> SimFleet {
        self.lock().storm = Some((after, after + calls));
        self
    }

    /// The storm and any throttling end.
    pub fn calm(&self) {
        let mut state = self.lock();
        state.throttle_every = 0;
        state.storm = None;
    }

    /// The operator mends `instance_id`: its faults are gone, and a reboot it never came
    /// back from ends, as if it was started again by hand now.
    pub fn mend(&self, instance_id: &str) {
        let now = self.now();
        let mut state = self.lock();
        if let Some(instance) = state.instances.iter_mut().find(|i| i.id == instance_id) {
            instance.faults.clear();
        }
        state.world.bring_back(instance_id, now);
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn arn(&self, instance_id: &str) -> String {
        format!(
            "arn:aws:ecs:{}:{ACCOUNT}:container-instance/{}/{instance_id}",
            self.region, self.cluster
        )
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self, at: Instant) -> i64 {
        unix_seconds(self.wall_start + at.duration_since(self.created))
    }

    /// Asks `question` of one instance now (`false` when there is no such instance).
    fn about(
        &self,
        instance_id: &str,
        question: impl FnOnce(&State, &SimInstance, Instant) -> bool,
    ) -> bool {
        let state = self.lock();
        let now = self.now();
        state
            .instances
            .iter()
            .find(|i| i.id == instance_id)
            .is_some_and(|i| question(&state, i, now))
    }

    fn is_terminated(&self, instance: &SimInstance, now: Instant) -> bool {
        instance
            .terminated_after()
            .is_some_and(|after| now >= self.created + after)
            || instance.terminated_at.is_some_and(|at| now >= at)
    }

    /// Counts a call and decides whether it is throttled.
    fn call(&self, state: &mut State, action: &str) -> Result<(), FleetError> {
        *state.calls.entry(action.to_string()).or_default() += 1;
        state.total_calls += 1;
        if state.outage_after_action.as_deref() == Some(action) && state.outage_after.is_none() {
            state.outage_after = Some(state.total_calls);
            return Ok(());
        }
        if state.failing.contains(action) {
            return Err(FleetError::Aws {
                action: action.into(),
                scope: self.cluster.clone(),
                reason: "InternalFailure: injected".into(),
            });
        }
        if state.outage_after.is_some_and(|n| state.total_calls > n) {
            return Err(FleetError::Unreachable {
                endpoint: "the simulated fleet".into(),
                action: action.into(),
                reason: "connection refused".into(),
            });
        }
        let in_storm = state
            .storm
            .is_some_and(|(after, until)| state.total_calls > after && state.total_calls <= until);
        if in_storm || state.throttle_every > 0 && state.total_calls % state.throttle_every == 0 {
            return Err(FleetError::Throttled {
                action: action.into(),
                scope: self.cluster.clone(),
            });
        }
        Ok(())
    }

    /// Instances whose agent is away (or whose restart is still running) at `now`, or
    /// that are drained or rebooting: each counted once.
    fn away_now(&self, state: &State, now: Instant) -> usize {
        let mut away = self.restarts_away(state, now);
        away.extend(self.held_ids(state, now));
        away.len()
    }

    /// Restarted instances whose restart is still running at `now`, or whose agent ECS
    /// shows disconnected (as `agent_at` tells it: restarts and reboots in order).
    fn restarts_away(&self, state: &State, now: Instant) -> BTreeSet<String> {
        let mut restarted: BTreeSet<&str> = BTreeSet::new();
        let mut away = BTreeSet::new();
        for timelines in state.commands.values() {
            for (id, timeline) in timelines {
                restarted.insert(id);
                let running = match &timeline.ends {
                    Some((end, _, _)) => now < timeline.sent + *end,
                    None => !timeline.cancelled,
                };
                if running {
                    away.insert(id.clone());
                }
            }
        }
        for instance in state
            .instances
            .iter()
            .filter(|i| restarted.contains(i.id.as_str()))
        {
            if !self.agent_at(state, instance, now).0 {
                away.insert(instance.id.clone());
            }
        }
        away
    }

    fn evidence(
        &self,
        instance: &SimInstance,
        ok: bool,
        reason: &str,
        restart: Instant,
        started: Instant,
        acs: Option<Instant>,
    ) -> String {
        let method = match instance.supervisor {
            Supervisor::Systemd => "systemd",
            Supervisor::Upstart => "upstart",
            Supervisor::Docker => "docker",
            Supervisor::WindowsService => "service",
        };
        format!(
            "{EVIDENCE_MARKER}v=1 result={} reason={reason} method={method} supervisor={method} agent_version={} \
             restart_at={} agent_started={} acs_connected={} credentials_before=404 credentials_after=404 boot_id=sim",
            if ok { "ok" } else { "failed" },
            instance.agent_version,
            self.wall(restart),
            self.wall(started),
            acs.map_or(0, |at| self.wall(at)),
        )
    }

    /// What happens on `instance` for a restart sent now.
    fn timeline(
        &self,
        instance: &SimInstance,
        request: &RestartRequest,
        sent: Instant,
    ) -> Timeline {
        let pace = |d: Duration| d.mul_f64(instance.pace.max(0.0));
        let l = Latencies {
            delivery: pace(self.latencies.delivery),
            restart: pace(self.latencies.restart),
            reconnect: pace(self.latencies.reconnect),
            report: pace(self.latencies.report),
        };
        let failed = |at: Duration, status: &str, details: &str, output: String| {
            Some((
                at,
                InvocationStatus::Ended {
                    status: status.into(),
                    details: details.into(),
                },
                output,
            ))
        };
        if instance.has(Fault::NeverDelivered) {
            let timeout = request.delivery_timeout;
            return Timeline {
                sent,
                ends: failed(timeout, "TimedOut", "DeliveryTimedOut", String::new()),
                away: None,
                cancelled: false,
            };
        }
        let delivered = l.delivery;
        let refuse_docker = request.method == RestartMethod::Docker
            && matches!(
                instance.supervisor,
                Supervisor::Systemd | Supervisor::Upstart
            );
        if instance.has(Fault::CommandFails) || refuse_docker {
            let reason = if refuse_docker {
                "docker-restart-on-supervised-host"
            } else {
                "restart-command-failed"
            };
            let at = delivered + Duration::from_secs(1);
            let output = self.evidence(instance, false, reason, sent + delivered, sent, None);
            return Timeline {
                sent,
                ends: failed(at, "Failed", "Failed", output),
                away: None,
                cancelled: false,
            };
        }
        if instance.has(Fault::RestartIneffective) {
            // The agent from before the restart still runs: it started long ago.
            let at = delivered + l.restart;
            let started = sent.checked_sub(Duration::from_secs(3600)).unwrap_or(sent);
            let output = self.evidence(
                instance,
                true,
                "none",
                sent + delivered,
                started,
                Some(started),
            );
            return Timeline {
                sent,
                ends: Some((at, InvocationStatus::Success, output)),
                away: None,
                cancelled: false,
            };
        }
        let up = delivered + l.restart;
        let acs = (!instance.has(Fault::NeverReconnects))
            .then(|| up + l.reconnect + instance.slow_reconnect());
        let shown = acs.map(|at| at + l.report);
        let away = if instance.has(Fault::FastRestart) {
            None
        } else {
            Some((delivered, shown))
        };
        if instance.has(Fault::CommandHangs) {
            return Timeline {
                sent,
                ends: None,
                away: None,
                cancelled: false,
            };
        }
        if instance.has(Fault::CommandTimesOut) {
            let at = delivered + request.script_wait + EXECUTION_GRACE;
            return Timeline {
                sent,
                ends: failed(at, "TimedOut", "ExecutionTimedOut", String::new()),
                away,
                cancelled: false,
            };
        }
        let wait_limit = delivered + request.script_wait;
        let ends = match acs {
            Some(at) if at <= wait_limit => {
                let mut output = self.evidence(
                    instance,
                    true,
                    "none",
                    sent + delivered,
                    sent + up,
                    Some(sent + at),
                );
                if instance.has(Fault::NoisyOutput) {
                    output = format!("{}\n{output}", "noise ".repeat(500));
                }
                Some((at, InvocationStatus::Success, output))
            }
            _ => {
                let output = self.evidence(
                    instance,
                    false,
                    "acs-not-connected",
                    sent + delivered,
                    sent + up,
                    None,
                );
                failed(wait_limit, "Failed", "Failed", output)
            }
        };
        Timeline {
            sent,
            ends,
            away,
            cancelled: false,
        }
    }

    /// Whether the agent is connected at `now`, and the container instance's version
    /// counter. The latest restart or reboot decides; changes count up the version like
    /// ECS does.
    fn agent_at(&self, state: &State, instance: &SimInstance, now: Instant) -> (bool, i64) {
        let mut connected = !instance.has(Fault::AgentDown);
        let mut version = 1;
        if instance.has(Fault::TaskChurn) {
            let churn = now.duration_since(self.created).as_secs() / 2;
            version += i64::try_from(churn).unwrap_or(i64::MAX - 1);
        }
        let mut changes: Vec<(Instant, Option<Instant>)> = state
            .commands
            .values()
            .filter_map(|timelines| timelines.get(&instance.id))
            .filter_map(|t| {
                let (down, up) = t.away?;
                Some((t.sent + down, up.map(|up| t.sent + up)))
            })
            .collect();
        changes.extend(state.world.agent_away(&instance.id));
        changes.sort();
        for (down, up) in changes {
            if now >= down {
                version += 1;
                connected = false;
                if up.is_some_and(|up| now >= up) {
                    version += 1;
                    connected = true;
                }
            }
        }
        (connected, version)
    }

    /// The instances a command accepted by [`Self::accept_command`] runs on; each must be
    /// of the command's platform (the wrong document is a bug in the tool).
    fn commanded<'s>(
        state: &'s State,
        instance_ids: &'s [String],
        platform: Platform,
    ) -> impl Iterator<Item = &'s SimInstance> + 's {
        instance_ids.iter().filter_map(move |id| {
            let instance = state.instances.iter().find(|i| &i.id == id)?;
            assert_eq!(
                instance.platform, platform,
                "{id} sent the wrong platform's document"
            );
            Some(instance)
        })
    }

    /// What SSM's `SendCommand` checks: at most 50 instance ids, and the whole call
    /// refused when one instance cannot take commands (unmanaged, terminated). The new
    /// command's id.
    fn accept_command(
        &self,
        state: &mut State,
        instance_ids: &[String],
        now: Instant,
    ) -> Result<CommandId, FleetError> {
        assert!(
            instance_ids.len() <= 50,
            "SendCommand takes at most 50 instance ids"
        );
        let refused: Vec<String> = instance_ids
            .iter()
            .filter(|id| {
                state
                    .instances
                    .iter()
                    .find(|i| &&i.id == id)
                    .is_none_or(|i| i.has(Fault::SsmOffline) || self.is_terminated(i, now))
            })
            .cloned()
            .collect();
        if !refused.is_empty() {
            return Err(FleetError::InvalidInstances {
                action: "ssm:SendCommand".into(),
                instance_ids: refused,
            });
        }
        let id = CommandId(format!("sim-command-{}", state.next_command));
        state.next_command += 1;
        Ok(id)
    }

    /// The instance ids of every command sent, in order.
    pub fn sent_commands(&self) -> Vec<Vec<String>> {
        let state = self.lock();
        let mut commands: Vec<(&CommandId, Vec<String>)> = state
            .commands
            .iter()
            .map(|(id, timelines)| (id, timelines.keys().cloned().collect()))
            .collect();
        commands.sort_by_key(|(id, _)| {
            id.0.trim_start_matches("sim-command-")
                .parse::<u64>()
                .unwrap_or(0)
        });
        commands.into_iter().map(|(_, ids)| ids).collect()
    }

    /// The rollout target for one of the fleet's instances.
    pub fn target(&self, instance_id: &str) -> Option<Target> {
        let state = self.lock();
        let instance = state.instances.iter().find(|i| i.id == instance_id)?;
        Some(Target {
            instance_id: instance.id.clone(),
            container_instance_arn: self.arn(&instance.id),
            availability_zone: instance.availability_zone.clone(),
            platform: instance.platform,
            no_ssm: instance
                .has(Fault::SsmOffline)
                .then(|| "SSM does not manage the instance".to_string()),
            auto_scaling_group: instance.auto_scaling_group.clone(),
        })
    }

    /// Every instance of the fleet as a rollout target.
    pub fn targets(&self) -> Vec<Target> {
        let ids: Vec<String> = self.lock().instances.iter().map(|i| i.id.clone()).collect();
        ids.iter().filter_map(|id| self.target(id)).collect()
    }

    /// The container-instance ARN the fleet gives `instance_id`.
    pub fn container_instance_arn(&self, instance_id: &str) -> String {
        self.arn(instance_id)
    }

    /// The number of restarts sent to `instance_id` so far.
    pub fn restarts_sent(&self, instance_id: &str) -> usize {
        self.lock()
            .commands
            .values()
            .filter(|timelines| timelines.contains_key(instance_id))
            .count()
    }

    fn container_instance(&self, instance: &SimInstance) -> ContainerInstance {
        ContainerInstance {
            arn: self.arn(&instance.id),
            ec2_instance_id: instance.id.clone(),
            status: instance.status.clone(),
            agent_connected: true,
            agent_version: Some(instance.agent_version.clone()),
            agent_update_status: None,
            running_tasks: instance.running_tasks,
            platform: instance.platform,
            marks: instance.marks.clone(),
        }
    }
}

impl SimFleet {
    /// What discovery reads at `now`, without counting a call.
    fn inventory(&self, state: &State, now: Instant) -> Inventory {
        let live: Vec<&SimInstance> = state
            .instances
            .iter()
            .filter(|i| !self.is_terminated(i, now))
            .collect();
        let zones = Self::zones(state);
        let mut per_zone: BTreeMap<usize, usize> = BTreeMap::new();
        let ec2 = live
            .iter()
            .map(|i| {
                let zone = Self::zone_of(&zones, i);
                let n = per_zone.entry(zone).or_default();
                *n += 1;
                let instance = Ec2Instance {
                    id: i.id.clone(),
                    vpc_id: "vpc-sim".into(),
                    subnet_id: format!("subnet-{}", i.availability_zone),
                    availability_zone: i.availability_zone.clone(),
                    private_ip: Some(network::instance_address(zone, *n)),
                    security_group_ids: vec!["sg-instances".into()],
                    auto_scaling_group: i.auto_scaling_group.clone(),
                };
                (i.id.clone(), instance)
            })
            .collect();
        let ssm = live
            .iter()
            .filter(|i| !i.has(Fault::SsmOffline))
            .map(|i| {
                let record = SsmInstance {
                    instance_id: i.id.clone(),
                    ping_status: "Online".into(),
                    platform_type: Some(format!("{:?}", i.platform)),
                };
                (i.id.clone(), record)
            })
            .collect();
        Inventory {
            cluster: Cluster {
                name: self.cluster.clone(),
                arn: format!(
                    "arn:aws:ecs:{}:{ACCOUNT}:cluster/{}",
                    self.region, self.cluster
                ),
                region: self.region.clone(),
                account: Some(ACCOUNT.into()),
            },
            container_instances: live.iter().map(|i| self.container_instance(i)).collect(),
            container_instance_failures: Vec::new(),
            ec2_instances: Ok(ec2),
            ssm_instances: Ok(ssm),
            vpcs: vec![network::ready_vpc(&self.region, &zones)],
            s3_prefix_list_id: Ok(Some(network::S3_PREFIX_LIST.into())),
            s3_prefix_list_cidrs: Ok(Cidr::parse(network::S3_BLOCK).into_iter().collect()),
            task_definitions: Ok(Vec::new()),
        }
    }

    /// Where the path probe goes and how it is judged: what the cutover reads from the
    /// inventory, without counting a call.
    pub fn probe_site(&self) -> crate::verify::ProbeSite {
        let state = self.lock();
        crate::verify::ProbeSite::of(&self.inventory(&state, self.now()), false)
    }
}

impl Fleet for SimFleet {
    async fn discover(&self, cluster: &str) -> Result<Inventory, FleetError> {
        let now = self.now();
        let mut state = self.lock();
        self.call(&mut state, "ecs:DescribeClusters")?;
        if cluster != self.cluster {
            return Err(FleetError::ClusterNotFound {
                cluster: cluster.into(),
                region: self.region.clone(),
                account: Some(ACCOUNT.into()),
            });
        }
        Ok(self.inventory(&state, now))
    }

    async fn send_restart(&self, request: &RestartRequest) -> Result<CommandId, FleetError> {
        let now = self.now();
        let mut state = self.lock();
        self.call(&mut state, "ssm:SendCommand")?;
        let id = self.accept_command(&mut state, &request.instance_ids, now)?;
        let timelines: BTreeMap<String, Timeline> =
            Self::commanded(&state, &request.instance_ids, request.platform)
                .map(|instance| (instance.id.clone(), self.timeline(instance, request, now)))
                .collect();
        state.commands.insert(id.clone(), timelines);
        if let Some(limit) = self.max_unavailable {
            let away = self.away_now(&state, now);
            assert!(
                away <= limit,
                "{away} instances away at once, more than the {limit} allowed"
            );
        }
        Ok(id)
    }

    async fn send_probe(&self, request: &ProbeRequest) -> Result<CommandId, FleetError> {
        self.start_probe(request)
    }

    async fn command_results(&self, command: &CommandId) -> Result<Vec<Invocation>, FleetError> {
        let now = self.now();
        let mut state = self.lock();
        self.call(&mut state, "ssm:ListCommandInvocations")?;
        let Some(timelines) = state
            .commands
            .get(command)
            .or_else(|| state.probes.get(command))
        else {
            return Ok(Vec::new());
        };
        Ok(timelines
            .iter()
            // SSM lists an invocation only a moment after the send (a quarter of the
            // delivery latency: 500 ms by default).
            .filter(|(_, t)| now >= t.sent + self.latencies.delivery / 4)
            .map(|(id, t)| {
                let (status, output) = match &t.ends {
                    _ if t.cancelled => (
                        InvocationStatus::Ended {
                            status: "Cancelled".into(),
                            details: "Cancelled".into(),
                        },
                        String::new(),
                    ),
                    // ListCommandInvocations returns at most 2,500 characters of output.
                    Some((end, status, output)) if now >= t.sent + *end => {
                        (status.clone(), output.chars().take(LISTED_OUTPUT).collect())
                    }
                    _ => (InvocationStatus::Running, String::new()),
                };
                Invocation {
                    instance_id: id.clone(),
                    status,
                    output,
                }
            })
            .collect())
    }

    async fn command_output(
        &self,
        command: &CommandId,
        instance_id: &str,
    ) -> Result<String, FleetError> {
        let now = self.now();
        let mut state = self.lock();
        self.call(&mut state, "ssm:GetCommandInvocation")?;
        let output = state
            .commands
            .get(command)
            .or_else(|| state.probes.get(command))
            .and_then(|timelines| timelines.get(instance_id))
            .and_then(|t| match &t.ends {
                Some((end, _, output)) if now >= t.sent + *end => Some(output.clone()),
                _ => None,
            })
            .unwrap_or_default();
        Ok(output)
    }

    async fn cancel(&self, command: &CommandId, instance_ids: &[String]) -> Result<(), FleetError> {
        let now = self.now();
        let mut state = self.lock();
        self.call(&mut state, "ssm:CancelCommand")?;
        let state = &mut *state;
        let timelines = match state.commands.get_mut(command) {
            Some(timelines) => Some(timelines),
            None => state.probes.get_mut(command),
        };
        if let Some(timelines) = timelines {
            for id in instance_ids {
                if let Some(t) = timelines.get_mut(id) {
                    let finished = t
                        .ends
                        .as_ref()
                        .is_some_and(|(end, _, _)| now >= t.sent + *end);
                    t.cancelled |= !finished;
                }
            }
        }
        Ok(())
    }

    async fn agent_states(
        &self,
        cluster: &str,
        container_instance_arns: &[String],
    ) -> Result<Vec<AgentState>, FleetError> {
        let now = self.now();
        let mut state = self.lock();
        for _ in container_instance_arns.chunks(100) {
            self.call(&mut state, "ecs:DescribeContainerInstances")?;
        }
        self.advance(&mut state, now);
        if cluster != self.cluster {
            return Err(FleetError::ClusterNotFound {
                cluster: cluster.into(),
                region: self.region.clone(),
                account: None,
            });
        }
        let mut answer = Vec::new();
        for instance in &state.instances {
            let arn = self.arn(&instance.id);
            if !container_instance_arns.contains(&arn) {
                continue;
            }
            let reregistered = instance.has(Fault::ReregistersAfterReboot)
                && state.world.rebooted_by(&instance.id, now);
            if self.is_terminated(instance, now) || reregistered {
                // ECS keeps describing a deregistered instance for a while.
                answer.push(AgentState {
                    container_instance_arn: arn,
                    connected: false,
                    status: Some("INACTIVE".into()),
                    version: None,
                });
                continue;
            }
            let (connected, version) = self.agent_at(&state, instance, now);
            answer.push(AgentState {
                container_instance_arn: arn,
                connected,
                status: Some(instance.status_at(now.duration_since(self.created))),
                version: Some(version),
            });
        }
        Ok(answer)
    }

    async fn write_instance_marks(
        &self,
        cluster: &str,
        marks: &[InstanceMark],
    ) -> Result<(), FleetError> {
        self.mark_instances(cluster, marks)
    }

    async fn group_marks(&self) -> Result<BTreeMap<String, String>, FleetError> {
        self.read_group_marks()
    }

    async fn write_group_mark(&self, group: &str, value: Option<&str>) -> Result<(), FleetError> {
        self.mark_group(group, value)
    }

    async fn read_record(
        &self,
        cluster: &str,
        record: Record,
    ) -> Result<Option<String>, FleetError> {
        self.record_delay().await;
        self.get_parameter(&record.parameter(cluster))
    }

    async fn write_record(
        &self,
        cluster: &str,
        record: Record,
        value: &str,
        overwrite: bool,
    ) -> Result<bool, FleetError> {
        self.record_delay().await;
        self.put_parameter(&record.parameter(cluster), value, overwrite)
    }

    async fn delete_record(&self, cluster: &str, record: Record) -> Result<(), FleetError> {
        self.delete_parameter(&record.parameter(cluster))
    }

    async fn set_draining(
        &self,
        cluster: &str,
        container_instance_arns: &[String],
        draining: bool,
    ) -> Result<(), FleetError> {
        self.update_state(cluster, container_instance_arns, draining)
    }

    async fn set_scale_in_protection(
        &self,
        group: &str,
        instance_ids: &[String],
        protected: bool,
    ) -> Result<(), FleetError> {
        self.protect(group, instance_ids, protected)
    }

    async fn set_processes_suspended(
        &self,
        group: &str,
        processes: &[String],
        suspended: bool,
    ) -> Result<(), FleetError> {
        self.suspend(group, processes, suspended)
    }

    async fn set_standby(
        &self,
        group: &str,
        instance_ids: &[String],
        standby: bool,
    ) -> Result<(), FleetError> {
        self.standby(group, instance_ids, standby)
    }

    async fn workload(&self, cluster: &str) -> Result<crate::fleet::Workload, FleetError> {
        self.read_workload(cluster)
    }

    async fn services(
        &self,
        cluster: &str,
        names: &[String],
    ) -> Result<BTreeMap<String, crate::fleet::ServiceState>, FleetError> {
        let mut services = self
            .read_workload_of(cluster, &["ecs:DescribeServices"])?
            .services;
        services.retain(|name, _| names.contains(name));
        Ok(services)
    }

    async fn tasks_on(
        &self,
        cluster: &str,
        instances: &[(String, String)],
    ) -> Result<Vec<crate::fleet::TaskInfo>, FleetError> {
        let mut tasks = self
            .read_workload_of(cluster, &["ecs:ListTasks", "ecs:DescribeTasks"])?
            .tasks;
        tasks.retain(|t| instances.iter().any(|(_, id)| id == &t.instance_id));
        Ok(tasks)
    }

    async fn auto_scaling(
        &self,
        cluster: &str,
        instance_ids: &[String],
    ) -> Result<crate::fleet::AutoScaling, FleetError> {
        self.read_auto_scaling(cluster, instance_ids)
    }

    async fn instance_health(
        &self,
        instance_ids: &[String],
    ) -> Result<BTreeMap<String, crate::fleet::InstanceHealth>, FleetError> {
        self.read_health(instance_ids)
    }

    async fn reboot(&self, instance_ids: &[String]) -> Result<(), FleetError> {
        self.start_reboot(instance_ids)
    }

    async fn boot_ids(
        &self,
        instance_ids: &[String],
        platform: Platform,
    ) -> Result<BTreeMap<String, String>, FleetError> {
        self.read_boot_ids(instance_ids, platform)
    }

    fn request_counts(&self) -> BTreeMap<String, u64> {
        self.lock().calls.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(ids: &[&str]) -> RestartRequest {
        RestartRequest {
            instance_ids: ids.iter().map(|s| s.to_string()).collect(),
            platform: Platform::Linux,
            method: RestartMethod::Auto,
            delivery_timeout: Duration::from_secs(60),
            script_wait: Duration::from_secs(120),
        }
    }

    fn fleet(instances: Vec<SimInstance>) -> SimFleet {
        SimFleet::new(
            instances,
            Latencies::default(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_plays_out_on_virtual_time() {
        let sim = fleet(vec![SimInstance::healthy("i-1", "a")]);
        let arn = sim.arn("i-1");
        let command = sim.send_restart(&request(&["i-1"])).await.unwrap();
        assert!(
            sim.command_results(&command).await.unwrap().is_empty(),
            "not listed right after sending"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        let states = sim
            .agent_states("sim", std::slice::from_ref(&arn))
            .await
            .unwrap();
        assert!(!states[0].connected, "agent away after the restart");
        let results = sim.command_results(&command).await.unwrap();
        assert_eq!(results[0].status, InvocationStatus::Running);
        tokio::time::sleep(Duration::from_secs(20)).await;
        let results = sim.command_results(&command).await.unwrap();
        assert_eq!(results[0].status, InvocationStatus::Success);
        let evidence = crate::rollout::script::parse_evidence(&results[0].output).unwrap();
        assert!(
            evidence.ok
                && evidence.acs_connected >= evidence.agent_started
                && evidence.agent_started >= evidence.restart_at
        );
        let states = sim.agent_states("sim", &[arn]).await.unwrap();
        assert!(states[0].connected);
        assert_eq!(states[0].version, Some(3));
    }

    #[tokio::test(start_paused = true)]
    async fn faults_shape_the_outcome() {
        let sim = fleet(vec![
            SimInstance::healthy("i-offline", "a").with_fault(Fault::NeverDelivered),
            SimInstance::healthy("i-fails", "a").with_fault(Fault::CommandFails),
            SimInstance::healthy("i-lost", "a").with_fault(Fault::NeverReconnects),
            SimInstance::healthy("i-unmanaged", "a").with_fault(Fault::SsmOffline),
        ]);
        let refused = sim
            .send_restart(&request(&["i-fails", "i-unmanaged"]))
            .await;
        assert!(
            matches!(&refused, Err(FleetError::InvalidInstances { instance_ids, .. }) if instance_ids == &["i-unmanaged"]),
            "SSM refuses the whole batch: {refused:?}"
        );
        let command = sim
            .send_restart(&request(&["i-offline", "i-fails", "i-lost"]))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(600)).await;
        let results: BTreeMap<String, InvocationStatus> = sim
            .command_results(&command)
            .await
            .unwrap()
            .into_iter()
            .map(|i| (i.instance_id, i.status))
            .collect();
        assert_eq!(
            results["i-offline"],
            InvocationStatus::Ended {
                status: "TimedOut".into(),
                details: "DeliveryTimedOut".into()
            }
        );
        assert_eq!(
            results["i-fails"],
            InvocationStatus::Ended {
                status: "Failed".into(),
                details: "Failed".into()
            }
        );
        assert_eq!(
            results["i-lost"],
            InvocationStatus::Ended {
                status: "Failed".into(),
                details: "Failed".into()
            }
        );
        let states = sim.agent_states("sim", &[sim.arn("i-lost")]).await.unwrap();
        assert!(!states[0].connected);
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "more than the 1 allowed")]
    async fn the_invariant_catches_too_many_away() {
        let sim = fleet(vec![
            SimInstance::healthy("i-1", "a"),
            SimInstance::healthy("i-2", "a"),
        ])
        .with_max_unavailable(1);
        let _ = sim.send_restart(&request(&["i-1", "i-2"])).await;
    }

    #[tokio::test(start_paused = true)]
    async fn terminated_instances_turn_inactive_and_throttling_is_an_error() {
        let sim = fleet(vec![SimInstance::healthy("i-1", "a")
            .with_fault(Fault::TerminatedAfter(Duration::from_secs(10)))])
        .with_throttling_every(3);
        let arn = sim.arn("i-1");
        assert_eq!(
            sim.agent_states("sim", std::slice::from_ref(&arn))
                .await
                .unwrap()
                .len(),
            1
        );
        tokio::time::sleep(Duration::from_secs(11)).await;
        let gone = sim
            .agent_states("sim", std::slice::from_ref(&arn))
            .await
            .unwrap();
        assert_eq!(gone[0].status.as_deref(), Some("INACTIVE"));
        assert!(!gone[0].connected);
        assert!(matches!(
            sim.agent_states("sim", &[arn]).await,
            Err(FleetError::Throttled { .. })
        ));
        assert_eq!(sim.request_counts()["ecs:DescribeContainerInstances"], 3);
    }
}
