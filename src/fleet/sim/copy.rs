//! A simulated copy of a real cluster, for rehearsing a rollout before it runs
//! (`--dry-run`'s estimate): the same container instances (id, zone, platform, status,
//! agent connected, Auto Scaling group), the same reach of SSM, and the same services
//! and tasks where the fallback will drain. What AWS will take is not copied — it cannot
//! be read — but drawn per instance from the latency model: the simulated world's
//! latencies, each host slower or faster by a factor from 0.7 to 1.6 (the spread the
//! benchmarks use), from a seed so that a rehearsal repeats.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use super::{Fault, Latencies, SimFleet, SimGroup, SimInstance, SimService};
use crate::fleet::Workload;
use crate::inventory::Inventory;
use crate::rollout::run::Target;

/// The slowest and fastest hosts of the latency model, as factors of its latencies.
pub const PACE_RANGE: (f64, f64) = (0.7, 1.6);

/// What a rehearsal copies.
pub struct Blueprint<'a> {
    pub inventory: &'a Inventory,
    /// The rollout's targets: their zone, platform, SSM reach and group.
    pub targets: &'a [Target],
    /// The cluster's services and tasks (read where the fallback will drain).
    pub workload: Option<&'a Workload>,
}

/// A reproducible stream of numbers in [0, 1) (SplitMix64).
#[derive(Debug, Clone)]
pub struct Draws(u64);

impl Draws {
    pub fn new(seed: u64) -> Draws {
        Draws(seed)
    }

    pub fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A host's pace under the latency model.
    pub fn next_pace(&mut self) -> f64 {
        let (slow, fast) = (PACE_RANGE.1, PACE_RANGE.0);
        fast + (slow - fast) * self.next_unit()
    }
}

