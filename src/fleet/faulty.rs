//! A fleet with an injected AWS error: every call of one `Fleet` method fails from its
//! Nth call on, as a missing permission, a broken API or a lost network would make it.
//! It also records what was changed after the first failure (a restart sent, an
//! instance set DRAINING, protected, suspended, in Standby or rebooted), so a test can
//! show that nothing new is touched once the rollout halted — putting back is allowed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::{
    AgentState, AutoScaling, CommandId, Fleet, FleetError, InstanceHealth, InstanceMark,
    Invocation, ProbeRequest, Record, RestartRequest, ServiceState, TaskInfo, Workload,
};
use crate::inventory::{Inventory, Platform};

pub struct Faulty<'a, F> {
    inner: &'a F,
    method: &'static str,
    from_call: usize,
    calls: Mutex<BTreeMap<&'static str, usize>>,
    failed: AtomicBool,
    /// Record every change, not only those after an injected failure.
    watch_all: bool,
    changes_after: Mutex<Vec<(tokio::time::Instant, String)>>,
}

impl<'a, F: Fleet + Sync> Faulty<'a, F> {
    /// Fails every call of `method` (a `Fleet` method's name) from its `from_call`th on
    /// (0: the first).
    pub fn failing(inner: &'a F, method: &'static str, from_call: usize) -> Self {
        Faulty {
            inner,
            method,
            from_call,
            calls: Mutex::new(BTreeMap::new()),
            failed: AtomicBool::new(false),
            watch_all: false,
            changes_after: Mutex::new(Vec::new()),
        }
    }

    /// Fails nothing; records every change and when it was made.
    pub fn watching(inner: &'a F) -> Self {
        Faulty {
            watch_all: true,
            ..Faulty::failing(inner, "", usize::MAX)
        }
    }

