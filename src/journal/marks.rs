//! What the tool keeps on AWS itself, so a run from another machine (or a fresh CI
//! runner with no local journal) knows what is done and what is owed:
//!
//! * on each container instance, ECS custom attributes: [`DONE_ATTRIBUTE`] once its agent
//!   is proven moved, [`OWES_ATTRIBUTE`] while the tool owes it a restore (DRAINING set,
//!   scale-in protection set);
//! * on each Auto Scaling group, the tag [`OWES_TAG`] while the tool owes the group a
//!   restore (suspended processes, instances in Standby), so the debt survives the
//!   instance being terminated.
//!
//! ECS attribute values are 1–128 characters of `[A-Za-z0-9-_.@/: ]` (no commas, no
//! `=`), Auto Scaling tag values at most 256 characters; every encoding here keeps to
//! those rules and the tests check each kind. Each record carries a format version so a
//! later release can read it or refuse it clearly.
//! See <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Attribute.html>.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The container-instance attribute marking an instance done: `v1 RUN TIME`.
pub const DONE_ATTRIBUTE: &str = "privlink-restart.done";
/// The container-instance attribute listing what the tool owes it: `v1 RUN KIND…`.
pub const OWES_ATTRIBUTE: &str = "privlink-restart.owes";
/// The Auto Scaling group tag listing what the tool owes the group.
pub const OWES_TAG: &str = "privlink-restart:owes";

const FORMAT: &str = "v1";
const ECS_VALUE_MAX: usize = 128;
const TAG_VALUE_MAX: usize = 256;

/// Why a record on AWS cannot be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkError {
    #[error("{what} \"{value}\" is not in a format this version reads ({reason})")]
    Unreadable {
        what: &'static str,
        value: String,
        reason: String,
    },
    #[error("{what} would be {len} characters, more than AWS allows ({max}): {value}")]
    TooLong {
        what: &'static str,
        value: String,
        len: usize,
        max: usize,
    },
    #[error("{what} may not contain \"{character}\": {value}")]
    BadCharacter {
        what: &'static str,
        value: String,
        character: char,
    },
}

/// A run's identity: `YYYYMMDDTHHMMSSZ-XXXX`, safe in every record above.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub String);

impl RunId {
    /// A run id from the start time (Unix seconds) and a number that tells apart runs
    /// started in the same second (the process id).
    pub fn new(started: i64, salt: u32) -> RunId {
        let time = crate::clock::rfc3339(started).replace(['-', ':'], "");
        RunId(format!("{time}-{:04x}", salt & 0xffff))
    }

    fn parse(raw: &str) -> Option<RunId> {
        let ok = !raw.is_empty()
            && raw.len() <= 40
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        ok.then(|| RunId(raw.to_string()))
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An instance whose agent a run proved moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneMark {
    pub run: RunId,
    /// Unix seconds.
    pub at: i64,
}

impl DoneMark {
    pub fn encode(&self) -> Result<String, MarkError> {
        ecs_value(
            "the done marker",
            format!("{FORMAT} {} {}", self.run, self.at),
        )
    }

    pub fn parse(value: &str) -> Result<DoneMark, MarkError> {
        let unreadable = |reason: &str| MarkError::Unreadable {
            what: "the done marker",
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let mut parts = value.split(' ');
        if parts.next() != Some(FORMAT) {
            return Err(unreadable("unknown format version"));
        }
        let run = parts
            .next()
            .and_then(RunId::parse)
            .ok_or_else(|| unreadable("no run id"))?;
        let at = parts
            .next()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| unreadable("no time"))?;
        Ok(DoneMark { run, at })
    }
}

/// What the tool changed on one container instance and must put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceDebt {
    /// The tool set the instance DRAINING: set it ACTIVE again.
    Activate,
    /// The tool set scale-in protection on it: remove the protection.
    Unprotect,
}

impl InstanceDebt {
    pub const ALL: [InstanceDebt; 2] = [InstanceDebt::Activate, InstanceDebt::Unprotect];

