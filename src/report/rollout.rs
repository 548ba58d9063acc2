//! The cutover's reports: the plan before anything changes, one JSON line per event, the
//! live progress view, and the summary at the end. Everything but the progress view is
//! rendered into a `String`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::json;

use super::text::some_ids;
use super::{Colour, JSON_SCHEMA};
use crate::inventory::Cluster;
use crate::rollout::plan::{Override, RolloutPlan};
use crate::rollout::rehearse::Rehearsal;
use crate::rollout::run::{Outcome, RolloutConfig, RolloutEvent};
use crate::rollout::state::{InstanceState, Proof};
use crate::verify::{Path, Verdict, VerifyMode};
use crate::window::TimeLimits;

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The time limits, if any: "only inside Sat,Sun 02:00-05:00 Europe/Berlin (--window),
/// and nothing that would end after … (--deadline)".
fn limits_line(limits: &TimeLimits) -> Option<String> {
    if limits.is_none() {
        return None;
    }
    let mut parts = Vec::new();
    if !limits.schedule.is_always() {
        let windows: Vec<String> = limits
            .schedule
            .windows
            .iter()
            .map(|w| w.to_string())
            .collect();
        parts.push(format!("only inside {} (--window)", windows.join("; ")));
    }
    if let Some(deadline) = limits.deadline {
        parts.push(format!(
            "nothing that would end after {deadline} (--deadline)"
        ));
    }
    Some(format!(
        "timing: {}; a wave or reboot starts only if it is expected to end in time",
        parts.join(", and ")
    ))
}

/// The plan, for people.
pub fn render_plan_human(
    cluster: &Cluster,
    plan: &RolloutPlan,
    config: &RolloutConfig,
    colour: Colour,
) -> String {
    let mut out = String::new();
    // As the run resolves it: from the instances it moves.
    let width = config.waves.max_unavailable.resolve(plan.moves());
    let over_ssm: usize = plan.waves.iter().map(|w| w.instance_ids.len()).sum();
    let _ = writeln!(
        out,
        "{}",
        colour.paint(
            "1",
            &format!(
                "Plan for cluster {} ({}): restart {} over SSM in {}",
                cluster.name,
                cluster.region,
                plural(over_ssm, "agent", "agents"),
                plural(plan.waves.len(), "wave", "waves")
            )
        )
    );
    let canary = plan
        .waves
        .first()
        .filter(|w| w.canary)
        .map_or(0, |w| w.instance_ids.len());
    let _ = writeln!(
        out,
        "  canary {canary}, then up to {width} at once (--max-unavailable {}){}; halt after {} failure(s)",
        config.waves.max_unavailable,
        if config.waves.by_az { ", one zone per wave" } else { "" },
        config.max_failures + 1
    );
    let verify = match config.verify {
        None => "the agent's path probed: done only on the endpoints (private); where SSM cannot reach, once connected",
        Some(VerifyMode::Private) => "the agent's path probed: done only on the endpoints (private)",
        Some(VerifyMode::Connected) => "done once ECS shows the agent connected; the path is probed and reported where SSM reaches",
        Some(VerifyMode::None) => "no path probe: the restart's or reboot's own proof decides",
    };
    let _ = writeln!(out, "  after each restart or reboot: {verify} (--verify)");
    if let Some(limits) = limits_line(&config.limits) {
        let _ = writeln!(out, "  {limits}");
    }
    for (number, wave) in plan.waves.iter().enumerate() {
        let label = if wave.canary {
            format!("wave {} (canary)", number + 1)
        } else {
            format!("wave {}", number + 1)
        };
        let _ = writeln!(out, "  {label:<18} {}", some_ids(&wave.instance_ids));
    }
    let reboot: Vec<_> = plan
        .preset
        .iter()
        .filter(|(_, state)| matches!(state, InstanceState::NeedsReboot { .. }))
        .collect();
    let failed: Vec<_> = plan
        .preset
        .iter()
        .filter(|(_, state)| matches!(state, InstanceState::Failed { .. }))
        .collect();
    let skipped: Vec<_> = plan
        .preset
        .iter()
        .filter(|(_, state)| {
            !matches!(
                state,
                InstanceState::NeedsReboot { .. } | InstanceState::Failed { .. }
            )
        })
        .collect();
    if !reboot.is_empty() {
        let fallback = &config.fallback;
        let _ = writeln!(
            out,
            "{}",
            colour.paint(
                "33",
                &format!(
                    "Then drain and reboot, {} at a time ({}):",
                    fallback.max_reboots,
                    reboot.len()
                )
            )
        );
        for (id, state) in &reboot {
            let _ = writeln!(out, "  {id:<21} {}", reason(state));
        }
        let _ = writeln!(
            out,
            "  each: placement check, Auto Scaling held ({}), DRAINING until its service tasks moved (--drain-timeout {}), reboot and proof (--reboot-timeout {}), then put back",
            if fallback.use_standby { "Standby" } else { "scale-in protection, processes suspended" },
            humantime(fallback.drain_timeout),
            humantime(fallback.reboot_timeout)
        );
    }
    if !failed.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            colour.paint("31", &format!("Cannot be moved ({}):", failed.len()))
        );
        for (id, state) in &failed {
            let _ = writeln!(out, "  {id:<21} {}", reason(state));
        }
    }
    if !skipped.is_empty() {
        let _ = writeln!(out, "Skipped ({}):", skipped.len());
        for (id, state) in &skipped {
            let _ = writeln!(out, "  {id:<21} {}", reason(state));
        }
    }
    out
}