impl SimFleet {
    /// A copy of the blueprint's cluster, its latencies drawn from `seed`.
    pub fn copy_of(blueprint: &Blueprint<'_>, seed: u64, wall_start: SystemTime) -> SimFleet {
        let targets: BTreeMap<&str, &Target> = blueprint
            .targets
            .iter()
            .map(|t| (t.instance_id.as_str(), t))
            .collect();
        let ec2 = blueprint.inventory.ec2_instances.as_ref().ok();
        let hosts: BTreeMap<&str, _> = blueprint
            .workload
            .map(|w| {
                w.hosts
                    .iter()
                    .map(|h| (h.instance_id.as_str(), h))
                    .collect()
            })
            .unwrap_or_default();
        let tasks_on = |id: &str| {
            blueprint
                .workload
                .into_iter()
                .flat_map(|w| w.tasks_on(id).cloned().collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        let mut draws = Draws::new(seed);
        let mut groups = BTreeSet::new();
        let instances: Vec<SimInstance> = blueprint
            .inventory
            .container_instances
            .iter()
            .map(|ci| {
                let id = ci.ec2_instance_id.as_str();
                let target = targets.get(id);
                let zone = target
                    .map(|t| t.availability_zone.clone())
                    .or_else(|| {
                        ec2.and_then(|e| e.get(id))
                            .map(|e| e.availability_zone.clone())
                    })
                    .unwrap_or_default();
                let mut instance = SimInstance::healthy(id, zone)
                    .with_status(&ci.status)
                    .with_pace(draws.next_pace());
                instance.platform = ci.platform;
                instance.running_tasks = ci.running_tasks;
                if let Some(version) = &ci.agent_version {
                    instance.agent_version.clone_from(version);
                }
                if target.is_some_and(|t| t.no_ssm.is_some()) {
                    instance.faults.push(Fault::SsmOffline);
                }
                if !ci.agent_connected {
                    instance.faults.push(Fault::AgentDown);
                }
                let group = target
                    .and_then(|t| t.auto_scaling_group.clone())
                    .or_else(|| {
                        ec2.and_then(|e| e.get(id))
                            .and_then(|e| e.auto_scaling_group.clone())
                    });
                if let Some(group) = group {
                    groups.insert(group.clone());
                    instance = instance.in_group(group);
                }
                if let Some(host) = hosts.get(id) {
                    // ECS reports what is left; the copy holds the tasks again.
                    let tasks = tasks_on(id);
                    instance.cpu = host.cpu + tasks.iter().map(|t| t.cpu).sum::<i64>();
                    instance.memory = host.memory + tasks.iter().map(|t| t.memory).sum::<i64>();
                    let awsvpc = tasks.iter().filter(|t| t.awsvpc).count();
                    instance.enis = host.enis.map_or(u32::MAX / 2, |free| {
                        free + u32::try_from(awsvpc).unwrap_or(0)
                    });
                    instance.attributes.clone_from(&host.attributes);
                }
                instance
            })
            .collect();
        let mut sim = SimFleet::new(instances, Latencies::default(), wall_start);
        for group in groups {
            sim = sim.with_group(&group, SimGroup::default());
        }
        let Some(workload) = blueprint.workload else {
            return sim;
        };
        for (name, state) in &workload.services {
            let tasks: Vec<_> = workload
                .tasks
                .iter()
                .filter(|t| t.service() == Some(name.as_str()))
                .collect();
            let mut service = SimService::new(name);
            service.desired = state.desired;
            service.daemon = state.service.daemon;
            service.minimum_healthy_percent = state.service.minimum_healthy_percent;
            service.maximum_percent = state.service.maximum_percent;
            service.distinct_instance = state.service.distinct_instance;
            service.member_of.clone_from(&state.service.member_of);
            if let Some(task) = tasks.first() {
                service.cpu = task.cpu;
                service.memory = task.memory;
                service.host_ports.clone_from(&task.host_ports);
                service.awsvpc = task.awsvpc;
            }
            let on: Vec<&str> = tasks.iter().map(|t| t.instance_id.as_str()).collect();
            sim = sim.with_service(service, &on);
        }
        for task in workload.tasks.iter().filter(|t| t.service().is_none()) {
            let family = task.group.strip_prefix("family:").unwrap_or(&task.group);
            sim = sim.with_standalone_task(&task.instance_id, family);
        }
        sim
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::Fleet;
    use std::time::Duration;

    #[test]
    fn draws_repeat_and_paces_stay_in_the_model() {
        let mut a = Draws::new(7);
        let mut b = Draws::new(7);
        let paces: Vec<f64> = (0..1000).map(|_| a.next_pace()).collect();
        assert!(paces
            .iter()
            .all(|p| (PACE_RANGE.0..PACE_RANGE.1).contains(p)));
        assert_eq!(
            paces[..10],
            (0..10).map(|_| b.next_pace()).collect::<Vec<_>>()[..]
        );
        let mean = paces.iter().sum::<f64>() / 1000.0;
        assert!((mean - 1.15).abs() < 0.05, "{mean}");
        assert_ne!(Draws::new(8).next_unit(), Draws::new(7).next_unit());
    }

    #[tokio::test(start_paused = true)]
    async fn the_copy_has_the_same_instances_reach_groups_services_and_tasks() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let original = SimFleet::new(
            vec![
                SimInstance::healthy("i-a", "eu-west-1a").in_group("nodes"),
                SimInstance::healthy("i-b", "eu-west-1b")
                    .in_group("nodes")
                    .with_fault(Fault::SsmOffline),
                SimInstance::healthy("i-c", "eu-west-1c").with_status("DRAINING"),
            ],
            Latencies::default(),
            start,
        )
        .with_group("nodes", SimGroup::default())
        .with_service(SimService::new("web"), &["i-a", "i-b"])
        .with_standalone_task("i-c", "nightly");
        let inventory = original.discover("sim").await.unwrap();
        let workload = original.workload("sim").await.unwrap();
        let targets = original.targets();
        let copy = SimFleet::copy_of(
            &Blueprint {
                inventory: &inventory,
                targets: &targets,
                workload: Some(&workload),
            },
            1,
            start,
        );
        assert_eq!(copy.targets(), targets);
        let copied = copy.workload("sim").await.unwrap();
        assert_eq!(copied.hosts, workload.hosts);
        assert_eq!(copied.services, workload.services);
        let shape = |w: &Workload| {
            w.tasks
                .iter()
                .map(|t| (t.instance_id.clone(), t.group.clone(), t.cpu, t.memory))
                .collect::<Vec<_>>()
        };
        assert_eq!(shape(&copied), shape(&workload));
        let statuses = |i: &Inventory| {
            i.container_instances
                .iter()
                .map(|c| {
                    (
                        c.ec2_instance_id.clone(),
                        c.status.clone(),
                        c.agent_connected,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            statuses(&copy.discover("sim").await.unwrap()),
            statuses(&inventory)
        );
    }
}
