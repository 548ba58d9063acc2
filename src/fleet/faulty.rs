//! A fleet with an injected AWS error: every call of one `Fleet` method fails from its
//! Nth call on, as a missing permission, a broken API or a lost network would make it.
//! It also records what was changed after the first failure (a restart sent, an
//! instance set DRAINING, protected, suspended, in Standby or rebooted), so a test can
//! show that nothing new is touched once the rollout halted — putting back is allowed.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::gated::{Gate, Gated};
use super::FleetError;

/// The fleet with the error injected.
pub type Faulty<'a, F> = Gated<'a, F, Injected>;

/// The gate that injects the error and notes what is changed after it.
pub struct Injected {
    method: &'static str,
    from_call: usize,
    calls: Mutex<BTreeMap<&'static str, usize>>,
    failed: AtomicBool,
    /// Record every change, not only those after an injected failure.
    watch_all: bool,
    changes_after: Mutex<Vec<(tokio::time::Instant, String)>>,
}

impl<'a, F> Faulty<'a, F> {
    /// Fails every call of `method` (a `Fleet` method's name) from its `from_call`th on
    /// (0: the first).
    pub fn failing(inner: &'a F, method: &'static str, from_call: usize) -> Self {
        Gated {
            inner,
            gate: Injected {
                method,
                from_call,
                calls: Mutex::new(BTreeMap::new()),
                failed: AtomicBool::new(false),
                watch_all: false,
                changes_after: Mutex::new(Vec::new()),
            },
        }
    }

    /// Fails nothing; records every change and when it was made.
    pub fn watching(inner: &'a F) -> Self {
        let mut watched = Faulty::failing(inner, "", usize::MAX);
        watched.gate.watch_all = true;
        watched
    }

    /// Whether the fault was hit.
    pub fn failed(&self) -> bool {
        self.gate.failed()
    }

    /// What was changed after the first injected failure (or at all, when watching), and
    /// when.
    pub fn changes_after_failure(&self) -> Vec<(tokio::time::Instant, String)> {
        self.gate
            .changes_after
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Gate for Injected {
    fn pass(
        &self,
        method: &'static str,
        change: Option<String>,
    ) -> impl Future<Output = Result<(), FleetError>> + Send {
        std::future::ready(self.gate(method, change))
    }
}

impl Injected {
    fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
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
