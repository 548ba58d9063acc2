//! The cutover rollout: the per-instance state machine, how instances are cut into waves,
//! and the on-instance restart script with the evidence it prints. Everything here is
//! pure; the orchestrator that drives a [`crate::fleet::Fleet`] through these builds on it.

pub mod capacity;
pub mod hold;
pub mod plan;
pub mod reboot;
pub mod run;
pub mod script;
pub mod state;
pub mod waves;
