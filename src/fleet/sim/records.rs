//! The simulated fleet's records and restores: container-instance attributes, the Auto
//! Scaling group's tag, processes, protection and Standby, and SSM parameters — kept the
//! way AWS keeps them, so a run that crashed and a run that resumes see the same world.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::{SimFleet, SimGroup};
use crate::fleet::{FleetError, InstanceMark};
use crate::journal::marks::DONE_ATTRIBUTE;

impl SimFleet {
    /// Every SSM parameter read and write takes `latency` (the answer reflects the state
    /// at its end), so runs racing for the lease interleave as they would on AWS.
    pub fn with_record_latency(self, latency: Duration) -> SimFleet {
        self.lock().record_latency = latency;
        self
    }

    pub(super) async fn record_delay(&self) {
        let latency = self.lock().record_latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    /// The instance's custom attributes now.
    pub fn marks(&self, instance_id: &str) -> BTreeMap<String, String> {
        self.lock()
            .instances
            .iter()
            .find(|i| i.id == instance_id)
            .map(|i| i.marks.clone())
            .unwrap_or_default()
    }

    /// Whether the instance has scale-in protection, is in Standby, and its status.
    pub fn instance_state(&self, instance_id: &str) -> Option<(bool, bool, String)> {
        let state = self.lock();
        let instance = state.instances.iter().find(|i| i.id == instance_id)?;
        Some((
            instance.protected,
            instance.standby,
            instance.status.clone(),
        ))
    }

    /// A group as an earlier run (or an operator) left it.
    pub fn with_group(self, name: &str, group: SimGroup) -> SimFleet {
        self.lock().groups.insert(name.into(), group);
        self
    }

    pub fn group(&self, name: &str) -> Option<SimGroup> {
        self.lock().groups.get(name).cloned()
    }

    /// With an instance protected or in Standby, as an earlier run left it.
    pub fn with_instance_held(self, instance_id: &str, protected: bool, standby: bool) -> SimFleet {
        if let Some(instance) = self
            .lock()
            .instances
            .iter_mut()
            .find(|i| i.id == instance_id)
        {
            instance.protected = protected;
            instance.standby = standby;
        }
        self
    }

    /// An SSM parameter's value now (tests read the lease with it).
    pub fn parameter(&self, name: &str) -> Option<String> {
        self.lock().parameters.get(name).cloned()
    }

    /// Restarts sent to the instance after it was first marked done.
    pub fn restarts_after_done(&self, instance_id: &str) -> usize {
        let state = self.lock();
        let Some(done) = state.marked_done.get(instance_id) else {
            return 0;
        };
        state
            .commands
            .values()
            .filter_map(|timelines| timelines.get(instance_id))
            .filter(|t| t.sent > *done)
            .count()
    }

    pub(super) fn mark_instances(
        &self,
        cluster: &str,
        marks: &[InstanceMark],
    ) -> Result<(), FleetError> {
        let now = Instant::now();
        let mut state = self.lock();
        for _ in marks.chunks(10) {
            self.call(&mut state, "ecs:PutAttributes")?;
        }
        self.known_cluster(cluster)?;
        for mark in marks {
            let Some(instance) = state
                .instances
                .iter_mut()
                .find(|i| self.arn(&i.id) == mark.container_instance_arn)
            else {
                return Err(FleetError::Aws {
                    action: "ecs:PutAttributes".into(),
                    scope: mark.container_instance_arn.clone(),
                    reason: "TargetNotFoundException".into(),
                });
            };
            match &mark.value {
                Some(value) => {
                    instance.marks.insert(mark.name.into(), value.clone());
                }
                None => {
                    instance.marks.remove(mark.name);
                }
            }
            let id = instance.id.clone();
            if mark.name == DONE_ATTRIBUTE && mark.value.is_some() {
                state.marked_done.entry(id).or_insert(now);
            }
        }
        Ok(())
    }

    pub(super) fn read_group_marks(&self) -> Result<BTreeMap<String, String>, FleetError> {
        let mut state = self.lock();
        self.call(&mut state, "autoscaling:DescribeTags")?;
        Ok(state
            .groups
            .iter()
            .filter_map(|(name, g)| Some((name.clone(), g.owes_tag.clone()?)))
            .collect())
    }

    pub(super) fn mark_group(&self, group: &str, value: Option<&str>) -> Result<(), FleetError> {
        let mut state = self.lock();
        let action = if value.is_some() {
            "autoscaling:CreateOrUpdateTags"
        } else {
            "autoscaling:DeleteTags"
        };
        self.call(&mut state, action)?;
        let entry = state.groups.entry(group.to_string()).or_default();
        entry.owes_tag = value.map(str::to_string);
        Ok(())
    }

    pub(super) fn get_parameter(&self, name: &str) -> Result<Option<String>, FleetError> {
        let mut state = self.lock();
        self.call(&mut state, "ssm:GetParameter")?;
        Ok(state.parameters.get(name).cloned())
    }

    pub(super) fn put_parameter(
        &self,
        name: &str,
        value: &str,
        overwrite: bool,
    ) -> Result<bool, FleetError> {
        let mut state = self.lock();
        self.call(&mut state, "ssm:PutParameter")?;
        if !overwrite && state.parameters.contains_key(name) {
            return Ok(false);
        }
        state.parameters.insert(name.into(), value.into());
        Ok(true)
    }

    pub(super) fn delete_parameter(&self, name: &str) -> Result<(), FleetError> {
        let mut state = self.lock();
        self.call(&mut state, "ssm:DeleteParameter")?;
        state.parameters.remove(name);
        Ok(())
    }

    pub(super) fn update_state(
        &self,
        cluster: &str,
        arns: &[String],
        draining: bool,
    ) -> Result<(), FleetError> {
        let mut state = self.lock();
        for _ in arns.chunks(10) {
            self.call(&mut state, "ecs:UpdateContainerInstancesState")?;
        }
        self.known_cluster(cluster)?;
        let now = Instant::now();
        self.advance(&mut state, now);
        let mut changed = Vec::new();
        for instance in &mut state.instances {
            if arns.contains(&self.arn(&instance.id)) {
                instance.status = if draining { "DRAINING" } else { "ACTIVE" }.into();
                changed.push(instance.id.clone());
            }
        }
        self.drain_changed(&mut state, &changed, draining, now);
        Ok(())
    }

    pub(super) fn protect(
        &self,
        group: &str,
        ids: &[String],
        protected: bool,
    ) -> Result<(), FleetError> {
        let mut state = self.lock();
        self.call(&mut state, "autoscaling:SetInstanceProtection")?;
        for instance in &mut state.instances {
            if ids.contains(&instance.id) && instance.auto_scaling_group.as_deref() == Some(group) {
                instance.protected = protected;
            }
        }
        Ok(())
    }

    pub(super) fn suspend(
        &self,
        group: &str,
        processes: &[String],
        suspended: bool,
    ) -> Result<(), FleetError> {
        let mut state = self.lock();
        let action = if suspended {
            "autoscaling:SuspendProcesses"
        } else {
            "autoscaling:ResumeProcesses"
        };
        self.call(&mut state, action)?;
        let entry = state.groups.entry(group.to_string()).or_default();
        for process in processes {
            if suspended {
                entry.suspended.insert(process.clone());
            } else {
                entry.suspended.remove(process);
            }
        }
        Ok(())
    }

    pub(super) fn standby(
        &self,
        group: &str,
        ids: &[String],
        standby: bool,
    ) -> Result<(), FleetError> {
        let mut state = self.lock();
        self.call(&mut state, "autoscaling:DescribeAutoScalingInstances")?;
        self.call(
            &mut state,
            if standby {
                "autoscaling:EnterStandby"
            } else {
                "autoscaling:ExitStandby"
            },
        )?;
        // Like Auto Scaling: entering lowers the desired capacity, refused below the
        // minimum; leaving raises it, refused above the maximum.
        let now = Instant::now();
        let members = |standby: bool| {
            state
                .instances
                .iter()
                .filter(|i| i.auto_scaling_group.as_deref() == Some(group))
                .filter(|i| !self.is_terminated(i, now) && i.standby == standby)
                .map(|i| i.id.clone())
                .collect::<Vec<_>>()
        };
        let in_service = members(false);
        let moving = members(!standby)
            .into_iter()
            .filter(|id| ids.contains(id))
            .count();
        let limits = state.groups.get(group).cloned().unwrap_or_default();
        let desired = in_service.len();
        let refused = if standby {
            (desired - moving.min(desired)) < usize::try_from(limits.min_size).unwrap_or(0)
        } else {
            desired + moving > usize::try_from(limits.max_size).unwrap_or(0)
        };
        if refused {
            return Err(FleetError::Aws {
                action: if standby {
                    "autoscaling:EnterStandby"
                } else {
                    "autoscaling:ExitStandby"
                }
                .into(),
                scope: group.into(),
                reason: format!(
                    "ValidationError: desired capacity {desired} would leave {}..{}",
                    limits.min_size, limits.max_size
                ),
            });
        }
        for instance in &mut state.instances {
            if ids.contains(&instance.id) && instance.auto_scaling_group.as_deref() == Some(group) {
                instance.standby = standby;
            }
        }
        Ok(())
    }

    pub(super) fn known_cluster(&self, cluster: &str) -> Result<(), FleetError> {
        if cluster == self.cluster {
            Ok(())
        } else {
            Err(FleetError::ClusterNotFound {
                cluster: cluster.into(),
                region: self.region.clone(),
                account: None,
            })
        }
    }
}
