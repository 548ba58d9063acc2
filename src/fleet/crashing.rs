//! A fleet that dies: it passes a given number of calls through to the fleet it wraps,
//! then never answers again and says so, so a test can drop the run at exactly that point
//! (a crash between any two AWS calls) and start another one on the same world.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

use super::gated::{Gate, Gated};
use super::FleetError;

/// The fleet that dies.
pub type Crashing<'a, F> = Gated<'a, F, Crash>;

/// The gate that lets so many calls through, then none.
pub struct Crash {
    left: AtomicUsize,
    crashed: Notify,
}

impl<'a, F> Crashing<'a, F> {
    /// Lets `calls` calls through, then crashes.
    pub fn after(inner: &'a F, calls: usize) -> Self {
        Gated {
            inner,
            gate: Crash {
                left: AtomicUsize::new(calls),
                crashed: Notify::new(),
            },
        }
    }

    /// Resolves once the fleet has crashed.
    pub async fn crashed(&self) {
        self.gate.crashed.notified().await
    }
}

impl Gate for Crash {
    async fn pass(&self, _method: &'static str, _change: Option<String>) -> Result<(), FleetError> {
        let passed = self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !passed {
            self.crashed.notify_one();
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}
