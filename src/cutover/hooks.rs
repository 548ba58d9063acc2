//! What the cutover hands the orchestrator: the journal kept up to date with every event
//! and written before each action, the progress view and JSON events fed, and the stop
//! requests (an interrupt, the lease lost) passed on.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::Console;
use crate::clock::{unix_seconds, Clock};
use crate::journal::marks::{GroupOwed, InstanceDebt};
use crate::journal::{InstanceEntry, InstanceObligation, Journal, JournalStore};
use crate::lease::LeaseStatus;
use crate::report::{self, ProgressView, Timings};
use crate::rollout::run::{Hooks, RolloutEvent};

/// A request to stop starting new work, shared with whatever catches the signal; and
/// whether the run has begun changing anything (before that, an interrupt may simply end
/// the process: there is nothing to finish).
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    requested: Arc<AtomicBool>,
    changing: Arc<AtomicBool>,
}

impl StopSignal {
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// From now on the run changes the cluster: an interrupt must let it stop cleanly.
    pub fn begin_changes(&self) {
        self.changing.store(true, Ordering::SeqCst);
    }

    pub fn is_changing(&self) -> bool {
        self.changing.load(Ordering::SeqCst)
    }
}

/// The journal being kept, and where it is written.
pub struct Keeping<'a> {
    pub store: &'a JournalStore,
    pub journal: &'a mut Journal,
}

pub struct RunHooks<'a, C: ?Sized> {
    pub clock: &'a C,
    pub journal: Option<Keeping<'a>>,
    /// Container-instance ARN by instance id, for new journal entries.
    pub arns: &'a std::collections::BTreeMap<String, String>,
    pub console: &'a mut dyn Console,
    pub json: bool,
    pub progress: Option<&'a mut ProgressView>,
    pub timings: &'a mut Timings,
    pub stop: &'a StopSignal,
    pub lease: &'a RefCell<LeaseStatus>,
    pub dirty: bool,
}

impl<C: Clock + ?Sized> Hooks for RunHooks<'_, C> {
    fn event(&mut self, event: RolloutEvent) {
        self.timings.record(&event);
        if let Some(progress) = self.progress.as_deref_mut() {
            progress.on(&event);
        }
        if self.json {
            self.console.out(&report::render_event_json(&event));
        } else if let (
            None,
            RolloutEvent::Notice {
                instance_id,
                message,
                ..
            },
        ) = (self.progress.as_deref(), &event)
        {
            self.console.err(&format!("{instance_id}: {message}\n"));
        }
        if let (
            Some(keeping),
            RolloutEvent::StateChanged {
                instance_id,
                state,
                at,
            },
        ) = (self.journal.as_mut(), &event)
        {
            let arn = self.arns.get(instance_id).cloned().unwrap_or_default();
            keeping.journal.instances.insert(
                instance_id.clone(),
                InstanceEntry {
                    container_instance_arn: arn,
                    state: (**state).clone(),
                    at: *at,
                },
            );
            self.dirty = true;
        }
        if let (
            Some(keeping),
            RolloutEvent::Verified {
                instance_id,
                verdict,
                ..
            },
        ) = (self.journal.as_mut(), &event)
        {
            keeping
                .journal
                .verdicts
                .insert(instance_id.clone(), (**verdict).clone());
            self.dirty = true;
        }
    }

    fn checkpoint(&mut self) -> Result<(), String> {
        if !self.dirty {
            return Ok(());
        }
        if let Some(keeping) = self.journal.as_mut() {
            keeping.journal.updated_at = unix_seconds(self.clock.now());
            keeping
                .store
                .save(keeping.journal)
                .map_err(|e| e.to_string())?;
        }
        self.dirty = false;
        Ok(())
    }

    fn owe_instance(
        &mut self,
        instance_id: &str,
        container_instance_arn: &str,
        debts: &BTreeSet<InstanceDebt>,
    ) {
        if let Some(keeping) = self.journal.as_mut() {
            if debts.is_empty() {
                keeping.journal.owed_instances.remove(instance_id);
            } else {
                keeping.journal.owed_instances.insert(
                    instance_id.to_string(),
                    InstanceObligation {
                        container_instance_arn: container_instance_arn.to_string(),
                        debts: debts.clone(),
                    },
                );
            }
            self.dirty = true;
        }
    }

    fn owe_group(&mut self, group: &str, owed: &GroupOwed) {
        if let Some(keeping) = self.journal.as_mut() {
            if owed.is_empty() {
                keeping.journal.owed_groups.remove(group);
            } else {
                keeping
                    .journal
                    .owed_groups
                    .insert(group.to_string(), owed.clone());
            }
            self.dirty = true;
        }
    }

    fn stop_reason(&mut self) -> Option<String> {
        if self.stop.is_requested() {
            return Some("interrupted (Ctrl-C or SIGTERM)".into());
        }
        self.lease.borrow().refusal(unix_seconds(self.clock.now()))
    }
}