/// `15m`, `90s`, `1h30m`, `2d3h`.
pub fn humantime(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds >= 86_400 {
        return match (seconds / 86_400, seconds % 86_400 / 3600) {
            (d, 0) => format!("{d}d"),
            (d, h) => format!("{d}d{h}h"),
        };
    }
    match (seconds / 3600, seconds % 3600 / 60, seconds % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

fn reason(state: &InstanceState) -> String {
    match state {
        InstanceState::NeedsReboot { reason } => reason.clone(),
        InstanceState::Skipped { reason }
        | InstanceState::Failed { reason }
        | InstanceState::Gone { reason } => reason.clone(),
        InstanceState::Done { evidence } => evidence.to_string(),
        other => other.name().to_string(),
    }
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    schema: u32,
    kind: &'static str,
    cluster: &'a Cluster,
    max_unavailable: String,
    /// `--verify`; null: private where SSM reaches an instance, connected elsewhere.
    verify: Option<VerifyMode>,
    /// `--window` specs, as given.
    windows: Vec<String>,
    /// `--deadline`, RFC 3339 in UTC.
    deadline: Option<String>,
    /// The dry run's rehearsal, or why there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    estimate: Option<serde_json::Value>,
    waves: &'a [crate::rollout::waves::Wave],
    preset: Vec<JsonInstance<'a>>,
    blocking: Vec<Override>,
}

#[derive(Serialize)]
struct JsonInstance<'a> {
    instance_id: &'a str,
    #[serde(flatten)]
    state: &'a InstanceState,
}

/// The plan as one JSON object (`--dry-run --output json`).
pub fn render_plan_json(
    cluster: &Cluster,
    plan: &RolloutPlan,
    config: &RolloutConfig,
    estimate: Option<&Result<Rehearsal, String>>,
) -> String {
    let document = JsonPlan {
        schema: JSON_SCHEMA,
        kind: "plan",
        cluster,
        max_unavailable: config.waves.max_unavailable.to_string(),
        verify: config.verify,
        windows: config
            .limits
            .schedule
            .windows
            .iter()
            .map(|w| w.to_string())
            .collect(),
        deadline: config.limits.deadline.map(|d| d.to_string()),
        estimate: estimate.map(|e| match e {
            Ok(rehearsal) => serde_json::to_value(rehearsal).unwrap_or_default(),
            Err(why) => json!({ "error": why }),
        }),
        waves: &plan.waves,
        preset: plan
            .preset
            .iter()
            .map(|(id, state)| JsonInstance {
                instance_id: id,
                state,
            })
            .collect(),
        blocking: plan.overrides(),
    };
    serde_json::to_string(&document).unwrap_or_default() + "\n"
}

/// The dry run's estimate, for people: how long, in how many windows, until when, and
/// what it rests on.
pub fn render_estimate_human(estimate: &Result<Rehearsal, String>, limits: &TimeLimits) -> String {
    const BASIS: &str = "rehearsed on a simulated copy of the cluster: its instances, zones, SSM reach, services and tasks, with typical latencies, not this account's";
    let rehearsal = match estimate {
        Ok(rehearsal) => rehearsal,
        Err(why) => return format!("Estimate: none ({why}).\n"),
    };
    let work = humantime(rehearsal.makespan);
    let ends = jiff::Timestamp::from_second(rehearsal.ends_at)
        .map(|t| limits.local(t))
        .unwrap_or_default();
    match &rehearsal.unfinished {
        Some(why) => format!(
            "Estimate: it would not finish: {why}. {} of {} done after {} of work in {} ({BASIS}).\n",
            rehearsal.done,
            rehearsal.targets,
            work,
            plural(rehearsal.windows, "window", "windows"),
        ),
        None if limits.schedule.is_always() => format!(
            "Estimate: about {work}, ending around {ends} ({BASIS}).\n"
        ),
        None => format!(
            "Estimate: about {work} of work in {}, ending around {ends} ({BASIS}).\n",
            plural(rehearsal.windows, "window", "windows"),
        ),
    }
}

/// One event as a JSON line.
pub fn render_event_json(event: &RolloutEvent) -> String {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("schema".into(), json!(JSON_SCHEMA));
        map.insert("kind".into(), json!("event"));
    }
    value.to_string() + "\n"
}

