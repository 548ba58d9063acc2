//! The per-instance state machine of the cutover, as plain data with pure transitions:
//!
//! ```text
//! pending → restarting → reconnecting → (verifying →) done
//!    │           │             │               │
//!    └── skipped └──── failed / gone ──────────┘
//!                └──── needs-reboot → draining → rebooting → rejoining → restoring
//!                                                                  → (verifying →) done
//! ```
//!
//! `restarting`: the restart command is out; `reconnecting`: the command reported its
//! evidence and the tool waits for ECS to show the agent connected, then judges the
//! proof; `verifying`: the restart (or reboot) is proven and the path probe (see
//! `verify`) is under way. `failed` and `gone` can follow any active state: an instance
//! that left the cluster (terminated, deregistered) is gone, not failed.
//!
//! Where SSM cannot restart the agent and the strategy allows, the instance `needs-reboot`
//! and waits for its turn; the fallback (see `rollout::fallback`) then drains it,
//! reboots it, waits for it to rejoin and puts back what it changed. Those steps are set
//! by the fallback directly: each is a wait on the fleet, not a reaction to an event.

use serde::{Deserialize, Serialize};

use super::script::Evidence;

/// Where one instance stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum InstanceState {
    Pending,
    Restarting {
        command_id: String,
    },
    Reconnecting {
        command_id: String,
        evidence: Evidence,
    },
    /// The restart or reboot is proven; the path probe decides the rest.
    Verifying {
        proof: Proof,
    },
    /// SSM could not restart the agent: waits for its turn to be drained and rebooted.
    #[serde(rename = "needs-reboot")]
    NeedsReboot {
        reason: String,
    },
    /// DRAINING, waiting for its service tasks to move.
    Draining {
        reason: String,
    },
    /// `RebootInstances` sent at `rebooted_at` (Unix seconds); waiting for it to go
    /// down. (Not `at`: the journal entry that holds a state has its own `at`.)
    Rebooting {
        rebooted_at: i64,
        boot_id_before: Option<String>,
    },
    /// Seen down (or with a new boot id); waiting for status checks and the agent.
    Rejoining {
        rebooted_at: i64,
        boot_id_before: Option<String>,
    },
    /// Back; putting back what the tool changed.
    Restoring {
        proof: RebootProof,
    },
    Done {
        evidence: Proof,
    },
    Skipped {
        reason: String,
    },
    Failed {
        reason: String,
    },
    Gone {
        reason: String,
    },
}

/// What can happen to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The restart command was sent.
    CommandSent { command_id: String },
    /// The command finished and printed evidence of a restart.
    CommandSucceeded { evidence: Evidence },
    /// The command failed, was not delivered, timed out, or printed failed evidence.
    CommandFailed { reason: String },
    /// ECS was read after the command: is the agent connected?
    AgentState { connected: bool },
    /// The agent did not show as connected within the agent timeout.
    AgentTimedOut,
    /// The instance left the cluster.
    Vanished { reason: String },
    /// Not to be touched (excluded, out of scope, already done, draining…).
    Skip { reason: String },
    /// SSM refused to take the command for it: it needs a reboot instead.
    Refused { reason: String },
    /// The tool lost track of the restart (AWS stopped answering); it was cancelled where
    /// it could be.
    Abandoned { reason: String },
}

/// An event that makes no sense in the current state: a bug in the orchestrator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{event} cannot happen to an instance that is {state}")]
pub struct InvalidTransition {
    pub state: &'static str,
    pub event: String,
}

