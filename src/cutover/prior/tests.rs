use std::collections::BTreeMap;

use super::*;
use crate::inventory::{ContainerInstance, Inventory};
use crate::journal::{InstanceEntry, JournalKey};
use crate::preflight::testkit::{container_instance, ready_inventory};

fn inventory_with(instances: Vec<ContainerInstance>) -> Inventory {
    Inventory {
        container_instances: instances,
        ..ready_inventory()
    }
}

fn key() -> JournalKey {
    JournalKey {
        account: "123456789012".into(),
        region: "eu-west-1".into(),
        cluster: "prod".into(),
    }
}

fn record(run: &RunId, status: RunStatus) -> RunRecord {
    RunRecord {
        schema: RUN_RECORD_SCHEMA,
        run: run.clone(),
        status,
        started: 100,
        updated: 200,
    }
}

fn journal_owing(run: &RunId) -> Journal {
    let mut journal = Journal::new(run.clone(), &key(), 50);
    journal.owed_instances.insert(
        "i-1".into(),
        InstanceObligation {
            container_instance_arn: "arn:ci/1".into(),
            debts: [InstanceDebt::Activate].into(),
        },
    );
    journal.instances.insert(
        "i-2".into(),
        InstanceEntry {
            container_instance_arn: "arn:ci/2".into(),
            state: InstanceState::Restarting {
                command_id: "c-1".into(),
            },
            at: 60,
        },
    );
    journal
}

#[test]
fn a_journal_older_than_the_run_on_record_is_not_trusted() {
    let (old, new) = (RunId::new(1_000, 1), RunId::new(2_000, 1));
    let inventory = inventory_with(vec![container_instance("i-1")]);
    let prior = gather(
        &inventory,
        Some(journal_owing(&old)),
        Some(record(&new, RunStatus::Stopped)),
        &BTreeMap::new(),
    );
    assert_eq!(prior.run.as_ref().map(|(r, _)| r), Some(&new));
    assert!(prior.journal.is_none());
    assert!(
        !prior.owes(),
        "debts of the stale journal may have been paid since"
    );
    assert!(prior.in_flight.is_empty());

    let prior = gather(
        &inventory,
        Some(journal_owing(&old)),
        None,
        &BTreeMap::new(),
    );
    assert_eq!(prior.run.as_ref().map(|(r, _)| r), Some(&old));
    assert!(prior.owes() && prior.in_flight.contains_key("i-2"));
}

#[test]
fn done_markers_count_only_for_the_run_being_resumed() {
    let (old, current) = (RunId::new(1_000, 1), RunId::new(2_000, 1));
    let marked = |run: &RunId, id: &str| {
        let mut instance = container_instance(id);
        let mark = DoneMark {
            run: run.clone(),
            at: 1_500,
        };
        instance
            .marks
            .insert(DONE_ATTRIBUTE.into(), mark.encode().unwrap());
        instance
    };
    let inventory = inventory_with(vec![marked(&old, "i-1"), marked(&current, "i-2")]);
    let prior = gather(
        &inventory,
        None,
        Some(record(&current, RunStatus::Running)),
        &BTreeMap::new(),
    );
    assert_eq!(prior.done.keys().collect::<Vec<_>>(), ["i-2"]);
    let finished = gather(
        &inventory,
        None,
        Some(record(&current, RunStatus::Finished)),
        &BTreeMap::new(),
    );
    assert!(
        finished.is_empty(),
        "a finished run leaves nothing to resume"
    );
}

#[test]
fn records_that_cannot_be_read_stop_the_run_and_other_clusters_groups_are_left_alone() {
    let mut instance = container_instance("i-1");
    instance
        .marks
        .insert(OWES_ATTRIBUTE.into(), "v9 something".into());
    let inventory = inventory_with(vec![instance]);
    let other = GroupOwed {
        run: None,
        cluster: "staging".into(),
        resume: ["HealthCheck".to_string()].into(),
        exit_standby: Default::default(),
    };
    let groups = BTreeMap::from([
        ("staging-asg".to_string(), other.encode().unwrap()),
        ("broken-asg".to_string(), "v1".to_string()),
    ]);
    let prior = gather(&inventory, None, None, &groups);
    assert_eq!(prior.unreadable.len(), 2, "{:?}", prior.unreadable);
    assert!(prior.unreadable[0].contains("aws ecs delete-attributes"));
    assert!(prior.unreadable[1].contains("broken-asg"));
    assert!(!prior.owed_groups.contains_key("staging-asg"));
}

#[test]
fn a_reboot_cut_short_while_putting_back_resumes_as_verifying_not_done() {
    let run = RunId::new(1_000, 1);
    let mut journal = Journal::new(run.clone(), &key(), 50);
    let proof = crate::rollout::state::RebootProof {
        method: "reboot".into(),
        rebooted_at: 60,
        back_at: 150,
        boot_id_before: Some("a".into()),
        boot_id_after: Some("b".into()),
        disconnect_seen: true,
    };
    journal.instances.insert(
        "i-1".into(),
        InstanceEntry {
            container_instance_arn: "arn:ci/1".into(),
            state: InstanceState::Restoring {
                proof: proof.clone(),
            },
            at: 160,
        },
    );
    let inventory = inventory_with(vec![container_instance("i-1")]);
    let prior = gather(&inventory, Some(journal), None, &BTreeMap::new());
    assert!(!prior.done.contains_key("i-1"), "its path was never probed");
    assert_eq!(
        prior.in_flight.get("i-1"),
        Some(&InstanceState::Verifying {
            proof: crate::rollout::state::Proof::Reboot(proof)
        })
    );
}