/// When each instance started and ended, gathered from the events (Unix seconds).
#[derive(Debug, Default, Clone)]
pub struct Timings {
    started: BTreeMap<String, i64>,
    ended: BTreeMap<String, i64>,
}

impl Timings {
    pub fn record(&mut self, event: &RolloutEvent) {
        if let RolloutEvent::StateChanged {
            instance_id,
            state,
            at,
        } = event
        {
            if matches!(
                **state,
                InstanceState::Restarting { .. } | InstanceState::Draining { .. }
            ) {
                self.started.entry(instance_id.clone()).or_insert(*at);
            }
            if state.is_final() {
                self.ended.insert(instance_id.clone(), *at);
            }
        }
    }

    fn took(&self, id: &str) -> Option<i64> {
        Some(self.ended.get(id)? - self.started.get(id)?)
    }
}

/// What the summary table shows of an instance besides its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    pub zone: String,
    /// `restart`, `reboot` (drain and reboot) or `none`; an instance whose restart fell
    /// back to a reboot shows `reboot` once it is done.
    pub action: &'static str,
}

/// The summary table and totals, for people. `verdicts` are the path verdicts of the
/// whole run: those taken before it (agents already on the endpoints) and during it.
pub fn render_summary_human(
    outcome: &Outcome,
    rows: &BTreeMap<String, SummaryRow>,
    timings: &Timings,
    verdicts: &BTreeMap<String, Verdict>,
    requests: &BTreeMap<String, u64>,
    colour: Colour,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<21} {:<12} {:<8} {:<8} {:>6}  detail",
        "instance", "zone", "action", "result", "time"
    );
    for (id, state) in &outcome.states {
        let code = match state {
            InstanceState::Done { .. } => "32",
            InstanceState::Failed { .. } => "31",
            InstanceState::Pending => "33",
            _ => "2",
        };
        let took = timings
            .took(id)
            .map_or_else(|| "-".to_string(), |s| format!("{s}s"));
        let (zone, mut action) = rows
            .get(id)
            .map_or(("-", "-"), |r| (r.zone.as_str(), r.action));
        if matches!(
            state,
            InstanceState::Done {
                evidence: Proof::Reboot(_)
            }
        ) {
            action = "reboot";
        }
        let result = colour.paint(code, &format!("{:<8}", state.name()));
        let path = match (state, verdicts.get(id)) {
            (InstanceState::Done { .. }, Some(verdict)) => format!("; path {}", verdict.path),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{id:<21} {zone:<12} {action:<8} {result} {took:>6}  {}{path}",
            reason(state)
        );
    }
    let total: u64 = requests.values().sum();
    let _ = writeln!(
        out,
        "\n{} done, {} failed, {} gone, {} skipped, {} not started · {total} AWS requests",
        outcome.count("done"),
        outcome.count("failed"),
        outcome.count("gone"),
        outcome.count("skipped"),
        outcome.count("pending") + outcome.count("needs-reboot"),
    );
    if let Some(reason) = &outcome.halted {
        let _ = writeln!(
            out,
            "{}",
            colour.paint(
                "31",
                &format!("Halted: {reason}. No new instance was touched after that.")
            )
        );
    }
    let unmoved = ["failed", "pending", "needs-reboot"]
        .iter()
        .map(|s| outcome.count(s))
        .sum::<usize>();
    let verdict = if unmoved > 0 {
        colour.paint("31", "Not every agent was moved: the failed ones need a reboot or a look (see the detail column).")
    } else {
        let rebooted = outcome
            .states
            .values()
            .filter(|s| {
                matches!(
                    s,
                    InstanceState::Done {
                        evidence: Proof::Reboot(_)
                    }
                )
            })
            .count();
        let restarted = outcome.count("done") - rebooted;
        let what = match (restarted, rebooted) {
            (_, 0) => format!(
                "{} restarted and reconnected",
                plural(restarted, "agent", "agents")
            ),
            (0, _) => format!(
                "{} rebooted and rejoined",
                plural(rebooted, "instance", "instances")
            ),
            _ => format!(
                "{} restarted and {} rebooted, every agent reconnected",
                plural(restarted, "agent", "agents"),
                plural(rebooted, "instance", "instances")
            ),
        };
        let proof = if rebooted == 0 {
            "with proof from each instance"
        } else {
            "with proof for each"
        };
        colour.paint("32", &format!("{what}, {proof}."))
    };
    let _ = writeln!(out, "{verdict}");
    if let Some(line) = path_line(outcome, verdicts) {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// The one next step after a run, for people: what the run leaves to do, never a claim
/// beyond what was checked. `task_findings` are the preflight's `task-*` findings: tasks
/// that still need the internet (or an endpoint) once the NAT gateway goes.
pub fn next_step_line(
    outcome: &Outcome,
    verdicts: &BTreeMap<String, Verdict>,
    cluster: &str,
    task_findings: usize,
) -> String {
    let unmoved = ["failed", "pending", "needs-reboot"]
        .iter()
        .map(|s| outcome.count(s))
        .sum::<usize>();
    if outcome.stopped {
        return "Next: resume with the command above (the journal knows where it stopped).".into();
    }
    if unmoved > 0 || outcome.halted.is_some() {
        return format!(
            "Next: mend what the detail column names (docs/TROUBLESHOOTING.md), then `privlink-restart --cluster {cluster} --resume`."
        );
    }
    let settled = settled(outcome, verdicts);
    let all_private = !settled.is_empty()
        && settled
            .iter()
            .all(|id| verdicts.get(*id).is_some_and(|v| v.path == Path::Private));
    if !all_private {
        return format!(
            "Next: `privlink-restart verify --cluster {cluster}` shows each agent's path with its evidence."
        );
    }
    if task_findings > 0 {
        return format!(
            "Next: {} still need a way out without the NAT gateway: see `privlink-restart check --cluster {cluster}`.",
            plural(task_findings, "task finding", "task findings")
        );
    }
    "Next: every agent here is proven on the endpoints; docs/RUNBOOK.md lists what to check before removing the NAT gateway.".into()
}

/// The agents the path verdicts speak for: done, or skipped as already private.
fn settled<'a>(outcome: &'a Outcome, verdicts: &BTreeMap<String, Verdict>) -> Vec<&'a String> {
    outcome
        .states
        .iter()
        .filter(|(id, s)| {
            matches!(s, InstanceState::Done { .. })
                || (matches!(s, InstanceState::Skipped { .. }) && verdicts.contains_key(*id))
        })
        .map(|(id, _)| id)
        .collect()
}

