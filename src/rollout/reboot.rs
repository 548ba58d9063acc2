//! The pure decisions of the reboot fallback: which tasks a reboot would kill (they belong
//! to no service, so draining does not move them), and whether a reboot is proven.
//!
//! A reboot counts when the boot id read over SSM before and after differs, or, without
//! SSM, when ECS showed the agent disconnected after `RebootInstances` and connected again.
//! EC2 status checks are sampled and can read OK before the OS went down, and `LaunchTime`
//! does not change on a reboot: neither proves anything on its own.

/// A task running on the instance, as `DescribeTasks` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningTask {
    pub task_arn: String,
    /// `service:NAME` for a service's task, else the `family:…` or custom group.
    pub group: String,
}

/// The tasks on an instance that belong to no service: draining leaves them, a reboot
/// kills them.
pub fn standalone_tasks(tasks: &[RunningTask]) -> Vec<&str> {
    tasks
        .iter()
        .filter(|t| !t.group.starts_with("service:"))
        .map(|t| t.task_arn.as_str())
        .collect()
}

/// What was seen around one reboot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebootSightings {
    /// `/proc/sys/kernel/random/boot_id` before and after, where SSM could read it.
    pub boot_id_before: Option<String>,
    pub boot_id_after: Option<String>,
    /// ECS showed the agent disconnected after `RebootInstances` was called.
    pub disconnect_seen: bool,
    /// ECS shows the agent connected now.
    pub connected: bool,
    /// EC2's system and instance status checks are OK now.
    pub status_ok: bool,
}

/// Whether the reboot is proven and the instance back; `Err` says what is missing.
pub fn judge_reboot(seen: &RebootSightings) -> Result<(), String> {
    let rebooted = match (&seen.boot_id_before, &seen.boot_id_after) {
        (Some(before), Some(after)) if before == after => {
            return Err(format!(
                "the boot id is still {before}: the instance did not reboot"
            ))
        }
        (Some(_), Some(_)) => true,
        _ => seen.disconnect_seen,
    };
    if !rebooted {
        return Err(
            "no proof of a reboot: no boot id to compare, and ECS never showed the agent disconnected"
                .into(),
        );
    }
    if !seen.status_ok {
        return Err("EC2 status checks are not OK".into());
    }
    if !seen.connected {
        return Err("ECS does not show the agent connected".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tasks_outside_services_are_standalone() {
        let tasks = [
            RunningTask {
                task_arn: "task/1".into(),
                group: "service:web".into(),
            },
            RunningTask {
                task_arn: "task/2".into(),
                group: "family:nightly-report".into(),
            },
        ];
        assert_eq!(standalone_tasks(&tasks), ["task/2"]);
    }

    #[test]
    fn a_reboot_is_proven_by_a_new_boot_id_or_a_disconnect_then_readiness() {
        let back = RebootSightings {
            connected: true,
            status_ok: true,
            ..Default::default()
        };
        let ids = |before: &str, after: &str| RebootSightings {
            boot_id_before: Some(before.into()),
            boot_id_after: Some(after.into()),
            ..back.clone()
        };
        let cases = [
            (ids("a", "b"), Ok(())),
            (ids("a", "a"), Err("did not reboot")),
            (
                RebootSightings {
                    disconnect_seen: true,
                    ..back.clone()
                },
                Ok(()),
            ),
            (back.clone(), Err("no proof of a reboot")),
            (
                RebootSightings {
                    status_ok: false,
                    ..ids("a", "b")
                },
                Err("status checks"),
            ),
            (
                RebootSightings {
                    connected: false,
                    ..ids("a", "b")
                },
                Err("agent connected"),
            ),
            // A boot id that did not change outweighs a disconnect: the agent restarted,
            // the host did not.
            (
                RebootSightings {
                    disconnect_seen: true,
                    ..ids("a", "a")
                },
                Err("did not reboot"),
            ),
        ];
        for (seen, expected) in cases {
            match (judge_reboot(&seen), expected) {
                (Ok(()), Ok(())) => {}
                (Err(got), Err(want)) => assert!(got.contains(want), "{seen:?}: {got}"),
                (got, want) => panic!("{seen:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
