//! Proof of the cutover: which path each agent's websockets take.
//!
//! Restarting agents is the means; the goal is that every agent talks to ECS through the
//! endpoints. A probe (a constant script sent over SSM, `probe`) prints one record per
//! instance (`record`): how the ECS and ECR names resolve there, where the agent's :443
//! connections end, its newest websocket host, its proxy settings. The verdict
//! (`verdict`) is a pure function of that record and the inventory's network facts.
//! `probing` sends the probe to many instances and follows it; `command` is the `verify`
//! subcommand. docs/VERIFY.md explains the checks for operators.

pub mod command;
pub mod probe;
pub mod probing;
pub mod record;
pub mod verdict;

use serde::Serialize;

pub use probing::{Outstanding, ProbeConfig, ProbeSite, Prober};
pub use verdict::{Path, PathMap, Verdict};

/// What the rollout requires after each restart or reboot (`--verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// Probe the agent's path; done only when ACS and TCS are on the endpoints.
    Private,
    /// Done when ECS shows the agent connected again; where SSM can, the path is
    /// probed and reported, but does not decide.
    Connected,
    /// No probe: the restart's or reboot's own proof decides.
    None,
}

impl VerifyMode {
    /// The mode for an instance: the operator's, else `private` where SSM can reach the
    /// instance and `connected` where it cannot.
    pub fn for_instance(chosen: Option<VerifyMode>, ssm_reachable: bool) -> VerifyMode {
        chosen.unwrap_or(if ssm_reachable {
            VerifyMode::Private
        } else {
            VerifyMode::Connected
        })
    }

    /// Whether the path probe runs on an instance: always under `private` (where SSM
    /// cannot reach it, that fails closed), under `connected` only where SSM reaches it
    /// (as evidence), never under `none`.
    pub fn probes(self, ssm_reachable: bool) -> bool {
        match self {
            VerifyMode::Private => true,
            VerifyMode::Connected => ssm_reachable,
            VerifyMode::None => false,
        }
    }
}