/// What the path verdicts prove about the agents that are done or were skipped as
/// already private: no claim beyond what was probed.
fn path_line(outcome: &Outcome, verdicts: &BTreeMap<String, Verdict>) -> Option<String> {
    let settled = settled(outcome, verdicts);
    if settled.is_empty() {
        return None;
    }
    let paths: Vec<Option<Path>> = settled
        .iter()
        .map(|id| verdicts.get(*id).map(|v| v.path))
        .collect();
    let private = paths.iter().filter(|p| **p == Some(Path::Private)).count();
    let unprobed = paths.iter().filter(|p| p.is_none()).count();
    let off = settled.len() - private - unprobed;
    if private == settled.len() {
        return Some(format!(
            "{} on the endpoints, proven by the path probe.",
            plural(private, "agent is", "agents are")
        ));
    }
    let mut parts = vec![format!(
        "{private} of {} agents proven on the endpoints by the path probe",
        settled.len()
    )];
    if unprobed > 0 {
        parts.push(format!("{unprobed} not probed (no SSM, or --verify none)"));
    }
    if off > 0 {
        parts.push(format!(
            "{off} probed off the endpoints (--verify connected; see their verdicts)"
        ));
    }
    Some(format!("{}.", parts.join("; ")))
}

#[derive(Serialize)]
struct JsonSummary<'a> {
    schema: u32,
    kind: &'static str,
    halted: Option<&'a str>,
    /// Stopped by `--window`/`--deadline`: when the next window opens (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    resumes_at: Option<String>,
    overridden: &'a [Override],
    instances: Vec<JsonInstance<'a>>,
    verdicts: &'a BTreeMap<String, Verdict>,
    requests: &'a BTreeMap<String, u64>,
}