impl InstanceState {
    pub fn name(&self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Restarting { .. } => "restarting",
            InstanceState::Reconnecting { .. } => "reconnecting",
            InstanceState::Verifying { .. } => "verifying",
            InstanceState::NeedsReboot { .. } => "needs-reboot",
            InstanceState::Draining { .. } => "draining",
            InstanceState::Rebooting { .. } => "rebooting",
            InstanceState::Rejoining { .. } => "rejoining",
            InstanceState::Restoring { .. } => "restoring",
            InstanceState::Done { .. } => "done",
            InstanceState::Skipped { .. } => "skipped",
            InstanceState::Failed { .. } => "failed",
            InstanceState::Gone { .. } => "gone",
        }
    }

    /// No further event changes it.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            InstanceState::Done { .. }
                | InstanceState::Skipped { .. }
                | InstanceState::Failed { .. }
                | InstanceState::Gone { .. }
        )
    }

    /// The agent may be away: the instance counts toward `--max-unavailable`.
    pub fn is_in_flight(&self) -> bool {
        matches!(
            self,
            InstanceState::Restarting { .. }
                | InstanceState::Reconnecting { .. }
                | InstanceState::Verifying { .. }
        ) || self.is_in_fallback()
    }

    /// Drained or rebooting: the fallback holds it (and owes it a restore).
    pub fn is_in_fallback(&self) -> bool {
        matches!(
            self,
            InstanceState::Draining { .. }
                | InstanceState::Rebooting { .. }
                | InstanceState::Rejoining { .. }
                | InstanceState::Restoring { .. }
        )
    }

    /// The next state after `event`.
    pub fn on(self, event: Event) -> Result<InstanceState, InvalidTransition> {
        use InstanceState as S;
        let next = match (self, event) {
            (S::Pending, Event::CommandSent { command_id }) => S::Restarting { command_id },
            (S::Pending, Event::Skip { reason }) => S::Skipped { reason },
            (S::Pending, Event::Refused { reason }) => S::Failed { reason },
            (
                S::Restarting { .. } | S::Reconnecting { .. } | S::Verifying { .. },
                Event::Abandoned { reason },
            ) => S::Failed { reason },
            (S::Restarting { command_id }, Event::CommandSucceeded { evidence }) => {
                S::Reconnecting {
                    command_id,
                    evidence,
                }
            }
            (S::Reconnecting { evidence, .. }, Event::AgentState { connected: true }) => {
                match judge(&evidence, true) {
                    Ok(()) => S::Done {
                        evidence: Proof::Restart(evidence),
                    },
                    Err(reason) => S::Failed { reason },
                }
            }
            // Still away: keep waiting until connected or timed out.
            (state @ S::Reconnecting { .. }, Event::AgentState { connected: false }) => state,
            (S::Reconnecting { .. }, Event::AgentTimedOut) => S::Failed {
                reason: "agent not connected to ECS within --agent-timeout: see /var/log/ecs/ecs-agent.log on the instance".into(),
            },
            (S::Restarting { .. }, Event::CommandFailed { reason }) => S::Failed { reason },
            (
                S::Pending
                | S::Restarting { .. }
                | S::Reconnecting { .. }
                | S::Verifying { .. }
                | S::NeedsReboot { .. },
                Event::Vanished { reason },
            ) => S::Gone { reason },
            (state, event) => {
                return Err(InvalidTransition {
                    state: state.name(),
                    event: format!("{event:?}"),
                });
            }
        };
        Ok(next)
    }
}

/// What proved an instance done: the restart script's evidence, or a reboot's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Proof {
    Restart(Evidence),
    Reboot(RebootProof),
}

impl std::fmt::Display for Proof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Proof::Restart(evidence) => evidence.fmt(f),
            Proof::Reboot(proof) => proof.fmt(f),
        }
    }
}

/// What proved a reboot: a new boot id read over SSM, or ECS showing the agent
/// disconnected after `RebootInstances` and connected again; then EC2 status checks OK
/// and the agent connected. Times are Unix seconds on the tool's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebootProof {
    /// Always `reboot`: tells this proof from a restart's evidence.
    pub method: String,
    pub rebooted_at: i64,
    pub back_at: i64,
    pub boot_id_before: Option<String>,
    pub boot_id_after: Option<String>,
    pub disconnect_seen: bool,
}