    fn token(self) -> &'static str {
        match self {
            InstanceDebt::Activate => "activate",
            InstanceDebt::Unprotect => "unprotect",
        }
    }

    fn from_token(token: &str) -> Option<InstanceDebt> {
        InstanceDebt::ALL.into_iter().find(|d| d.token() == token)
    }
}

/// Everything a run owes one container instance (the value of [`OWES_ATTRIBUTE`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceOwed {
    pub run: RunId,
    pub debts: BTreeSet<InstanceDebt>,
}

impl InstanceOwed {
    pub fn encode(&self) -> Result<String, MarkError> {
        let mut value = format!("{FORMAT} {}", self.run);
        for debt in &self.debts {
            value.push(' ');
            value.push_str(debt.token());
        }
        ecs_value("the restore record", value)
    }

    pub fn parse(value: &str) -> Result<InstanceOwed, MarkError> {
        let unreadable = |reason: String| MarkError::Unreadable {
            what: "the restore record",
            value: value.to_string(),
            reason,
        };
        let mut parts = value.split(' ');
        if parts.next() != Some(FORMAT) {
            return Err(unreadable("unknown format version".into()));
        }
        let run = parts
            .next()
            .and_then(RunId::parse)
            .ok_or_else(|| unreadable("no run id".into()))?;
        let debts = parts
            .map(|t| {
                InstanceDebt::from_token(t).ok_or_else(|| unreadable(format!("unknown debt {t:?}")))
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        Ok(InstanceOwed { run, debts })
    }
}

/// Everything a run owes one Auto Scaling group (the value of [`OWES_TAG`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GroupOwed {
    pub run: Option<RunId>,
    /// The cluster whose run owes it (a group could serve two clusters).
    pub cluster: String,
    /// Processes the tool suspended (only those that were not suspended before it came).
    pub resume: BTreeSet<String>,
    /// Instances the tool put in Standby.
    pub exit_standby: BTreeSet<String>,
}

impl GroupOwed {
    pub fn is_empty(&self) -> bool {
        self.resume.is_empty() && self.exit_standby.is_empty()
    }

    pub fn encode(&self) -> Result<String, MarkError> {
        let run = self.run.as_ref().map_or("-", |r| r.0.as_str());
        let mut value = format!("{FORMAT} {run} cluster:{}", self.cluster);
        if !self.resume.is_empty() {
            let list: Vec<&str> = self.resume.iter().map(String::as_str).collect();
            value.push_str(&format!(" resume:{}", list.join("/")));
        }
        if !self.exit_standby.is_empty() {
            let list: Vec<&str> = self.exit_standby.iter().map(String::as_str).collect();
            value.push_str(&format!(" standby:{}", list.join("/")));
        }
        let len = value.chars().count();
        if len > TAG_VALUE_MAX {
            return Err(MarkError::TooLong {
                what: "the group's restore record",
                value,
                len,
                max: TAG_VALUE_MAX,
            });
        }
        Ok(value)
    }

