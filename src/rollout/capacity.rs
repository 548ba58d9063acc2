//! Can this instance be drained? A placement check, not a sum: every service task that
//! draining would move must fit on another ACTIVE instance whose agent is connected —
//! CPU, memory, static host ports, `distinctInstance` and `memberOf` constraints, and
//! awsvpc ENI capacity where it is known — with the tasks moved before it taking their
//! room. Daemon tasks do not move; a service at `minimumHealthyPercent` 100 and
//! `maximumPercent` 100 cannot drain at all; a service whose every task runs here is
//! an outage for the length of the drain. Pure: the inventory in, a verdict out.
//!
//! ECS places a replacement task by its own strategy; this check asks only whether some
//! placement exists (first fit, largest tasks first), which is what the drain needs.

use std::collections::{BTreeMap, BTreeSet};

/// A container instance as a place for tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub instance_id: String,
    /// ACTIVE hosts with a connected agent take tasks; others do not.
    pub accepts_tasks: bool,
    /// Remaining CPU units and memory (MiB), as ECS reports them.
    pub cpu: i64,
    pub memory: i64,
    /// Host ports in use.
    pub ports: BTreeSet<u16>,
    /// Free awsvpc ENI slots, where known.
    pub enis: Option<u32>,
    /// The container instance's attributes (`ecs.availability-zone`, custom ones…), for
    /// `memberOf` expressions.
    pub attributes: BTreeMap<String, String>,
    /// Services with a task running on it now.
    pub services: BTreeSet<String>,
}

/// A service as draining sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub daemon: bool,
    pub minimum_healthy_percent: i32,
    pub maximum_percent: i32,
    /// Tasks of the service running anywhere.
    pub running: u32,
    pub distinct_instance: bool,
    /// `memberOf` expressions, all of which a host must satisfy.
    pub member_of: Vec<String>,
}

/// One task that draining would move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovingTask {
    pub task_arn: String,
    pub service: String,
    pub cpu: i64,
    pub memory: i64,
    pub host_ports: Vec<u16>,
    pub awsvpc: bool,
}

/// The verdict for one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainCheck {
    /// Why draining must not start (each names the service and what is missing).
    pub blocking: Vec<String>,
    /// What draining will cost (an outage of a service with every task here).
    pub warnings: Vec<String>,
}

impl DrainCheck {
    pub fn may_drain(&self) -> bool {
        self.blocking.is_empty()
    }
}

/// Checks whether `moving` (the service tasks on `instance_id`) can be drained onto the
/// other `hosts`.
pub fn check_drain(
    instance_id: &str,
    moving: &[MovingTask],
    services: &BTreeMap<String, Service>,
    hosts: &[Host],
) -> DrainCheck {
    let mut check = DrainCheck::default();
    let mut targets: Vec<Host> = hosts
        .iter()
        .filter(|h| h.instance_id != instance_id && h.accepts_tasks)
        .cloned()
        .collect();
    let mut here: BTreeMap<&str, u32> = BTreeMap::new();
    for task in moving {
        *here.entry(task.service.as_str()).or_default() += 1;
    }
    for (name, count) in &here {
        let Some(service) = services.get(*name) else {
            check.blocking.push(format!(
                "service {name} of a task on {instance_id} could not be read: its placement cannot be checked"
            ));
            continue;
        };
        if service.daemon {
            continue;
        }
        if service.minimum_healthy_percent >= 100 && service.maximum_percent <= 100 {
            check.blocking.push(format!(
                "service {name} has minimumHealthyPercent {} and maximumPercent {}: ECS can neither stop a task before its replacement runs nor start one more, so {instance_id} cannot drain; lower minimumHealthyPercent or raise maximumPercent",
                service.minimum_healthy_percent, service.maximum_percent
            ));
        }
        if *count >= service.running {
            check.warnings.push(format!(
                "every task of service {name} ({count}) runs on {instance_id}: the service is down while they move"
            ));
        }
    }
    // Largest first: what fits then leaves the small ones the most room.
    let mut order: Vec<&MovingTask> = moving
        .iter()
        .filter(|t| services.get(&t.service).is_some_and(|s| !s.daemon))
        .collect();
    order.sort_by_key(|t| std::cmp::Reverse((t.cpu, t.memory)));
    for task in order {
        let Some(service) = services.get(&task.service) else {
            continue;
        };
        let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut placed = false;
        for host in &mut targets {
            match fits(task, service, host) {
                Ok(()) => {
                    host.cpu -= task.cpu;
                    host.memory -= task.memory;
                    host.ports.extend(task.host_ports.iter().copied());
                    if task.awsvpc {
                        host.enis = host.enis.map(|n| n.saturating_sub(1));
                    }
                    host.services.insert(task.service.clone());
                    placed = true;
                    break;
                }
                Err(Misfit::Unreadable(error)) => {
                    check.blocking.push(format!(
                        "service {}: memberOf expression cannot be checked ({error})",
                        task.service
                    ));
                    placed = true;
                    break;
                }
                Err(Misfit::Missing(why)) => *reasons.entry(why).or_default() += 1,
            }
        }
        if !placed {
            let why = if targets.is_empty() {
                "no other ACTIVE instance with a connected agent".to_string()
            } else {
                reasons
                    .iter()
                    .map(|(why, n)| format!("{why} on {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            check.blocking.push(format!(
                "task {} of service {} ({} CPU, {} MiB{}) fits on no other instance: {why}",
                task.task_arn,
                task.service,
                task.cpu,
                task.memory,
                if task.host_ports.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", host ports {}",
                        task.host_ports
                            .iter()
                            .map(u16::to_string)
                            .collect::<Vec<_>>()
                            .join("/")
                    )
                }
            ));
        }
    }
    check
}

