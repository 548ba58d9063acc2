//! The cutover as one flow: discover, preflight, plan, confirm, roll, summarize. Generic
//! over the [`Fleet`] so the real run, `demo` and tests share every step; all talking to
//! people goes through a [`Console`].

use std::collections::BTreeMap;

use crate::clock::Clock;
use crate::exit;
use crate::fleet::{Fleet, FleetError};
use crate::preflight::{self, PreflightOptions, Severity};
use crate::report::{self, Colour, OutputFormat, ProgressView, SummaryRow, Timings};
use crate::rollout::plan::{plan, Selection};
use crate::rollout::run::{roll, RolloutConfig};

/// Everything the cutover was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutoverPlan {
    pub cluster: String,
    pub preflight: PreflightOptions,
    pub selection: Selection,
    pub rollout: RolloutConfig,
    /// Stop after the plan; change nothing.
    pub dry_run: bool,
    /// Do not ask before changing anything (`--yes`).
    pub assume_yes: bool,
    /// Run despite blocking findings, naming each one overridden.
    pub force: bool,
    pub output: OutputFormat,
}

/// How the flow reaches the person or pipeline that runs it.
pub trait Console {
    /// The report (stdout).
    fn out(&mut self, text: &str);
    /// Messages about the run (stderr).
    fn err(&mut self, text: &str);
    /// Asks a yes/no question; `None` when nobody can answer (stdin is not a terminal).
    fn confirm(&mut self, question: &str) -> Option<bool>;
    fn colour(&self) -> Colour;
    /// Whether a live progress view can be drawn (stderr is a terminal).
    fn progress_visible(&self) -> bool;
}

