//! What the drain-and-reboot fallback reads about a cluster, shaped for its decisions:
//! the hosts and the tasks on them, the services those tasks belong to, the Auto Scaling
//! groups that own the instances, and the instances' health as EC2 reports it.

use std::collections::BTreeMap;

use crate::rollout::capacity::{Host, Service};
use crate::rollout::hold::{Group, Member};

/// A running (or starting) task: where it runs, what it belongs to, what it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    pub task_arn: String,
    /// The EC2 instance it runs on.
    pub instance_id: String,
    /// `service:NAME` for a service's task, else `family:NAME` (a standalone task).
    pub group: String,
    pub cpu: i64,
    pub memory: i64,
    /// Static host ports its containers bind.
    pub host_ports: Vec<u16>,
    /// It has its own ENI (`awsvpc` network mode).
    pub awsvpc: bool,
}

impl TaskInfo {
    /// The service it belongs to, if any.
    pub fn service(&self) -> Option<&str> {
        self.group.strip_prefix("service:")
    }
}

/// A service's placement rules and how it is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceState {
    pub service: Service,
    pub desired: u32,
    /// Deployments under way (more than one: mid-deployment).
    pub deployments: u32,
}

impl ServiceState {
    /// Below its desired count or mid-deployment: the reason, if so.
    pub fn unsettled(&self) -> Option<String> {
        if self.service.running < self.desired {
            return Some(format!(
                "service {} runs {} of {} desired tasks",
                self.service.name, self.service.running, self.desired
            ));
        }
        if self.deployments > 1 {
            return Some(format!(
                "service {} is mid-deployment ({} deployments)",
                self.service.name, self.deployments
            ));
        }
        None
    }
}

/// The cluster's hosts, services and tasks at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    /// Every registered container instance as a place for tasks.
    pub hosts: Vec<Host>,
    /// Services by name.
    pub services: BTreeMap<String, ServiceState>,
    /// Tasks that are running or about to (desired status RUNNING).
    pub tasks: Vec<TaskInfo>,
}

impl Workload {
    pub fn tasks_on<'a>(&'a self, instance_id: &'a str) -> impl Iterator<Item = &'a TaskInfo> {
        self.tasks
            .iter()
            .filter(move |t| t.instance_id == instance_id)
    }
}

/// The Auto Scaling side of some instances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoScaling {
    /// Groups by name.
    pub groups: BTreeMap<String, Group>,
    /// Instance id → its group's name and its state in it. An instance absent here is
    /// in no group.
    pub members: BTreeMap<String, (String, Member)>,
}

/// An instance as EC2 (and Auto Scaling) report it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceHealth {
    /// pending, running, stopping, stopped, shutting-down, terminated.
    pub state: String,
    /// Both EC2 status checks (system and instance) read `ok`.
    pub status_ok: bool,
    /// Auto Scaling's lifecycle state (`Terminating:Wait`, …), when in a group.
    pub lifecycle_state: Option<String>,
}

impl InstanceHealth {
    /// Being terminated (spot, scale-in): it will not come back.
    pub fn is_leaving(&self) -> bool {
        matches!(self.state.as_str(), "shutting-down" | "terminated")
            || self
                .lifecycle_state
                .as_deref()
                .is_some_and(|s| s.starts_with("Terminating"))
    }
}
