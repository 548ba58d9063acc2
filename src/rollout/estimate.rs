//! How long a step is expected to take: conservative defaults per kind of step, replaced
//! by the running median of what this run has measured once there is something to go on.
//! The window logic asks it before starting a step (`window::may_start`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The kinds of step whose durations differ by an order of magnitude.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// A wave of restarts over SSM, with its path probe.
    Restart,
    /// A whole drain of an instance with service tasks: mostly the load balancers'
    /// deregistration delay, which its tasks wait out together.
    Drain,
    /// A drain, per service task on the busiest instance: what many tasks add.
    DrainPerTask,
    /// From `RebootInstances` to the instance back, put back and its path probed.
    Reboot,
}

/// Measured durations per kind (milliseconds, oldest first), and the defaults until
/// there are some. Kept in the journal, so a resumed run starts from what its earlier
/// sessions measured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimates {
    #[serde(default)]
    measured_ms: BTreeMap<StepKind, Vec<u64>>,
}

/// Measurements kept per kind: the median of the latest ones follows a fleet that slows
/// down without being pulled by the first minutes of the run.
const KEEP: usize = 101;

impl Estimates {
    /// Before any measurement: generous, so that a first step does not start that
    /// cannot finish. A restart wave: delivery, restart, reconnect, probe and polls take
    /// well under a minute on a healthy host. A drain: a load balancer's deregistration
    /// delay is 300 s by default, and the tasks wait it out together; many tasks add to
    /// it. A reboot: the OS, the status checks and the agent's return take a few minutes.
    pub fn default_for(kind: StepKind) -> Duration {
        match kind {
            StepKind::Restart => Duration::from_secs(2 * 60),
            StepKind::Drain => Duration::from_secs(5 * 60),
            StepKind::DrainPerTask => Duration::from_secs(30),
            StepKind::Reboot => Duration::from_secs(5 * 60),
        }
    }

    /// A drain-and-reboot batch whose busiest instance runs `tasks` service tasks: the
    /// drain (at least a whole drain, more with many tasks; none without tasks), then
    /// the reboot.
    pub fn reboot_batch(&self, tasks: usize) -> Duration {
        let drain = if tasks == 0 {
            Duration::ZERO
        } else {
            let tasks = u32::try_from(tasks).unwrap_or(u32::MAX);
            self.expected(StepKind::Drain)
                .max(self.expected(StepKind::DrainPerTask).saturating_mul(tasks))
        };
        drain.saturating_add(self.expected(StepKind::Reboot))
    }

    pub fn record(&mut self, kind: StepKind, took: Duration) {
        let list = self.measured_ms.entry(kind).or_default();
        list.push(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
        if list.len() > KEEP {
            list.remove(0);
        }
    }

    /// The expected duration of the next step of `kind`: the median of the latest
    /// measurements, or the default without any.
    pub fn expected(&self, kind: StepKind) -> Duration {
        let Some(list) = self.measured_ms.get(&kind).filter(|l| !l.is_empty()) else {
            return Self::default_for(kind);
        };
        let mut sorted = list.clone();
        sorted.sort_unstable();
        Duration::from_millis(sorted[sorted.len() / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_until_measured_then_the_running_median() {
        let mut estimates = Estimates::default();
        assert_eq!(
            estimates.expected(StepKind::Reboot),
            Duration::from_secs(300)
        );
        for secs in [30, 300, 40] {
            estimates.record(StepKind::Restart, Duration::from_secs(secs));
        }
        // One slow wave does not make every later one look slow.
        assert_eq!(
            estimates.expected(StepKind::Restart),
            Duration::from_secs(40)
        );
        assert_eq!(
            estimates.expected(StepKind::Reboot),
            Duration::from_secs(300),
            "kinds are kept apart"
        );
        // A batch: a whole drain, or more for many tasks, then the reboot.
        assert_eq!(estimates.reboot_batch(0), Duration::from_secs(300));
        assert_eq!(estimates.reboot_batch(1), Duration::from_secs(300 + 300));
        assert_eq!(
            estimates.reboot_batch(20),
            Duration::from_secs(20 * 30 + 300)
        );
        // A drain of 10 tasks measured at 300 s teaches 30 s per task, and a drain of
        // one task still takes the whole drain, not 30 s.
        estimates.record(StepKind::Drain, Duration::from_secs(300));
        estimates.record(StepKind::DrainPerTask, Duration::from_secs(30));
        assert_eq!(estimates.reboot_batch(1), Duration::from_secs(300 + 300));
        // Only the latest measurements count.
        for _ in 0..KEEP {
            estimates.record(StepKind::Restart, Duration::from_secs(90));
        }
        assert_eq!(
            estimates.expected(StepKind::Restart),
            Duration::from_secs(90)
        );
        // Through the journal and back, the same.
        let json = serde_json::to_string(&estimates).unwrap();
        assert!(
            json.starts_with(r#"{"measured_ms":{"restart":[90000,"#),
            "{json}"
        );
        let back: Estimates = serde_json::from_str(&json).unwrap();
        assert_eq!(back, estimates);
        assert_eq!(
            serde_json::from_str::<Estimates>("{}").unwrap(),
            Estimates::default()
        );
    }
}
