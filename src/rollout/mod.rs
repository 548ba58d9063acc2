//! The cutover rollout: the per-instance state machine, how instances are cut into waves,
//! the on-instance restart script with the evidence it prints, and the decisions of the
//! drain-and-reboot fallback (placement, Auto Scaling holds, reboot proof). Everything
//! here but `run` and `rehearse` is pure; `run`, the orchestrator that drives a
//! [`crate::fleet::Fleet`] through these, builds on it, and `rehearse` runs it on a
//! simulated copy of the cluster for `--dry-run`'s estimate.

pub mod capacity;
pub mod estimate;
pub mod hold;
pub mod plan;
pub mod reboot;
pub mod rehearse;
pub mod run;
pub mod script;
pub mod state;
pub mod waves;