    /// Whether the fault was hit.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// What was changed after the first injected failure (or at all, when watching), and
    /// when.
    pub fn changes_after_failure(&self) -> Vec<(tokio::time::Instant, String)> {
        self.changes_after
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn gate(&self, method: &'static str, change: Option<String>) -> Result<(), FleetError> {
        let call = {
            let mut calls = self
                .calls
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = calls.entry(method).or_default();
            *n += 1;
            *n - 1
        };
        if method == self.method && call >= self.from_call {
            self.failed.store(true, Ordering::SeqCst);
            return Err(FleetError::Aws {
                action: format!("{method} (injected)"),
                scope: "the test fleet".into(),
                reason: "InternalFailure: injected fault".into(),
            });
        }
        if let (true, Some(change)) = (self.failed() || self.watch_all, change) {
            self.changes_after
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((tokio::time::Instant::now(), change));
        }
        Ok(())
    }
}

/// Every `Fleet` method, for a matrix over all of them.
pub const METHODS: &[&str] = &[
    "discover",
    "send_restart",
    "send_probe",
    "command_results",
    "command_output",
    "cancel",
    "agent_states",
    "write_instance_marks",
    "group_marks",
    "write_group_mark",
    "read_record",
    "write_record",
    "delete_record",
    "set_draining",
    "set_scale_in_protection",
    "set_processes_suspended",
    "set_standby",
    "workload",
    "services",
    "tasks_on",
    "auto_scaling",
    "instance_health",
    "reboot",
    "boot_ids",
];

impl<F: Fleet + Sync> Fleet for Faulty<'_, F> {
    async fn discover(&self, cluster: &str) -> Result<Inventory, FleetError> {
        self.gate("discover", None)?;
        self.inner.discover(cluster).await
    }
    async fn send_restart(&self, request: &RestartRequest) -> Result<CommandId, FleetError> {
        self.gate(
            "send_restart",
            Some(format!("restart {}", request.instance_ids.join(" "))),
        )?;
        self.inner.send_restart(request).await
    }
    async fn send_probe(&self, request: &ProbeRequest) -> Result<CommandId, FleetError> {
        self.gate("send_probe", None)?;
        self.inner.send_probe(request).await
    }
    async fn command_results(&self, command: &CommandId) -> Result<Vec<Invocation>, FleetError> {
        self.gate("command_results", None)?;
        self.inner.command_results(command).await
    }
    async fn command_output(&self, command: &CommandId, id: &str) -> Result<String, FleetError> {
        self.gate("command_output", None)?;
        self.inner.command_output(command, id).await
    }
    async fn cancel(&self, command: &CommandId, ids: &[String]) -> Result<(), FleetError> {
        self.gate("cancel", None)?;
        self.inner.cancel(command, ids).await
    }
    async fn agent_states(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> Result<Vec<AgentState>, FleetError> {
        self.gate("agent_states", None)?;
        self.inner.agent_states(cluster, arns).await
    }
    async fn write_instance_marks(
        &self,
        cluster: &str,
        marks: &[InstanceMark],
    ) -> Result<(), FleetError> {
        self.gate("write_instance_marks", None)?;
        self.inner.write_instance_marks(cluster, marks).await
    }
    async fn group_marks(&self) -> Result<BTreeMap<String, String>, FleetError> {
        self.gate("group_marks", None)?;
        self.inner.group_marks().await
    }
    async fn write_group_mark(&self, group: &str, value: Option<&str>) -> Result<(), FleetError> {
        self.gate("write_group_mark", None)?;
        self.inner.write_group_mark(group, value).await
    }
    async fn read_record(
        &self,
        cluster: &str,
        record: Record,
    ) -> Result<Option<String>, FleetError> {
        self.gate("read_record", None)?;
        self.inner.read_record(cluster, record).await
    }
    async fn write_record(
        &self,
        cluster: &str,
        record: Record,
        value: &str,
        overwrite: bool,
    ) -> Result<bool, FleetError> {
        self.gate("write_record", None)?;
        self.inner
            .write_record(cluster, record, value, overwrite)
            .await
    }
    async fn delete_record(&self, cluster: &str, record: Record) -> Result<(), FleetError> {
        self.gate("delete_record", None)?;
        self.inner.delete_record(cluster, record).await
    }
    async fn set_draining(
        &self,
        cluster: &str,
        arns: &[String],
        draining: bool,
    ) -> Result<(), FleetError> {
        self.gate(
            "set_draining",
            draining.then(|| format!("DRAINING {}", arns.join(" "))),
        )?;
        self.inner.set_draining(cluster, arns, draining).await
    }
    async fn set_scale_in_protection(
        &self,
        group: &str,
        ids: &[String],
        protected: bool,
    ) -> Result<(), FleetError> {
        self.gate(
            "set_scale_in_protection",
            protected.then(|| format!("protect {}", ids.join(" "))),
        )?;
        self.inner
            .set_scale_in_protection(group, ids, protected)
            .await
    }
    async fn set_processes_suspended(
        &self,
        group: &str,
        processes: &[String],
        suspended: bool,
    ) -> Result<(), FleetError> {
        self.gate(
            "set_processes_suspended",
            suspended.then(|| format!("suspend {} in {group}", processes.join(" "))),
        )?;
        self.inner
            .set_processes_suspended(group, processes, suspended)
            .await
    }
    async fn set_standby(
        &self,
        group: &str,
        ids: &[String],
        standby: bool,
    ) -> Result<(), FleetError> {
        self.gate(
            "set_standby",
            standby.then(|| format!("standby {}", ids.join(" "))),
        )?;
        self.inner.set_standby(group, ids, standby).await
    }
    async fn workload(&self, cluster: &str) -> Result<Workload, FleetError> {
        self.gate("workload", None)?;
        self.inner.workload(cluster).await
    }
    async fn services(
        &self,
        cluster: &str,
        names: &[String],
    ) -> Result<BTreeMap<String, ServiceState>, FleetError> {
        self.gate("services", None)?;
        self.inner.services(cluster, names).await
    }
    async fn tasks_on(
        &self,
        cluster: &str,
        instances: &[(String, String)],
    ) -> Result<Vec<TaskInfo>, FleetError> {
        self.gate("tasks_on", None)?;
        self.inner.tasks_on(cluster, instances).await
    }
    async fn auto_scaling(&self, cluster: &str, ids: &[String]) -> Result<AutoScaling, FleetError> {
        self.gate("auto_scaling", None)?;
        self.inner.auto_scaling(cluster, ids).await
    }
    async fn instance_health(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, InstanceHealth>, FleetError> {
        self.gate("instance_health", None)?;
        self.inner.instance_health(ids).await
    }
    async fn reboot(&self, ids: &[String]) -> Result<(), FleetError> {
        self.gate("reboot", Some(format!("reboot {}", ids.join(" "))))?;
        self.inner.reboot(ids).await
    }
    async fn boot_ids(
        &self,
        ids: &[String],
        platform: Platform,
    ) -> Result<BTreeMap<String, String>, FleetError> {
        self.gate("boot_ids", None)?;
        self.inner.boot_ids(ids, platform).await
    }
    fn request_counts(&self) -> BTreeMap<String, u64> {
        self.inner.request_counts()
    }
}