impl std::fmt::Display for RebootProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.boot_id_before, &self.boot_id_after) {
            (Some(before), Some(after)) if before != after => {
                write!(f, "rebooted: boot id {} → {}", short(before), short(after))?
            }
            _ => write!(f, "rebooted: agent disconnected, then connected again")?,
        }
        write!(
            f,
            "; back after {}s, status checks OK, agent connected",
            self.back_at - self.rebooted_at
        )
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// A restart counts only with proof from the instance: the agent started after the
/// restart was issued, connected to ACS after that start (both on the instance's clock),
/// and ECS shows it connected. The container instance's `version` counter is never
/// consulted here: it also moves on task changes.
pub fn judge(evidence: &Evidence, agent_connected: bool) -> Result<(), String> {
    if !evidence.ok {
        return Err(format!(
            "restart failed on the instance: {}",
            evidence.reason.as_deref().unwrap_or("unknown")
        ));
    }
    if evidence.agent_started < evidence.restart_at {
        return Err(format!(
            "the agent's start ({}) is before the restart ({}): it did not restart",
            evidence.agent_started, evidence.restart_at
        ));
    }
    if evidence.acs_connected < evidence.agent_started {
        return Err("no ACS connection after the agent's start".into());
    }
    if !agent_connected {
        return Err("ECS does not show the agent connected".into());
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn evidence(restart_at: i64, agent_started: i64, acs_connected: i64) -> Evidence {
        Evidence {
            ok: true,
            reason: None,
            method: "systemd".into(),
            supervisor: "systemd".into(),
            agent_version: Some("1.80.0".into()),
            restart_at,
            agent_started,
            acs_connected,
            credentials_before: "404".into(),
            credentials_after: "404".into(),
            boot_id: None,
        }
    }

    fn sent() -> Event {
        Event::CommandSent {
            command_id: "c-1".into(),
        }
    }

    #[test]
    fn happy_path_reaches_done() {
        let state = InstanceState::Pending
            .on(sent())
            .and_then(|s| {
                s.on(Event::CommandSucceeded {
                    evidence: evidence(100, 102, 104),
                })
            })
            .and_then(|s| s.on(Event::AgentState { connected: false }))
            .and_then(|s| s.on(Event::AgentState { connected: true }))
            .unwrap();
        assert_eq!(
            state,
            InstanceState::Done {
                evidence: Proof::Restart(evidence(100, 102, 104))
            }
        );
        assert!(state.is_final() && !state.is_in_flight());
    }

    #[test]
    fn proof_table() {
        let failed = Evidence {
            ok: false,
            reason: Some("acs-not-connected".into()),
            ..evidence(100, 102, 0)
        };
        let cases = [
            (evidence(100, 102, 104), true, Ok(())),
            (evidence(100, 100, 100), true, Ok(())),
            (evidence(100, 99, 104), true, Err("did not restart")),
            (evidence(100, 102, 101), true, Err("no ACS connection")),
            (
                evidence(100, 102, 104),
                false,
                Err("does not show the agent connected"),
            ),
            (failed, true, Err("acs-not-connected")),
        ];
        for (evidence, connected, expected) in cases {
            match (judge(&evidence, connected), expected) {
                (Ok(()), Ok(())) => {}
                (Err(reason), Err(part)) => assert!(reason.contains(part), "{reason} lacks {part}"),
                (got, want) => {
                    panic!("{evidence:?} connected={connected}: got {got:?}, want {want:?}")
                }
            }
        }
    }

    #[test]
    fn failures_and_departures() {
        let failed = InstanceState::Pending
            .on(sent())
            .and_then(|s| {
                s.on(Event::CommandFailed {
                    reason: "DeliveryTimedOut".into(),
                })
            })
            .unwrap();
        assert_eq!(
            failed,
            InstanceState::Failed {
                reason: "DeliveryTimedOut".into()
            }
        );
        let timed_out = InstanceState::Pending
            .on(sent())
            .and_then(|s| {
                s.on(Event::CommandSucceeded {
                    evidence: evidence(1, 2, 3),
                })
            })
            .and_then(|s| s.on(Event::AgentTimedOut))
            .unwrap();
        assert!(matches!(timed_out, InstanceState::Failed { .. }));
        for state in [
            InstanceState::Pending,
            InstanceState::Restarting {
                command_id: "c".into(),
            },
            InstanceState::Reconnecting {
                command_id: "c".into(),
                evidence: evidence(1, 2, 3),
            },
        ] {
            let gone = state
                .on(Event::Vanished {
                    reason: "terminated".into(),
                })
                .unwrap();
            assert_eq!(
                gone,
                InstanceState::Gone {
                    reason: "terminated".into()
                }
            );
        }
    }

    #[test]
    fn refused_and_abandoned_instances_fail() {
        let refused = InstanceState::Pending
            .on(Event::Refused {
                reason: "needs reboot: x".into(),
            })
            .unwrap();
        assert_eq!(
            refused,
            InstanceState::Failed {
                reason: "needs reboot: x".into()
            }
        );
        let abandoned = InstanceState::Pending
            .on(sent())
            .and_then(|s| {
                s.on(Event::Abandoned {
                    reason: "lost".into(),
                })
            })
            .unwrap();
        assert_eq!(
            abandoned,
            InstanceState::Failed {
                reason: "lost".into()
            }
        );
        assert!(InstanceState::Pending
            .on(Event::Abandoned { reason: "x".into() })
            .is_err());
    }

    #[test]
    fn impossible_events_are_errors_not_silent() {
        let cases = [
            (
                InstanceState::Pending,
                Event::CommandSucceeded {
                    evidence: evidence(1, 2, 3),
                },
            ),
            (
                InstanceState::Done {
                    evidence: Proof::Restart(evidence(1, 2, 3)),
                },
                sent(),
            ),
            (
                InstanceState::Skipped { reason: "x".into() },
                Event::Vanished { reason: "y".into() },
            ),
            (
                InstanceState::Restarting {
                    command_id: "c".into(),
                },
                Event::Skip {
                    reason: "late".into(),
                },
            ),
        ];
        for (state, event) in cases {
            let name = state.name();
            let error = state.on(event).unwrap_err();
            assert_eq!(error.state, name);
        }
    }
}
