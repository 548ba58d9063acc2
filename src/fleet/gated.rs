//! A fleet whose every call first passes a gate: the shape the test fleets share (one
//! that crashes after so many calls, one that injects an AWS error). The gate is told
//! which `Fleet` method is called and, for a call that changes what the tool must put
//! back (a restart, DRAINING, a hold, a reboot), what it changes.

use std::collections::BTreeMap;
use std::future::Future;

use super::{
    AgentState, AutoScaling, CommandId, Fleet, FleetError, InstanceHealth, InstanceMark,
    Invocation, ProbeRequest, Record, RestartRequest, ServiceState, TaskInfo, Workload,
};
use crate::inventory::{Inventory, Platform};

/// What a call passes before it reaches the fleet; an error is the call's answer.
pub trait Gate: Sync {
    /// Before `method`; `change` says what it changes, `None` for reads and putting back.
    fn pass(
        &self,
        method: &'static str,
        change: Option<String>,
    ) -> impl Future<Output = Result<(), FleetError>> + Send;
}

/// `inner` behind `gate`.
pub struct Gated<'a, F, G> {
    pub(super) inner: &'a F,
    pub(super) gate: G,
}

/// Every `Fleet` method by the name its gate is told, for a matrix over all of them.
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

impl<F: Fleet + Sync, G: Gate> Fleet for Gated<'_, F, G> {
    async fn discover(&self, cluster: &str) -> Result<Inventory, FleetError> {
        self.gate.pass("discover", None).await?;
        self.inner.discover(cluster).await
    }
    async fn send_restart(&self, request: &RestartRequest) -> Result<CommandId, FleetError> {
        self.gate
            .pass(
                "send_restart",
                Some(format!("restart {}", request.instance_ids.join(" "))),
            )
            .await?;
        self.inner.send_restart(request).await
    }
    async fn send_probe(&self, request: &ProbeRequest) -> Result<CommandId, FleetError> {
        self.gate.pass("send_probe", None).await?;
        self.inner.send_probe(request).await
    }
    async fn command_results(&self, command: &CommandId) -> Result<Vec<Invocation>, FleetError> {
        self.gate.pass("command_results", None).await?;
        self.inner.command_results(command).await
    }
    async fn command_output(&self, command: &CommandId, id: &str) -> Result<String, FleetError> {
        self.gate.pass("command_output", None).await?;
        self.inner.command_output(command, id).await
    }
    async fn cancel(&self, command: &CommandId, ids: &[String]) -> Result<(), FleetError> {
        self.gate.pass("cancel", None).await?;
        self.inner.cancel(command, ids).await
    }
    async fn agent_states(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> Result<Vec<AgentState>, FleetError> {
        self.gate.pass("agent_states", None).await?;
        self.inner.agent_states(cluster, arns).await
    }
    async fn write_instance_marks(
        &self,
        cluster: &str,
        marks: &[InstanceMark],
    ) -> Result<(), FleetError> {
        self.gate.pass("write_instance_marks", None).await?;
        self.inner.write_instance_marks(cluster, marks).await
    }
    async fn group_marks(&self) -> Result<BTreeMap<String, String>, FleetError> {
        self.gate.pass("group_marks", None).await?;
        self.inner.group_marks().await
    }
    async fn write_group_mark(&self, group: &str, value: Option<&str>) -> Result<(), FleetError> {
        self.gate.pass("write_group_mark", None).await?;
        self.inner.write_group_mark(group, value).await
    }
    async fn read_record(
        &self,
        cluster: &str,
        record: Record,
    ) -> Result<Option<String>, FleetError> {
        self.gate.pass("read_record", None).await?;
        self.inner.read_record(cluster, record).await
    }
    async fn write_record(
        &self,
        cluster: &str,
        record: Record,
        value: &str,
        overwrite: bool,
    ) -> Result<bool, FleetError> {
        self.gate.pass("write_record", None).await?;
        self.inner
            .write_record(cluster, record, value, overwrite)
            .await
    }
    async fn delete_record(&self, cluster: &str, record: Record) -> Result<(), FleetError> {
        self.gate.pass("delete_record", None).await?;
        self.inner.delete_record(cluster, record).await
    }
    async fn set_draining(
        &self,
        cluster: &str,
        arns: &[String],
        draining: bool,
    ) -> Result<(), FleetError> {
        self.gate
            .pass(
                "set_draining",
                draining.then(|| format!("DRAINING {}", arns.join(" "))),
            )
            .await?;
        self.inner.set_draining(cluster, arns, draining).await
    }
    async fn set_scale_in_protection(
        &self,
        group: &str,
        ids: &[String],
        protected: bool,
    ) -> Result<(), FleetError> {
        self.gate
            .pass(
                "set_scale_in_protection",
                protected.then(|| format!("protect {}", ids.join(" "))),
            )
            .await?;
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
        self.gate
            .pass(
                "set_processes_suspended",
                suspended.then(|| format!("suspend {} in {group}", processes.join(" "))),
            )
            .await?;
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
        self.gate
            .pass(
                "set_standby",
                standby.then(|| format!("standby {}", ids.join(" "))),
            )
            .await?;
        self.inner.set_standby(group, ids, standby).await
    }
    async fn workload(&self, cluster: &str) -> Result<Workload, FleetError> {
        self.gate.pass("workload", None).await?;
        self.inner.workload(cluster).await
    }
    async fn services(
        &self,
        cluster: &str,
        names: &[String],
    ) -> Result<BTreeMap<String, ServiceState>, FleetError> {
        self.gate.pass("services", None).await?;
        self.inner.services(cluster, names).await
    }
    async fn tasks_on(
        &self,
        cluster: &str,
        instances: &[(String, String)],
    ) -> Result<Vec<TaskInfo>, FleetError> {
        self.gate.pass("tasks_on", None).await?;
        self.inner.tasks_on(cluster, instances).await
    }
    async fn auto_scaling(&self, cluster: &str, ids: &[String]) -> Result<AutoScaling, FleetError> {
        self.gate.pass("auto_scaling", None).await?;
        self.inner.auto_scaling(cluster, ids).await
    }
    async fn instance_health(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, InstanceHealth>, FleetError> {
        self.gate.pass("instance_health", None).await?;
        self.inner.instance_health(ids).await
    }
    async fn reboot(&self, ids: &[String]) -> Result<(), FleetError> {
        self.gate
            .pass("reboot", Some(format!("reboot {}", ids.join(" "))))
            .await?;
        self.inner.reboot(ids).await
    }
    async fn boot_ids(
        &self,
        ids: &[String],
        platform: Platform,
    ) -> Result<BTreeMap<String, String>, FleetError> {
        self.gate.pass("boot_ids", None).await?;
        self.inner.boot_ids(ids, platform).await
    }
    fn request_counts(&self) -> BTreeMap<String, u64> {
        self.inner.request_counts()
    }
}