enum Misfit {
    Missing(&'static str),
    Unreadable(String),
}

fn fits(task: &MovingTask, service: &Service, host: &Host) -> Result<(), Misfit> {
    if host.cpu < task.cpu {
        return Err(Misfit::Missing("not enough CPU"));
    }
    if host.memory < task.memory {
        return Err(Misfit::Missing("not enough memory"));
    }
    if task.host_ports.iter().any(|p| host.ports.contains(p)) {
        return Err(Misfit::Missing("host port taken"));
    }
    if task.awsvpc && host.enis == Some(0) {
        return Err(Misfit::Missing("no free ENI"));
    }
    if service.distinct_instance && host.services.contains(&service.name) {
        return Err(Misfit::Missing(
            "distinctInstance: already runs a task of the service",
        ));
    }
    for expression in &service.member_of {
        match member_of(expression, &host.attributes) {
            Ok(true) => {}
            Ok(false) => return Err(Misfit::Missing("memberOf does not match")),
            Err(error) => return Err(Misfit::Unreadable(error)),
        }
    }
    Ok(())
}

/// Evaluates the common part of ECS's cluster query language against a host's
/// attributes: `attribute:NAME == V`, `!= V`, `=~ PATTERN` (with `*`), `in [A, B]`,
/// `not_in [A, B]`, `exists`, `not_exists`, joined by `and` / `or` (`and` binds
/// tighter). Anything else is an error, so the check fails closed.
/// <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/cluster-query-language.html>
pub fn member_of(expression: &str, attributes: &BTreeMap<String, String>) -> Result<bool, String> {
    let mut any = false;
    for alternative in split_words(expression, "or") {
        let mut all = true;
        for term in split_words(&alternative, "and") {
            all &= term_holds(term.trim(), attributes)?;
        }
        any |= all;
    }
    Ok(any)
}

/// Splits on a keyword standing as a word of its own, outside brackets.
fn split_words(text: &str, keyword: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0;
    let words: Vec<&str> = text.split(' ').collect();
    for word in words {
        depth += word.matches('[').count() as i32 - word.matches(']').count() as i32;
        if depth == 0 && word.eq_ignore_ascii_case(keyword) {
            parts.push(String::new());
            continue;
        }
        let last = parts.last_mut().expect("never empty");
        if !last.is_empty() {
            last.push(' ');
        }
        last.push_str(word);
    }
    parts
}

fn term_holds(term: &str, attributes: &BTreeMap<String, String>) -> Result<bool, String> {
    let unsupported = || format!("\"{term}\" is beyond what this check understands");
    let rest = term.strip_prefix("attribute:").ok_or_else(unsupported)?;
    let (name, condition) = rest.split_once(' ').unwrap_or((rest, ""));
    let value = attributes.get(name);
    let condition = condition.trim();
    let list = |raw: &str| -> Result<Vec<String>, String> {
        let inner = raw
            .trim()
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .ok_or_else(unsupported)?;
        Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
    };
    match condition.split_once(' ').unwrap_or((condition, "")) {
        ("exists", "") => Ok(value.is_some()),
        ("not_exists", "") => Ok(value.is_none()),
        ("==", expected) => Ok(value.is_some_and(|v| v == expected.trim())),
        ("!=", expected) => Ok(value.is_none_or(|v| v != expected.trim())),
        ("=~", pattern) => Ok(value.is_some_and(|v| wildcard(pattern.trim(), v))),
        ("in", raw) => {
            let l = list(raw)?;
            Ok(value.is_some_and(|v| l.contains(v)))
        }
        ("not_in", raw) => {
            let l = list(raw)?;
            Ok(value.is_none_or(|v| !l.contains(v)))
        }
        _ => Err(unsupported()),
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn wildcard(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            value.starts_with(head)
                && (0..=value.len() - head.len()).any(|skip| {
                    value
                        .get(head.len() + skip..)
                        .is_some_and(|rest| wildcard(tail, rest))
                })
        }
    }
}

#[cfg(test)]
mod tests;