/// The final summary as one JSON line.
pub fn render_summary_json(
    outcome: &Outcome,
    overridden: &[Override],
    verdicts: &BTreeMap<String, Verdict>,
    requests: &BTreeMap<String, u64>,
) -> String {
    let document = JsonSummary {
        schema: JSON_SCHEMA,
        kind: "summary",
        halted: outcome.halted.as_deref(),
        resumes_at: outcome.resumes_at.map(crate::clock::rfc3339),
        overridden,
        instances: outcome
            .states
            .iter()
            .map(|(id, state)| JsonInstance {
                instance_id: id,
                state,
            })
            .collect(),
        verdicts,
        requests,
    };
    serde_json::to_string(&document).unwrap_or_default() + "\n"
}

/// The live view on stderr: one bar for the cluster, one line per instance in flight.
/// Hidden when stderr is not a terminal.
pub struct ProgressView {
    bars: MultiProgress,
    total: ProgressBar,
    in_flight: BTreeMap<String, ProgressBar>,
}

impl ProgressView {
    pub fn new(targets: usize, visible: bool) -> ProgressView {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bars = MultiProgress::with_draw_target(target);
        let total = bars.add(ProgressBar::new(targets as u64));
        total.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} agents {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        total.enable_steady_tick(Duration::from_millis(200));
        ProgressView {
            bars,
            total,
            in_flight: BTreeMap::new(),
        }
    }

