//! The simulated fleet's drain-and-reboot world: services and their tasks, draining that
//! moves tasks to other instances at a realistic pace (honouring the service's
//! `minimumHealthyPercent`/`maximumPercent` and placement), reboots (the instance goes
//! down, EC2 status checks that still read OK for a moment, the agent away, a new boot
//! id), and Auto Scaling that replaces an unhealthy instance or scales in an emptied one
//! unless the tool keeps it away.
//!
//! Like the rest of the fleet nothing runs in the background: every read first
//! [`advances`](World::advance) the world to `now`, applying what fell due.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::{Fault, SimFleet, SimInstance, State};
use crate::fleet::{AutoScaling, FleetError, InstanceHealth, ServiceState, TaskInfo, Workload};
use crate::inventory::Platform;
use crate::rollout::capacity::{member_of, Host, Service};
use crate::rollout::hold::{Group, Member};

/// How long the drain-and-reboot world takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FallbackLatencies {
    /// Between one task of a draining instance stopping and the next.
    pub task_move: Duration,
    /// From a replacement task placed to it running.
    pub task_start: Duration,
    /// From `RebootInstances` to the OS going down (status checks still read OK until
    /// a little after).
    pub reboot_down: Duration,
    /// From `RebootInstances` to the agent connected again.
    pub reboot_up: Duration,
    /// How long after the agent is back the status checks read OK again.
    pub status_lag: Duration,
    /// How long an emptied, unprotected instance lasts under managed scaling.
    pub scale_in_after: Duration,
}

impl Default for FallbackLatencies {
    fn default() -> Self {
        FallbackLatencies {
            task_move: Duration::from_secs(15),
            task_start: Duration::from_secs(20),
            reboot_down: Duration::from_secs(5),
            reboot_up: Duration::from_secs(75),
            status_lag: Duration::from_secs(20),
            scale_in_after: Duration::from_secs(60),
        }
    }
}

/// A service of the simulated cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimService {
    pub name: String,
    pub desired: u32,
    pub daemon: bool,
    pub minimum_healthy_percent: i32,
    pub maximum_percent: i32,
    pub cpu: i64,
    pub memory: i64,
    pub host_ports: Vec<u16>,
    pub awsvpc: bool,
    pub distinct_instance: bool,
    pub member_of: Vec<String>,
    /// Mid-deployment until this long after the fleet was made.
    pub deploying_for: Duration,
}

