//! A fleet that dies: it passes a given number of calls through to the fleet it wraps,
//! then never answers again and says so, so a test can drop the run at exactly that point
//! (a crash between any two AWS calls) and start another one on the same world.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

use super::{
    AgentState, AutoScaling, CommandId, Fleet, FleetError, InstanceHealth, InstanceMark,
    Invocation, ProbeRequest, Record, RestartRequest, ServiceState, TaskInfo, Workload,
};
use crate::inventory::{Inventory, Platform};

pub struct Crashing<'a, F> {
    inner: &'a F,
    left: AtomicUsize,
    crashed: Notify,
}

impl<'a, F: Fleet + Sync> Crashing<'a, F> {
    /// Lets `calls` calls through, then crashes.
    pub fn after(inner: &'a F, calls: usize) -> Self {
        Crashing {
            inner,
            left: AtomicUsize::new(calls),
            crashed: Notify::new(),
        }
    }

    /// Resolves once the fleet has crashed.
    pub async fn crashed(&self) {
        self.crashed.notified().await
    }

    async fn pass(&self) {
        let passed = self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !passed {
            self.crashed.notify_one();
            std::future::pending::<()>().await;
        }
    }
}

impl<F: Fleet + Sync> Fleet for Crashing<'_, F> {
    async fn discover(&self, cluster: &str) -> Result<Inventory, FleetError> {
        self.pass().await;
        self.inner.discover(cluster).await
    }
    async fn send_restart(&self, request: &RestartRequest) -> Result<CommandId, FleetError> {
        self.pass().await;
        self.inner.send_restart(request).await
    }
    async fn send_probe(&self, request: &ProbeRequest) -> Result<CommandId, FleetError> {
        self.pass().await;
        self.inner.send_probe(request).await
    }
    async fn command_results(&self, command: &CommandId) -> Result<Vec<Invocation>, FleetError> {
        self.pass().await;
        self.inner.command_results(command).await
    }
    async fn command_output(&self, command: &CommandId, id: &str) -> Result<String, FleetError> {
        self.pass().await;
        self.inner.command_output(command, id).await
    }
    async fn cancel(&self, command: &CommandId, ids: &[String]) -> Result<(), FleetError> {
        self.pass().await;
        self.inner.cancel(command, ids).await
    }
    async fn agent_states(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> Result<Vec<AgentState>, FleetError> {
        self.pass().await;
        self.inner.agent_states(cluster, arns).await
    }
    async fn write_instance_marks(
        &self,
        cluster: &str,
        marks: &[InstanceMark],
    ) -> Result<(), FleetError> {
        self.pass().await;
        self.inner.write_instance_marks(cluster, marks).await
    }
    async fn group_marks(&self) -> Result<BTreeMap<String, String>, FleetError> {
        self.pass().await;
        self.inner.group_marks().await
    }
    async fn write_group_mark(&self, group: &str, value: Option<&str>) -> Result<(), FleetError> {
        self.pass().await;
        self.inner.write_group_mark(group, value).await
    }
    async fn read_record(
        &self,
        cluster: &str,
        record: Record,
    ) -> Result<Option<String>, FleetError> {
        self.pass().await;
        self.inner.read_record(cluster, record).await
    }
    async fn write_record(
        &self,
        cluster: &str,
        record: Record,
        value: &str,
        overwrite: bool,
    ) -> Result<bool, FleetError> {
        self.pass().await;
        self.inner
            .write_record(cluster, record, value, overwrite)
            .await
    }
    async fn delete_record(&self, cluster: &str, record: Record) -> Result<(), FleetError> {
        self.pass().await;
        self.inner.delete_record(cluster, record).await
    }
    async fn set_draining(
        &self,
        cluster: &str,
        arns: &[String],
        draining: bool,
    ) -> Result<(), FleetError> {
        self.pass().await;
        self.inner.set_draining(cluster, arns, draining).await
    }
    async fn set_scale_in_protection(
        &self,
        group: &str,
        ids: &[String],
        protected: bool,
    ) -> Result<(), FleetError> {
        self.pass().await;
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
        self.pass().await;
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
        self.pass().await;
        self.inner.set_standby(group, ids, standby).await
    }
    async fn workload(&self, cluster: &str) -> Result<Workload, FleetError> {
        self.pass().await;
        self.inner.workload(cluster).await
    }
    async fn services(
        &self,
        cluster: &str,
        names: &[String],
    ) -> Result<BTreeMap<String, ServiceState>, FleetError> {
        self.pass().await;
        self.inner.services(cluster, names).await
    }
    async fn tasks_on(
        &self,
        cluster: &str,
        instances: &[(String, String)],
    ) -> Result<Vec<TaskInfo>, FleetError> {
        self.pass().await;
        self.inner.tasks_on(cluster, instances).await
    }
    async fn auto_scaling(&self, cluster: &str, ids: &[String]) -> Result<AutoScaling, FleetError> {
        self.pass().await;
        self.inner.auto_scaling(cluster, ids).await
    }
    async fn instance_health(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, InstanceHealth>, FleetError> {
        self.pass().await;
        self.inner.instance_health(ids).await
    }
    async fn reboot(&self, ids: &[String]) -> Result<(), FleetError> {
        self.pass().await;
        self.inner.reboot(ids).await
    }
    async fn boot_ids(
        &self,
        ids: &[String],
        platform: Platform,
    ) -> Result<BTreeMap<String, String>, FleetError> {
        self.pass().await;
        self.inner.boot_ids(ids, platform).await
    }
    fn request_counts(&self) -> BTreeMap<String, u64> {
        self.inner.request_counts()
    }
}