    pub fn on(&mut self, event: &RolloutEvent) {
        match event {
            RolloutEvent::WaveStarted {
                number,
                canary,
                reboot,
                instance_ids,
                ..
            } => {
                let kind = match (canary, reboot) {
                    (_, true) => " (drain and reboot)",
                    (true, _) => " (canary)",
                    _ => "",
                };
                self.total
                    .set_message(format!("· wave {number}{kind}: {}", instance_ids.len()));
            }
            RolloutEvent::StateChanged {
                instance_id, state, ..
            } => {
                if state.is_final() {
                    if let Some(bar) = self.in_flight.remove(instance_id) {
                        bar.finish_and_clear();
                        self.bars.remove(&bar);
                    }
                    if matches!(
                        **state,
                        InstanceState::Done { .. }
                            | InstanceState::Failed { .. }
                            | InstanceState::Gone { .. }
                    ) {
                        self.total.inc(1);
                    }
                } else if state.is_in_flight() {
                    let bar = self
                        .in_flight
                        .entry(instance_id.clone())
                        .or_insert_with(|| {
                            let bar = self.bars.add(ProgressBar::new_spinner());
                            bar.set_style(
                                ProgressStyle::with_template(
                                    "  {spinner} {prefix:<21} {msg:<13} {elapsed}",
                                )
                                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                            );
                            bar.set_prefix(instance_id.clone());
                            bar.enable_steady_tick(Duration::from_millis(120));
                            bar
                        });
                    bar.set_message(state.name());
                }
            }
            RolloutEvent::Notice {
                instance_id,
                message,
                ..
            } => {
                let _ = self.bars.println(format!("{instance_id}: {message}"));
            }
            RolloutEvent::Halted { reason, .. } => {
                self.total.set_message(format!("· halted: {reason}"))
            }
            // The state change that follows shows the outcome.
            RolloutEvent::Verified { .. } => {}
        }
    }

    pub fn finish(self) {
        for bar in self.in_flight.values() {
            bar.finish_and_clear();
        }
        self.total.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::state::tests::evidence;

    fn outcome(states: &[(&str, InstanceState)]) -> Outcome {
        Outcome {
            states: states
                .iter()
                .map(|(id, s)| (id.to_string(), s.clone()))
                .collect(),
            halted: None,
            aws_error: false,
            journal_error: false,
            stopped: false,
            waves: 1,
            verdicts: BTreeMap::new(),
            resumes_at: None,
            out_of_time: false,
            estimates: Default::default(),
        }
    }

    fn path(p: Path) -> Verdict {
        Verdict {
            path: p,
            ..Verdict::unprobed("test")
        }
    }

    #[test]
    fn the_summary_ends_with_one_next_step() {
        let done = || InstanceState::Done {
            evidence: Proof::Restart(evidence(100, 101, 102)),
        };
        let private: BTreeMap<String, Verdict> = [("i-1", Path::Private), ("i-2", Path::Private)]
            .into_iter()
            .map(|(id, p)| (id.to_string(), path(p)))
            .collect();
        let both_done = outcome(&[("i-1", done()), ("i-2", done())]);
        let failed = outcome(&[
            ("i-1", done()),
            ("i-2", InstanceState::Failed { reason: "x".into() }),
        ]);
        let mut stopped = both_done.clone();
        stopped.stopped = true;
        let mut one_public = private.clone();
        one_public.insert("i-2".into(), path(Path::Public));
        let cases = [
            (&both_done, &private, 0, "every agent here is proven on the endpoints"),
            (&both_done, &private, 2, "Next: 2 task findings still need a way out without the NAT gateway: see `privlink-restart check --cluster prod`."),
            (&both_done, &one_public, 0, "Next: `privlink-restart verify --cluster prod`"),
            (&both_done, &BTreeMap::new(), 0, "Next: `privlink-restart verify --cluster prod`"),
            (&failed, &private, 0, "then `privlink-restart --cluster prod --resume`"),
            (&stopped, &private, 0, "Next: resume with the command above"),
        ];
        for (outcome, verdicts, tasks, expected) in cases {
            let line = next_step_line(outcome, verdicts, "prod", tasks);
            assert!(line.starts_with("Next: "), "{line}");
            assert!(line.contains(expected), "{expected:?} not in {line:?}");
        }
    }
}