    pub fn parse(value: &str) -> Result<GroupOwed, MarkError> {
        let unreadable = |reason: String| MarkError::Unreadable {
            what: "the group's restore record",
            value: value.to_string(),
            reason,
        };
        let mut parts = value.split(' ');
        if parts.next() != Some(FORMAT) {
            return Err(unreadable("unknown format version".into()));
        }
        let run = match parts.next() {
            Some("-") => None,
            Some(raw) => Some(RunId::parse(raw).ok_or_else(|| unreadable("bad run id".into()))?),
            None => return Err(unreadable("no run id".into())),
        };
        let mut owed = GroupOwed {
            run,
            ..GroupOwed::default()
        };
        // The cluster name may hold spaces no more than any other name ECS allows: it
        // is `[A-Za-z0-9_-]`, so splitting on spaces is safe.
        for part in parts {
            let list = |rest: &str| {
                rest.split('/')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            if let Some(cluster) = part.strip_prefix("cluster:") {
                owed.cluster = cluster.to_string();
            } else if let Some(rest) = part.strip_prefix("resume:") {
                owed.resume = list(rest);
            } else if let Some(rest) = part.strip_prefix("standby:") {
                owed.exit_standby = list(rest);
            } else {
                return Err(unreadable(format!("unknown part {part:?}")));
            }
        }
        if owed.cluster.is_empty() {
            return Err(unreadable("no cluster".into()));
        }
        Ok(owed)
    }
}

/// Checks a value against ECS's attribute rules.
fn ecs_value(what: &'static str, value: String) -> Result<String, MarkError> {
    if let Some(character) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.@/: ".contains(*c)))
    {
        return Err(MarkError::BadCharacter {
            what,
            value,
            character,
        });
    }
    let len = value.chars().count();
    if len == 0 || len > ECS_VALUE_MAX {
        return Err(MarkError::TooLong {
            what,
            value,
            len,
            max: ECS_VALUE_MAX,
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunId {
        RunId::new(1_800_000_000, 0xbeef_1234)
    }

    /// ECS's own rule for custom attribute values.
    fn ecs_accepts(value: &str) -> bool {
        (1..=128).contains(&value.chars().count())
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@/: ".contains(c))
    }

    #[test]
    fn run_ids_sort_by_start_and_fit_every_record() {
        assert_eq!(run().0, "20270115T080000Z-1234");
        assert!(RunId::new(1_800_000_001, 0) > run());
    }

    #[test]
    fn every_instance_debt_encodes_within_ecs_rules_and_reads_back() {
        let mut sets: Vec<BTreeSet<InstanceDebt>> = InstanceDebt::ALL
            .iter()
            .map(|d| BTreeSet::from([*d]))
            .collect();
        sets.push(InstanceDebt::ALL.into_iter().collect());
        for debts in sets {
            let owed = InstanceOwed { run: run(), debts };
            let value = owed.encode().unwrap();
            assert!(ecs_accepts(&value), "{value}");
            assert_eq!(InstanceOwed::parse(&value).unwrap(), owed);
        }
    }

    #[test]
    fn the_done_marker_encodes_within_ecs_rules_and_reads_back() {
        let mark = DoneMark {
            run: run(),
            at: 1_800_000_042,
        };
        let value = mark.encode().unwrap();
        assert!(ecs_accepts(&value), "{value}");
        assert_eq!(DoneMark::parse(&value).unwrap(), mark);
    }

    #[test]
    fn group_debts_read_back_and_refuse_to_outgrow_a_tag() {
        let owed = GroupOwed {
            run: Some(run()),
            cluster: "prod-blue_2".into(),
            resume: ["AZRebalance", "HealthCheck", "ReplaceUnhealthy"]
                .map(String::from)
                .into(),
            exit_standby: ["i-0123456789abcdef0".to_string()].into(),
        };
        let value = owed.encode().unwrap();
        assert!(value.chars().count() <= 256);
        assert_eq!(GroupOwed::parse(&value).unwrap(), owed);
        let crowded = GroupOwed {
            exit_standby: (0..20).map(|i| format!("i-0123456789abcd{i:03}")).collect(),
            ..owed
        };
        assert!(matches!(crowded.encode(), Err(MarkError::TooLong { .. })));
    }

    #[test]
    fn records_of_an_unknown_format_are_refused_with_the_value_named() {
        for value in ["v2 20270115T080000Z-1234 activate", "", "v1", "v1 r1 fly"] {
            let error = InstanceOwed::parse(value).unwrap_err();
            assert!(
                error.to_string().contains(&format!("\"{value}\"")),
                "{error}"
            );
        }
        assert!(DoneMark::parse("v1 20270115T080000Z-1234 soon").is_err());
        assert!(
            GroupOwed::parse("v1 - resume:HealthCheck").is_err(),
            "no cluster"
        );
    }
}
