//! Keeping Auto Scaling away from an instance while it is drained and rebooted: which
//! holds to put on (scale-in protection, suspended `HealthCheck`/`ReplaceUnhealthy`/
//! `AZRebalance`, or Standby), only those not already in place — so that restoring puts
//! back exactly what the tool changed and nothing an operator set — or why the instance
//! must be skipped. Pure; the debts it returns are recorded before any hold is applied.
//!
//! Suspending `HealthCheck` and `ReplaceUnhealthy` does not stop scale-in; scale-in
//! protection does. With a capacity provider's managed termination protection, ECS itself
//! sets and clears protection by whether tasks run, so a drained instance loses it: there
//! only Standby keeps the instance, and it is used instead.

use std::collections::BTreeSet;

use crate::journal::marks::InstanceDebt;

/// The processes whose replacements would undo a reboot.
pub const PROCESSES: [&str; 3] = ["HealthCheck", "ReplaceUnhealthy", "AZRebalance"];

/// The instance's Auto Scaling group as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub min_size: i32,
    pub max_size: i32,
    pub desired: i32,
    pub suspended: BTreeSet<String>,
    pub instance_refresh_in_progress: bool,
    /// A capacity provider of the cluster manages this group's termination protection.
    pub managed_termination_protection: bool,
}

/// The instance within its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// InService, Standby, Pending, Terminating, …
    pub lifecycle_state: String,
    pub protected_from_scale_in: bool,
}

/// What to put on before draining.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holds {
    pub protect: bool,
    pub suspend: Vec<String>,
    pub standby: bool,
}

impl Holds {
    /// The instance debts these holds create (the group's are `suspend` and `standby`).
    pub fn instance_debts(&self) -> BTreeSet<InstanceDebt> {
        let mut debts = BTreeSet::from([InstanceDebt::Activate]);
        if self.protect {
            debts.insert(InstanceDebt::Unprotect);
        }
        debts
    }
}

/// The holds for one instance, or why it is skipped.
pub fn plan_holds(group: &Group, member: &Member, use_standby: bool) -> Result<Holds, String> {
    if group.instance_refresh_in_progress {
        return Err(format!(
            "an Instance Refresh is in progress in Auto Scaling group {}: it replaces instances under the tool's feet; run again once it has ended (aws autoscaling describe-instance-refreshes --auto-scaling-group-name {})",
            group.name, group.name
        ));
    }
    if member.lifecycle_state != "InService" {
        return Err(format!(
            "{} in Auto Scaling group {}, not InService",
            member.lifecycle_state, group.name
        ));
    }
    let suspend: Vec<String> = PROCESSES
        .iter()
        .filter(|p| !group.suspended.contains(**p))
        .map(|p| p.to_string())
        .collect();
    if use_standby || group.managed_termination_protection {
        // Entering Standby lowers the desired capacity by one; Auto Scaling refuses it
        // below the minimum, and the exit raises it again, refused above the maximum.
        if group.desired - 1 < group.min_size {
            return Err(format!(
                "Standby would take Auto Scaling group {} below its minimum ({} desired, minimum {}){}",
                group.name,
                group.desired,
                group.min_size,
                if group.managed_termination_protection {
                    "; its capacity provider manages scale-in protection, so Standby is the only hold that keeps the instance"
                } else {
                    ""
                }
            ));
        }
        return Ok(Holds {
            protect: false,
            suspend,
            standby: true,
        });
    }
    Ok(Holds {
        protect: !member.protected_from_scale_in,
        suspend,
        standby: false,
    })
}

/// Whether `leaving` instances can leave Standby now: Auto Scaling raises the desired
/// capacity by one for each and refuses above the maximum (someone may have lowered it
/// meanwhile).
pub fn exit_standby_allowed(group: &Group, leaving: i32) -> Result<(), String> {
    if group.desired + leaving > group.max_size {
        return Err(format!(
            "leaving Standby would take Auto Scaling group {} above its maximum ({} desired, maximum {}); raise it: aws autoscaling update-auto-scaling-group --auto-scaling-group-name {} --max-size {}",
            group.name,
            group.desired,
            group.max_size,
            group.name,
            group.desired + leaving
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> Group {
        Group {
            name: "ecs-nodes".into(),
            min_size: 2,
            max_size: 10,
            desired: 4,
            suspended: BTreeSet::new(),
            instance_refresh_in_progress: false,
            managed_termination_protection: false,
        }
    }

    fn member() -> Member {
        Member {
            lifecycle_state: "InService".into(),
            protected_from_scale_in: false,
        }
    }

    #[test]
    fn only_what_is_not_already_in_place_is_put_on() {
        let holds = plan_holds(&group(), &member(), false).unwrap();
        assert_eq!(holds.suspend, PROCESSES.map(String::from));
        assert!(holds.protect && !holds.standby);
        assert_eq!(
            holds.instance_debts(),
            [InstanceDebt::Activate, InstanceDebt::Unprotect].into()
        );

        let mut operated = group();
        operated.suspended = ["HealthCheck".to_string(), "Launch".to_string()].into();
        let protected = Member {
            protected_from_scale_in: true,
            ..member()
        };
        let holds = plan_holds(&operated, &protected, false).unwrap();
        assert_eq!(holds.suspend, ["ReplaceUnhealthy", "AZRebalance"]);
        assert!(
            !holds.protect,
            "the operator's protection is theirs to keep"
        );
        assert_eq!(holds.instance_debts(), [InstanceDebt::Activate].into());
    }

    #[test]
    fn instances_auto_scaling_is_busy_with_are_skipped() {
        let mut refreshing = group();
        refreshing.instance_refresh_in_progress = true;
        assert!(plan_holds(&refreshing, &member(), false)
            .unwrap_err()
            .contains("Instance Refresh"));
        for state in ["Standby", "Pending", "Terminating", "Terminating:Wait"] {
            let member = Member {
                lifecycle_state: state.into(),
                ..member()
            };
            assert!(plan_holds(&group(), &member, false)
                .unwrap_err()
                .contains(state));
        }
    }

    #[test]
    fn standby_is_used_on_request_or_under_managed_protection_within_the_minimum() {
        let holds = plan_holds(&group(), &member(), true).unwrap();
        assert!(holds.standby && !holds.protect);
        let mut managed = group();
        managed.managed_termination_protection = true;
        assert!(plan_holds(&managed, &member(), false).unwrap().standby);
        managed.desired = 2;
        let refused = plan_holds(&managed, &member(), false).unwrap_err();
        assert!(refused.contains("below its minimum") && refused.contains("capacity provider"));
    }

    #[test]
    fn leaving_standby_respects_the_maximum_and_names_the_fix() {
        let mut full = group();
        assert!(exit_standby_allowed(&full, 1).is_ok());
        full.max_size = 4;
        let refused = exit_standby_allowed(&full, 1).unwrap_err();
        assert!(refused.contains("--max-size 5"), "{refused}");
        // Two leaving at once need room for both.
        full.max_size = 5;
        assert!(exit_standby_allowed(&full, 1).is_ok());
        let refused = exit_standby_allowed(&full, 2).unwrap_err();
        assert!(refused.contains("--max-size 6"), "{refused}");
    }
}