/// Runs the cutover and returns the exit code. An error is a failure to reach AWS or
/// read the cluster at all, before anything changed (exit 2).
pub async fn run<F: Fleet, C: Clock + ?Sized>(
    fleet: &F,
    clock: &C,
    cutover: &CutoverPlan,
    console: &mut dyn Console,
) -> Result<i32, FleetError> {
    let human = cutover.output == OutputFormat::Human;
    let colour = console.colour();
    let inventory = fleet.discover(&cutover.cluster).await?;
    let checked = preflight::run(&inventory, cutover.preflight);
    let rollout_plan = plan(
        &inventory,
        &checked,
        &cutover.selection,
        cutover.rollout.waves,
    );
    if human {
        console.err(&format!(
            "Preflight: {} blocking finding(s), {} warning(s), {} note(s); `privlink-restart check` shows them all.\n",
            checked.count(Severity::Error),
            checked.count(Severity::Warning),
            checked.count(Severity::Info)
        ));
    }
    let overrides = rollout_plan.overrides();
    if !overrides.is_empty() {
        for finding in &rollout_plan.blocking {
            console.err(&format!("  ✗ {}: {}\n", finding.id, finding.summary));
        }
        if !cutover.force {
            console.err("Blocked: fix the findings above (see `privlink-restart check`), or pass --force to run anyway.\n");
            return Ok(exit::BLOCKED);
        }
        let ids: Vec<&str> = overrides.iter().map(|o| o.id).collect();
        console.err(&format!("--force: overriding {}\n", ids.join(", ")));
    }
    if human {
        console.out(&report::render_plan_human(
            &inventory.cluster,
            &rollout_plan,
            &cutover.rollout,
            colour,
        ));
    } else if cutover.dry_run {
        console.out(&report::render_plan_json(
            &inventory.cluster,
            &rollout_plan,
            &cutover.rollout,
        ));
    }
    if cutover.dry_run {
        return Ok(exit::OK);
    }
    if rollout_plan.targets.is_empty() {
        console.err("Nothing to restart over SSM.\n");
        let needs_reboot = rollout_plan
            .preset
            .iter()
            .any(|(_, s)| s.name() == "failed");
        return Ok(if needs_reboot {
            exit::BLOCKED
        } else {
            exit::OK
        });
    }
    if !cutover.assume_yes {
        let question = format!(
            "Restart {} ECS agent(s) in {} wave(s) on cluster {}? [y/N] ",
            rollout_plan.targets.len(),
            rollout_plan.waves.len(),
            inventory.cluster.name
        );
        match console.confirm(&question) {
            Some(true) => {}
            Some(false) => {
                console.err("Nothing was changed.\n");
                return Ok(exit::BLOCKED);
            }
            None => {
                console.err("error: stdin is not a terminal, so nobody can confirm: pass --yes to run without a prompt\n");
                return Ok(exit::USAGE);
            }
        }
    }
    // Every instance's zone and planned action, for the summary table.
    let mut rows: BTreeMap<String, SummaryRow> = rollout_plan
        .preset
        .iter()
        .map(|(id, state)| {
            let action = if state.name() == "failed" {
                "reboot"
            } else {
                "none"
            };
            let zone = inventory
                .ec2_instances
                .as_ref()
                .ok()
                .and_then(|ec2| ec2.get(id))
                .map_or_else(|| "-".to_string(), |e| e.availability_zone.clone());
            (id.clone(), SummaryRow { zone, action })
        })
        .collect();
    for target in &rollout_plan.targets {
        let row = SummaryRow {
            zone: target.availability_zone.clone(),
            action: "restart",
        };
        rows.insert(target.instance_id.clone(), row);
    }
    let mut progress =
        human.then(|| ProgressView::new(rollout_plan.targets.len(), console.progress_visible()));
    let mut timings = Timings::default();
    let outcome = roll(
        fleet,
        clock,
        &inventory.cluster.name,
        rollout_plan.targets.clone(),
        rollout_plan.preset.clone(),
        rollout_plan.bystanders.clone(),
        &cutover.rollout,
        &mut |event| {
            timings.record(&event);
            if let Some(progress) = progress.as_mut() {
                progress.on(&event);
            }
            // Pipelines see each event as it happens.
            if !human {
                console.out(&report::render_event_json(&event));
            }
        },
    )
    .await;
    if let Some(progress) = progress {
        progress.finish();
    }
    let requests = fleet.request_counts();
    let overridden = if cutover.force { overrides } else { Vec::new() };
    if human {
        console.out(&report::render_summary_human(
            &outcome, &rows, &timings, &requests, colour,
        ));
    } else {
        console.out(&report::render_summary_json(
            &outcome,
            &overridden,
            &requests,
        ));
    }
    if outcome.aws_error {
        // The rollout lost AWS: nothing more could be started or followed.
        return Ok(exit::USAGE);
    }
    let clean =
        outcome.halted.is_none() && outcome.count("failed") == 0 && outcome.count("pending") == 0;
    Ok(if clean { exit::OK } else { exit::BLOCKED })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::clock::SimClock;
    use crate::fleet::sim::{Fault, Latencies, SimFleet, SimInstance};

    #[derive(Default)]
    struct Recorder {
        out: String,
        err: String,
        answer: Option<bool>,
        asked: bool,
    }

    impl Console for Recorder {
        fn out(&mut self, text: &str) {
            self.out.push_str(text);
        }
        fn err(&mut self, text: &str) {
            self.err.push_str(text);
        }
        fn confirm(&mut self, _question: &str) -> Option<bool> {
            self.asked = true;
            self.answer
        }
        fn colour(&self) -> Colour {
            Colour::Off
        }
        fn progress_visible(&self) -> bool {
            false
        }
    }

    fn cutover(output: OutputFormat) -> CutoverPlan {
        CutoverPlan {
            cluster: "sim".into(),
            preflight: PreflightOptions::default(),
            selection: Selection::default(),
            rollout: RolloutConfig::default(),
            dry_run: false,
            assume_yes: false,
            force: false,
            output,
        }
    }

    fn fleet(instances: Vec<SimInstance>) -> SimFleet {
        SimFleet::new(
            instances,
            Latencies::default(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        )
    }

    fn instances(n: usize) -> Vec<SimInstance> {
        (0..n)
            .map(|i| SimInstance::healthy(format!("i-{i:03}"), "eu-west-1a"))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn confirmed_run_restarts_everyone_and_summarizes() {
        let sim = fleet(instances(5));
        let clock = SimClock::starting_at(SystemTime::UNIX_EPOCH);
        let mut console = Recorder {
            answer: Some(true),
            ..Default::default()
        };
        let code = run(&sim, &clock, &cutover(OutputFormat::Human), &mut console)
            .await
            .unwrap();
        assert_eq!(code, exit::OK, "{}{}", console.err, console.out);
        assert!(console.asked);
        assert!(
            console.out.contains("Plan for cluster sim"),
            "{}",
            console.out
        );
        assert!(console.out.contains("5 done, 0 failed"), "{}", console.out);
        assert!(
            console.out.contains("5 agents restarted and reconnected"),
            "{}",
            console.out
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_human_report_of_a_fixed_run() {
        let mut fleet_instances = instances(6);
        fleet_instances[2] = fleet_instances[2].clone().with_fault(Fault::SsmOffline);
        fleet_instances[4] = fleet_instances[4]
            .clone()
            .with_fault(Fault::SlowReconnect(Duration::from_secs(30)));
        let sim = fleet(fleet_instances);
        let clock =
            SimClock::starting_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let mut plan = cutover(OutputFormat::Human);
        plan.assume_yes = true;
        let mut console = Recorder::default();
        run(&sim, &clock, &plan, &mut console).await.unwrap();
        insta::assert_snapshot!(console.out);
    }

    #[tokio::test(start_paused = true)]
    async fn declined_or_unanswerable_prompts_change_nothing() {
        for (answer, expected) in [(Some(false), exit::BLOCKED), (None, exit::USAGE)] {
            let sim = fleet(instances(3));
            let clock = SimClock::starting_at(SystemTime::UNIX_EPOCH);
            let mut console = Recorder {
                answer,
                ..Default::default()
            };
            let code = run(&sim, &clock, &cutover(OutputFormat::Human), &mut console)
                .await
                .unwrap();
            assert_eq!(code, expected);
            assert!(sim.sent_commands().is_empty());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn selection_by_auto_scaling_group_restarts_only_that_group() {
        let mut fleet_instances = instances(4);
        for instance in &mut fleet_instances[..2] {
            *instance = instance.clone().in_group("blue");
        }
        let sim = fleet(fleet_instances);
        let clock = SimClock::starting_at(SystemTime::UNIX_EPOCH);
        let mut plan = cutover(OutputFormat::Human);
        plan.assume_yes = true;
        plan.selection.asg = Some("blue".into());
        let mut console = Recorder::default();
        let code = run(&sim, &clock, &plan, &mut console).await.unwrap();
        assert_eq!(code, exit::OK, "{}", console.out);
        assert_eq!(
            (sim.restarts_sent("i-000"), sim.restarts_sent("i-002")),
            (1, 0)
        );
        assert!(
            console.out.contains("not in Auto Scaling group blue"),
            "{}",
            console.out
        );
    }

    #[tokio::test(start_paused = true)]
    async fn dry_run_sends_nothing_and_prints_the_plan_as_json() {
        let sim = fleet(instances(4));
        let clock = SimClock::starting_at(SystemTime::UNIX_EPOCH);
        let mut plan = cutover(OutputFormat::Json);
        plan.dry_run = true;
        let mut console = Recorder::default();
        let code = run(&sim, &clock, &plan, &mut console).await.unwrap();
        assert_eq!(code, exit::OK);
        assert!(!console.asked && sim.sent_commands().is_empty());
        let doc: serde_json::Value = serde_json::from_str(console.out.trim()).unwrap();
        assert_eq!(doc["kind"], "plan");
        assert_eq!(doc["waves"].as_array().unwrap().len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn json_run_prints_event_lines_then_a_summary_and_fails_on_a_failure() {
        let mut fleet_instances = instances(3);
        fleet_instances[1] = fleet_instances[1].clone().with_fault(Fault::SsmOffline);
        let sim = fleet(fleet_instances);
        let clock = SimClock::starting_at(SystemTime::UNIX_EPOCH);
        let mut plan = cutover(OutputFormat::Json);
        plan.assume_yes = true;
        let mut console = Recorder::default();
        let code = run(&sim, &clock, &plan, &mut console).await.unwrap();
        assert_eq!(code, exit::BLOCKED, "an instance needs a reboot");
        let lines: Vec<serde_json::Value> = console
            .out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(lines.iter().all(|l| l["schema"] == 1));
        assert!(lines[..lines.len() - 1]
            .iter()
            .all(|l| l["kind"] == "event"));
        let summary = lines.last().unwrap();
        assert_eq!(summary["kind"], "summary");
        let offline = summary["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["instance_id"] == "i-001")
            .unwrap();
        assert_eq!(offline["state"], "failed");
        assert!(offline["reason"]
            .as_str()
            .unwrap()
            .starts_with("needs reboot"));
    }
}