impl SimService {
    /// A replica service: 100/200 percent, 256 CPU, 512 MiB, no host ports.
    pub fn new(name: &str) -> SimService {
        SimService {
            name: name.into(),
            desired: 0,
            daemon: false,
            minimum_healthy_percent: 100,
            maximum_percent: 200,
            cpu: 256,
            memory: 512,
            host_ports: Vec::new(),
            awsvpc: false,
            distinct_instance: false,
            member_of: Vec::new(),
            deploying_for: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SimTask {
    arn: String,
    instance_id: String,
    /// `None`: a standalone task.
    service: Option<String>,
    cpu: i64,
    memory: i64,
    host_ports: Vec<u16>,
    awsvpc: bool,
    /// Placed but not running before this.
    running_from: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reboot {
    at: Instant,
    down: Instant,
    /// Agent connected again (`None`: never).
    agent_back: Option<Instant>,
    /// Status checks read impaired from here …
    impaired_from: Instant,
    /// … until here (`None`: for ever).
    impaired_until: Option<Instant>,
}

/// Services, tasks, drains and reboots.
#[derive(Debug, Default)]
pub(super) struct World {
    latencies: FallbackLatencies,
    services: BTreeMap<String, SimService>,
    tasks: Vec<SimTask>,
    next_task: u64,
    /// Tasks a drain still has to move: (when, task arn).
    moves: Vec<(Instant, String)>,
    /// Per instance, its reboots.
    reboots: BTreeMap<String, Vec<Reboot>>,
    /// When the tool set each instance DRAINING (cleared when set ACTIVE).
    drained_at: BTreeMap<String, Instant>,
    /// When each draining instance had no task left.
    empty_since: BTreeMap<String, Instant>,
    /// Tasks a reboot killed.
    killed: Vec<String>,
    /// Instances Auto Scaling terminated, with why.
    terminated: BTreeMap<String, String>,
    /// The invariant: never more instances draining or rebooting at once.
    max_reboots: Option<usize>,
    /// The most instances ever draining or rebooting at once.
    peak_held: usize,
}

impl World {
    /// When the agent was away because of a reboot: (down, back).
    pub(super) fn agent_away(&self, instance_id: &str) -> Vec<(Instant, Option<Instant>)> {
        self.reboots
            .get(instance_id)
            .into_iter()
            .flatten()
            .map(|r| (r.down, r.agent_back))
            .collect()
    }

    /// Reboots of the instance that never came back end: it was started again at `now`.
    pub(super) fn bring_back(&mut self, instance_id: &str, now: Instant) {
        let l = self.latencies;
        for reboot in self.reboots.get_mut(instance_id).into_iter().flatten() {
            let back = now + l.reboot_up;
            reboot.agent_back.get_or_insert(back);
            reboot.impaired_until.get_or_insert(back + l.status_lag);
        }
    }

    /// Whether a reboot of the instance has gone down by `now`.
    pub(super) fn rebooted_by(&self, instance_id: &str, now: Instant) -> bool {
        self.reboots
            .get(instance_id)
            .is_some_and(|r| r.iter().any(|r| now >= r.down))
    }

    fn status_ok(&self, instance_id: &str, now: Instant) -> bool {
        self.reboots
            .get(instance_id)
            .into_iter()
            .flatten()
            .all(|r| now < r.impaired_from || r.impaired_until.is_some_and(|u| now >= u))
    }

    fn new_task(&mut self, instance_id: &str, service: &SimService, running_from: Instant) {
        self.next_task += 1;
        self.tasks.push(SimTask {
            arn: format!(
                "arn:aws:ecs:eu-west-1:123456789012:task/sim/{:032x}",
                self.next_task
            ),
            instance_id: instance_id.into(),
            service: Some(service.name.clone()),
            cpu: service.cpu,
            memory: service.memory,
            host_ports: service.host_ports.clone(),
            awsvpc: service.awsvpc,
            running_from,
        });
    }
}

impl SimFleet {
    /// The fallback world's latencies.
    pub fn with_fallback_latencies(self, latencies: FallbackLatencies) -> SimFleet {
        self.lock().world.latencies = latencies;
        self
    }

    /// A service with `tasks` running, one per instance in turn (`desired` is the count
    /// placed unless already set higher).
    pub fn with_service(self, mut service: SimService, on: &[&str]) -> SimFleet {
        {
            let now = Instant::now();
            let mut state = self.lock();
            service.desired = service.desired.max(u32::try_from(on.len()).unwrap_or(0));
            for id in on {
                state.world.new_task(id, &service, now);
            }
            state.world.services.insert(service.name.clone(), service);
        }
        self
    }

    /// A task of the service that only starts running `after` from now: the service is
    /// below its desired count until then.
    pub fn with_starting_task(self, service: &str, on: &str, after: Duration) -> SimFleet {
        {
            let now = Instant::now();
            let mut state = self.lock();
            if let Some(service) = state.world.services.get(service).cloned() {
                state.world.new_task(on, &service, now + after);
            }
        }
        self
    }

    /// A task that belongs to no service.
    pub fn with_standalone_task(self, on: &str, family: &str) -> SimFleet {
        {
            let now = Instant::now();
            let mut state = self.lock();
            let mut service = SimService::new(family);
            service.cpu = 128;
            service.memory = 128;
            state.world.new_task(on, &service, now);
            if let Some(task) = state.world.tasks.last_mut() {
                task.service = None;
            }
        }
        self
    }

    /// Makes every drain and reboot check that no more than `limit` instances are
    /// drained or rebooting at once.
    pub fn with_max_reboots(self, limit: usize) -> SimFleet {
        self.lock().world.max_reboots = Some(limit);
        self
    }

    /// Tasks running on the instance now, by service (`-` for standalone tasks).
    pub fn tasks_on(&self, instance_id: &str) -> Vec<String> {
        let now = Instant::now();
        let mut state = self.lock();
        self.advance(&mut state, now);
        state
            .world
            .tasks
            .iter()
            .filter(|t| t.instance_id == instance_id)
            .map(|t| t.service.clone().unwrap_or_else(|| "-".into()))
            .collect()
    }

    /// Tasks killed by reboots so far.
    pub fn killed_tasks(&self) -> Vec<String> {
        self.lock().world.killed.clone()
    }

    /// How often the instance was rebooted.
    pub fn reboots_of(&self, instance_id: &str) -> usize {
        self.lock()
            .world
            .reboots
            .get(instance_id)
            .map_or(0, Vec::len)
    }

    /// Instances Auto Scaling terminated, with why.
    pub fn terminated_by_auto_scaling(&self) -> BTreeMap<String, String> {
        self.lock().world.terminated.clone()
    }

    /// The most instances drained or rebooting at once so far.
    pub fn peak_held(&self) -> usize {
        self.lock().world.peak_held
    }

    /// Applies everything that fell due by `now`: task moves, kills by reboots, Auto
    /// Scaling's replacements and scale-ins.
    pub(super) fn advance(&self, state: &mut State, now: Instant) {
        // Instances terminated by a spot interruption while drained.
        for instance in &mut state.instances {
            let spot = instance.faults.iter().find_map(|f| match f {
                Fault::TerminatedWhenDrained(after) => Some(*after),
                _ => None,
            });
            if let (Some(after), Some(drained)) = (spot, state.world.drained_at.get(&instance.id)) {
                if instance.terminated_at.is_none() {
                    instance.terminated_at = Some(*drained + after);
                }
            }
        }
        // Reboots kill every task on the host when it goes down; daemon tasks come back
        // with the host, other service tasks are replaced elsewhere.
        let daemons: BTreeSet<String> = state
            .world
            .services
            .values()
            .filter(|s| s.daemon)
            .map(|s| s.name.clone())
            .collect();
        let mut died: Vec<(SimTask, Instant)> = Vec::new();
        for (id, reboots) in &state.world.reboots {
            for reboot in reboots.iter().filter(|r| now >= r.down) {
                for task in &state.world.tasks {
                    let daemon = task.service.as_ref().is_some_and(|s| daemons.contains(s));
                    if &task.instance_id == id && task.running_from <= reboot.down && !daemon {
                        died.push((task.clone(), reboot.down));
                    }
                }
            }
        }
        for (task, down) in died {
            state.world.tasks.retain(|t| t.arn != task.arn);
            match &task.service {
                None => state.world.killed.push(task.arn.clone()),
                Some(service) => {
                    if let Some(service) = state.world.services.get(service).cloned() {
                        self.place(state, &service, &task, down);
                    }
                }
            }
        }
        // ECS replaces the service tasks of an instance that went away (spot, scale-in).
        let gone: BTreeSet<String> = state
            .instances
            .iter()
            .filter(|i| self.is_terminated(i, now))
            .map(|i| i.id.clone())
            .collect();
        let orphans: Vec<SimTask> = state
            .world
            .tasks
            .iter()
            .filter(|t| gone.contains(&t.instance_id))
            .cloned()
            .collect();
        for task in orphans {
            state.world.tasks.retain(|t| t.arn != task.arn);
            let service = task
                .service
                .as_ref()
                .and_then(|s| state.world.services.get(s))
                .filter(|s| !s.daemon)
                .cloned();
            if let Some(service) = service {
                self.place(state, &service, &task, now);
            }
        }
        // Drains: due moves, in order.
        state.world.moves.sort();
        while let Some((due, _)) = state.world.moves.first() {
            if *due > now {
                break;
            }
            let (due, arn) = state.world.moves.remove(0);
            self.move_task(state, &arn, due);
        }
        // Draining instances that have emptied.
        let drained: Vec<String> = state.world.drained_at.keys().cloned().collect();
        for id in drained {
            let empty = !state.world.tasks.iter().any(|t| t.instance_id == id);
            if empty {
                state.world.empty_since.entry(id).or_insert(now);
            } else {
                state.world.empty_since.remove(&id);
            }
        }
        // Auto Scaling.
        let world_now = now;
        let mut terminate: Vec<(String, String)> = Vec::new();
        for instance in &state.instances {
            let Some(name) = &instance.auto_scaling_group else {
                continue;
            };
            if instance.standby || self.is_terminated(instance, world_now) {
                continue;
            }
            let group = state.groups.get(name).cloned().unwrap_or_default();
            let healthy = state.world.status_ok(&instance.id, now);
            let replacing = !group.suspended.contains("HealthCheck")
                && !group.suspended.contains("ReplaceUnhealthy");
            if !healthy && replacing {
                terminate.push((
                    instance.id.clone(),
                    "Auto Scaling replaced it: its status checks failed".into(),
                ));
                continue;
            }
            let empty = state.world.empty_since.get(&instance.id);
            if group.managed_scaling
                && !instance.protected
                && empty.is_some_and(|since| now >= *since + state.world.latencies.scale_in_after)
            {
                terminate.push((
                    instance.id.clone(),
                    "managed scaling scaled it in: it ran no task".into(),
                ));
            }
        }
        for (id, why) in terminate {
            if let Some(instance) = state.instances.iter_mut().find(|i| i.id == id) {
                instance.terminated_at = Some(now);
            }
            state.world.terminated.insert(id, why);
        }
    }

    /// Moves one task off its draining instance, if it fits elsewhere; a task that fits
    /// nowhere stays (the drain does not finish), as ECS would leave it.
    fn move_task(&self, state: &mut State, arn: &str, due: Instant) {
        let Some(task) = state.world.tasks.iter().find(|t| t.arn == arn).cloned() else {
            return;
        };
        let Some(service) = task
            .service
            .as_ref()
            .and_then(|s| state.world.services.get(s))
            .cloned()
        else {
            return;
        };
        if self.place(state, &service, &task, due) {
            // The service is one short until the replacement runs.
            state.world.tasks.retain(|t| t.arn != arn);
        }
    }

    /// Starts a replacement for `task` on the first instance it fits; whether it found one.
    fn place(&self, state: &mut State, service: &SimService, task: &SimTask, due: Instant) -> bool {
        let hosts = self.hosts(state, due);
        let fits = hosts.iter().find(|h| {
            h.accepts_tasks
                && h.instance_id != task.instance_id
                && h.cpu >= task.cpu
                && h.memory >= task.memory
                && !task.host_ports.iter().any(|p| h.ports.contains(p))
                && (!task.awsvpc || h.enis.is_none_or(|n| n > 0))
                && (!service.distinct_instance || !h.services.contains(&service.name))
                && service
                    .member_of
                    .iter()
                    .all(|e| member_of(e, &h.attributes).unwrap_or(false))
        });
        let Some(host) = fits.map(|h| h.instance_id.clone()) else {
            return false;
        };
        let start = state.world.latencies.task_start;
        state.world.new_task(&host, service, due + start);
        true
    }

    fn hosts(&self, state: &State, now: Instant) -> Vec<Host> {
        state
            .instances
            .iter()
            .filter(|i| !self.is_terminated(i, now))
            .map(|i| {
                let tasks: Vec<&SimTask> = state
                    .world
                    .tasks
                    .iter()
                    .filter(|t| t.instance_id == i.id)
                    .collect();
                let (connected, _) = self.agent_at(state, i, now);
                let status = i.status_at(now.duration_since(self.created));
                Host {
                    instance_id: i.id.clone(),
                    accepts_tasks: connected && status == "ACTIVE",
                    cpu: i.cpu - tasks.iter().map(|t| t.cpu).sum::<i64>(),
                    memory: i.memory - tasks.iter().map(|t| t.memory).sum::<i64>(),
                    ports: tasks
                        .iter()
                        .flat_map(|t| t.host_ports.iter().copied())
                        .collect(),
                    enis: Some(
                        i.enis.saturating_sub(
                            u32::try_from(tasks.iter().filter(|t| t.awsvpc).count())
                                .unwrap_or(u32::MAX),
                        ),
                    ),
                    attributes: i.attributes.clone(),
                    services: tasks.iter().filter_map(|t| t.service.clone()).collect(),
                }
            })
            .collect()
    }

    /// Instances drained by the tool or rebooting (down) at `now`.
    fn held_now(&self, state: &State, now: Instant) -> usize {
        self.held_ids(state, now).len()
    }

    /// Instances drained by the tool or rebooting (down) at `now`.
    pub(super) fn held_ids(&self, state: &State, now: Instant) -> BTreeSet<String> {
        let mut held: BTreeSet<&str> = state.world.drained_at.keys().map(String::as_str).collect();
        // A terminated instance is nobody's capacity any more: it holds nothing.
        for instance in &state.instances {
            if self.is_terminated(instance, now) {
                held.remove(instance.id.as_str());
            }
        }
        for (id, reboots) in &state.world.reboots {
            let terminated = state
                .instances
                .iter()
                .any(|i| &i.id == id && self.is_terminated(i, now));
            if !terminated
                && reboots
                    .iter()
                    .any(|r| now >= r.at && r.agent_back.is_none_or(|b| now < b))
            {
                held.insert(id);
            }
        }
        held.into_iter().map(str::to_string).collect()
    }

    fn check_held(&self, state: &mut State, now: Instant) {
        let held = self.held_now(state, now);
        state.world.peak_held = state.world.peak_held.max(held);
        if let Some(limit) = state.world.max_reboots {
            assert!(
                held <= limit,
                "{held} instances drained or rebooting at once, more than the {limit} allowed"
            );
        }
        if let Some(limit) = self.max_unavailable {
            let away = self.away_now(state, now);
            assert!(
                away <= limit,
                "{away} instances unavailable at once, more than the {limit} allowed"
            );
        }
    }

    /// The tool set instances DRAINING or ACTIVE: start or stop moving their tasks.
    pub(super) fn drain_changed(
        &self,
        state: &mut State,
        ids: &[String],
        draining: bool,
        now: Instant,
    ) {
        let pace = state.world.latencies.task_move;
        for id in ids {
            if draining {
                if state.world.drained_at.contains_key(id) {
                    continue;
                }
                state.world.drained_at.insert(id.clone(), now);
                if !state.world.tasks.iter().any(|t| &t.instance_id == id) {
                    state.world.empty_since.insert(id.clone(), now);
                }
                let stuck = state
                    .instances
                    .iter()
                    .find(|i| &i.id == id)
                    .is_some_and(|i| i.has(Fault::DrainStuck));
                if stuck {
                    continue;
                }
                let moving: Vec<String> = state
                    .world
                    .tasks
                    .iter()
                    .filter(|t| &t.instance_id == id)
                    .filter(|t| {
                        t.service
                            .as_ref()
                            .and_then(|s| state.world.services.get(s))
                            .is_some_and(|s| {
                                !s.daemon
                                    && (s.minimum_healthy_percent < 100 || s.maximum_percent > 100)
                            })
                    })
                    .map(|t| t.arn.clone())
                    .collect();
                for (n, arn) in moving.into_iter().enumerate() {
                    let k = u32::try_from(n + 1).unwrap_or(u32::MAX);
                    state.world.moves.push((now + pace * k, arn));
                }
            } else {
                state.world.drained_at.remove(id);
                state.world.empty_since.remove(id);
                // Moves not yet made are off: ECS stops draining an ACTIVE instance.
                let here: BTreeSet<String> = state
                    .world
                    .tasks
                    .iter()
                    .filter(|t| &t.instance_id == id)
                    .map(|t| t.arn.clone())
                    .collect();
                state.world.moves.retain(|(_, arn)| !here.contains(arn));
            }
        }
        self.check_held(state, now);
    }

    /// The current workload (see [`crate::fleet::Fleet::workload`]).
    pub(super) fn read_workload(&self, cluster: &str) -> Result<Workload, FleetError> {
        self.read_workload_of(
            cluster,
            &[
                "ecs:ListContainerInstances",
                "ecs:DescribeContainerInstances",
                "ecs:ListServices",
                "ecs:DescribeServices",
                "ecs:ListTasks",
                "ecs:DescribeTasks",
            ],
        )
    }

    /// The workload, counting only `actions` (the part of it a narrower read costs).
    pub(super) fn read_workload_of(
        &self,
        cluster: &str,
        actions: &[&str],
    ) -> Result<Workload, FleetError> {
        let now = Instant::now();
        let mut state = self.lock();
        for action in actions {
            self.call(&mut state, action)?;
        }
        self.known_cluster(cluster)?;
        self.advance(&mut state, now);
        let hosts = self.hosts(&state, now);
        let live: BTreeSet<&str> = hosts.iter().map(|h| h.instance_id.as_str()).collect();
        let tasks: Vec<TaskInfo> = state
            .world
            .tasks
            .iter()
            .filter(|t| live.contains(t.instance_id.as_str()))
            .map(|t| TaskInfo {
                task_arn: t.arn.clone(),
                instance_id: t.instance_id.clone(),
                group: match &t.service {
                    Some(service) => format!("service:{service}"),
                    None => "family:batch".into(),
                },
                cpu: t.cpu,
                memory: t.memory,
                host_ports: t.host_ports.clone(),
                awsvpc: t.awsvpc,
            })
            .collect();
        let services = state
            .world
            .services
            .values()
            .map(|s| {
                let running = state
                    .world
                    .tasks
                    .iter()
                    .filter(|t| t.service.as_ref() == Some(&s.name))
                    .filter(|t| live.contains(t.instance_id.as_str()) && t.running_from <= now)
                    .count();
                let deploying = now < self.created + s.deploying_for;
                let state = ServiceState {
                    service: Service {
                        name: s.name.clone(),
                        daemon: s.daemon,
                        minimum_healthy_percent: s.minimum_healthy_percent,
                        maximum_percent: s.maximum_percent,
                        running: u32::try_from(running).unwrap_or(u32::MAX),
                        distinct_instance: s.distinct_instance,
                        member_of: s.member_of.clone(),
                    },
                    // A daemon wants one task per instance it runs on.
                    desired: if s.daemon {
                        u32::try_from(running).unwrap_or(u32::MAX)
                    } else {
                        s.desired
                    },
                    deployments: if deploying { 2 } else { 1 },
                };
                (s.name.clone(), state)
            })
            .collect();
        Ok(Workload {
            hosts,
            services,
            tasks,
        })
    }

    pub(super) fn read_auto_scaling(
        &self,
        cluster: &str,
        instance_ids: &[String],
    ) -> Result<AutoScaling, FleetError> {
        let now = Instant::now();
        let mut state = self.lock();
        self.call(&mut state, "autoscaling:DescribeAutoScalingInstances")?;
        self.known_cluster(cluster)?;
        self.advance(&mut state, now);
        let mut scaling = AutoScaling::default();
        let members: Vec<&SimInstance> = state
            .instances
            .iter()
            .filter(|i| instance_ids.contains(&i.id) && !self.is_terminated(i, now))
            .filter(|i| i.auto_scaling_group.is_some())
            .filter(|i| !i.has(Fault::UnlistedByAutoScaling))
            .collect();
        let names: BTreeSet<String> = members
            .iter()
            .filter_map(|i| i.auto_scaling_group.clone())
            .collect();
        for instance in &members {
            let Some(name) = &instance.auto_scaling_group else {
                continue;
            };
            scaling.members.insert(
                instance.id.clone(),
                (
                    name.clone(),
                    Member {
                        lifecycle_state: if instance.standby {
                            "Standby"
                        } else {
                            "InService"
                        }
                        .into(),
                        protected_from_scale_in: instance.protected,
                    },
                ),
            );
        }
        let mut calls = Vec::new();
        for name in names {
            let group = state.groups.get(&name).cloned().unwrap_or_default();
            let desired = state
                .instances
                .iter()
                .filter(|i| i.auto_scaling_group.as_ref() == Some(&name))
                .filter(|i| !i.standby && !self.is_terminated(i, now))
                .count();
            scaling.groups.insert(
                name.clone(),
                Group {
                    name: name.clone(),
                    min_size: group.min_size,
                    max_size: group.max_size,
                    desired: i32::try_from(desired).unwrap_or(i32::MAX),
                    suspended: group.suspended.clone(),
                    instance_refresh_in_progress: group.instance_refresh,
                    managed_termination_protection: group.managed_termination_protection,
                },
            );
            calls.push("autoscaling:DescribeAutoScalingGroups");
            calls.push("autoscaling:DescribeInstanceRefreshes");
        }
        if !scaling.groups.is_empty() {
            calls.push("ecs:DescribeClusters");
            calls.push("ecs:DescribeCapacityProviders");
        }
        for action in calls {
            self.call(&mut state, action)?;
        }
        Ok(scaling)
    }

    pub(super) fn read_health(
        &self,
        instance_ids: &[String],
    ) -> Result<BTreeMap<String, InstanceHealth>, FleetError> {
        let now = Instant::now();
        let mut state = self.lock();
        self.call(&mut state, "ec2:DescribeInstanceStatus")?;
        self.advance(&mut state, now);
        Ok(state
            .instances
            .iter()
            .filter(|i| instance_ids.contains(&i.id))
            .map(|i| {
                let terminated = self.is_terminated(i, now);
                let health = InstanceHealth {
                    state: if terminated { "terminated" } else { "running" }.into(),
                    status_ok: !terminated && state.world.status_ok(&i.id, now),
                    lifecycle_state: i.auto_scaling_group.as_ref().map(|_| {
                        if terminated {
                            "Terminating:Proceed"
                        } else if i.standby {
                            "Standby"
                        } else {
                            "InService"
                        }
                        .to_string()
                    }),
                };
                (i.id.clone(), health)
            })
            .collect())
    }

    pub(super) fn start_reboot(&self, instance_ids: &[String]) -> Result<(), FleetError> {
        let now = Instant::now();
        let mut state = self.lock();
        self.call(&mut state, "ec2:RebootInstances")?;
        self.advance(&mut state, now);
        let l = state.world.latencies;
        for id in instance_ids {
            let Some(instance) = state.instances.iter().find(|i| &i.id == id) else {
                continue;
            };
            if self.is_terminated(instance, now) {
                continue;
            }
            let pace = |d: Duration| d.mul_f64(instance.pace.max(0.0));
            let down = now + pace(l.reboot_down);
            let back = now + pace(l.reboot_up);
            let reboot = Reboot {
                at: now,
                down,
                agent_back: (!instance.has(Fault::RebootNeverReturns)
                    && !instance.has(Fault::AgentNeverRejoins))
                .then_some(back),
                // EC2 samples the checks: they read OK for a moment after going down.
                impaired_from: down + Duration::from_secs(10),
                impaired_until: (!instance.has(Fault::RebootNeverReturns)
                    && !instance.has(Fault::StatusChecksFail))
                .then_some(back + l.status_lag),
            };
            state
                .world
                .reboots
                .entry(id.clone())
                .or_default()
                .push(reboot);
        }
        self.check_held(&mut state, now);
        Ok(())
    }

    pub(super) fn read_boot_ids(
        &self,
        instance_ids: &[String],
        platform: Platform,
    ) -> Result<BTreeMap<String, String>, FleetError> {
        let now = Instant::now();
        let mut state = self.lock();
        self.call(&mut state, "ssm:SendCommand")?;
        self.call(&mut state, "ssm:ListCommandInvocations")?;
        self.advance(&mut state, now);
        Ok(state
            .instances
            .iter()
            .filter(|i| instance_ids.contains(&i.id) && i.platform == platform)
            .filter(|i| !i.has(Fault::SsmOffline) && !self.is_terminated(i, now))
            .filter_map(|i| {
                // Down (or its SSM agent not yet back): no answer.
                let reboots = state
                    .world
                    .reboots
                    .get(&i.id)
                    .map_or(&[][..], Vec::as_slice);
                let booting = reboots
                    .iter()
                    .any(|r| now >= r.down && r.impaired_until.is_none_or(|u| now < u));
                if booting {
                    return None;
                }
                let boots = reboots.iter().filter(|r| now >= r.down).count();
                Some((i.id.clone(), format!("{}-boot-{boots}", i.id)))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::fleet::sim::{Latencies, SimGroup};
    use crate::fleet::Fleet;

    /// The model the fallback's holds are tested against: left alone, Auto Scaling
    /// replaces an instance whose reboot fails its status checks, and managed scaling
    /// scales in an emptied one; holds keep both away.
    #[tokio::test(start_paused = true)]
    async fn auto_scaling_replaces_and_scales_in_what_is_not_held() {
        let fleet = |suspended: &[&str], protected: bool| {
            let instances = vec![
                SimInstance::healthy("i-1", "eu-west-1a").in_group("g"),
                SimInstance::healthy("i-2", "eu-west-1a").in_group("g"),
            ];
            SimFleet::new(instances, Latencies::default(), SystemTime::UNIX_EPOCH)
                .with_group(
                    "g",
                    SimGroup {
                        suspended: suspended.iter().map(|s| s.to_string()).collect(),
                        managed_scaling: true,
                        ..SimGroup::default()
                    },
                )
                .with_instance_held("i-1", protected, false)
        };
        let ids = ["i-1".to_string()];
        let leaving = |sim: &SimFleet| sim.terminated_by_auto_scaling().contains_key("i-1");

        let sim = fleet(&[], false);
        sim.reboot(&ids).await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        sim.instance_health(&ids).await.unwrap();
        assert!(leaving(&sim), "an unheld rebooting instance is replaced");

        let sim = fleet(&["HealthCheck", "ReplaceUnhealthy"], true);
        sim.reboot(&ids).await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        sim.instance_health(&ids).await.unwrap();
        assert!(!leaving(&sim), "held, it is not");

        let sim = fleet(&[], false);
        let arn = sim.container_instance_arn("i-1");
        sim.set_draining("sim", std::slice::from_ref(&arn), true)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(90)).await;
        sim.instance_health(&ids).await.unwrap();
        assert!(
            leaving(&sim),
            "an emptied, unprotected instance is scaled in"
        );

        let sim = fleet(&[], true);
        sim.set_draining("sim", std::slice::from_ref(&arn), true)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(90)).await;
        sim.instance_health(&ids).await.unwrap();
        assert!(!leaving(&sim), "a protected one is not");
    }
}
