//! The cutover as one flow: discover, preflight, plan, settle what earlier runs left,
//! confirm, take the cluster's lease, roll, summarize. Generic over the [`Fleet`] so the
//! real run, `demo` and tests share every step; all talking to people goes through a
//! [`Console`].

mod hooks;
pub mod prior;
pub mod status;
mod wait;

use std::cell::RefCell;
use std::collections::BTreeMap;

pub use hooks::StopSignal;

use crate::clock::{unix_seconds, Clock};
use crate::exit;
use crate::fleet::sim::Blueprint;
use crate::fleet::{Fleet, FleetError, Record};
use crate::inventory::Platform;
use crate::journal::marks::RunId;
use crate::journal::{Journal, JournalError, JournalKey, JournalStore, RunStatus};
use crate::lease::{self, LeaseError, LeaseStatus, LeaseTerms, Owner};
use crate::preflight::{self, PreflightOptions, Severity};
use crate::report::{self, Colour, OutputFormat, ProgressView, SummaryRow, Timings};
use crate::rollout::estimate::Estimates;
use crate::rollout::plan::{plan, RolloutPlan, Selection};
use crate::rollout::rehearse::{rehearse, Rehearsal, Script};
use crate::rollout::run::{roll, RolloutConfig, RolloutInput};
use crate::rollout::state::InstanceState;
use crate::rollout::waves::{plan_waves, Candidate};
use crate::verify::{Path, ProbeSite, Prober, Verdict, VerifyMode};
use hooks::{Keeping, RunHooks};
use prior::{Prior, RunRecord, RUN_RECORD_SCHEMA};

/// Everything the cutover was asked to do.
#[derive(Debug, Clone)]
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
    /// Restart agents the probe shows already on the endpoints too (`--restart-all`).
    pub restart_all: bool,
    /// Outside the maintenance windows, exit 3 at once instead of waiting (`--no-wait`).
    pub no_wait: bool,
    pub output: OutputFormat,
    pub durability: Durability,
}

/// How the run survives interruptions.
#[derive(Debug, Clone)]
pub struct Durability {
    /// Where the journal is kept; `None` keeps none (the demo).
    pub journal: Option<JournalStore>,
    /// Continue an unfinished run without asking (`--resume`).
    pub resume: bool,
    /// Set an unfinished run aside and start over (`--fresh`); debts are still paid.
    pub fresh: bool,
    /// Take over a lease expired by two renewal intervals (`--break-lease`).
    pub break_lease: bool,
    pub lease: LeaseTerms,
    /// Who runs this (user, host, pid); the run id is filled in by the flow.
    pub operator: Operator,
}

/// The person and process behind a run, as the lease names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub user: String,
    pub host: String,
    pub pid: u32,
}

impl Default for Durability {
    fn default() -> Self {
        Durability {
            journal: None,
            resume: false,
            fresh: false,
            break_lease: false,
            lease: LeaseTerms::default(),
            operator: Operator {
                user: "unknown".into(),
                host: "unknown".into(),
                pid: std::process::id(),
            },
        }
    }
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

/// A console that keeps what it is given and answers no question: for a run with
/// `--yes` driven from code (the library example, tests).
#[derive(Debug, Default)]
pub struct Captured {
    pub out: String,
    pub err: String,
}

impl Console for Captured {
    fn out(&mut self, text: &str) {
        self.out.push_str(text);
    }
    fn err(&mut self, text: &str) {
        self.err.push_str(text);
    }
    fn confirm(&mut self, _question: &str) -> Option<bool> {
        None
    }
    fn colour(&self) -> Colour {
        Colour::Off
    }
    fn progress_visible(&self) -> bool {
        false
    }
}

/// Runs the cutover and returns the exit code. An error is a failure to reach AWS or
/// read the cluster at all, before anything changed (exit 2).
pub async fn run<F: Fleet, C: Clock + ?Sized>(
    fleet: &F,
    clock: &C,
    cutover: &CutoverPlan,
    console: &mut dyn Console,
    stop: &StopSignal,
) -> Result<i32, FleetError> {
    let human = cutover.output == OutputFormat::Human;
    let colour = console.colour();
    // A run that cannot start in time says so before reading anything.
    if let Some(code) = wait::refuse_early(clock, cutover, console) {
        return Ok(code);
    }
    // Without a prompt, the wait for the window comes first, so that the plan is made
    // from the cluster as it is when the window opens. (With a prompt the operator
    // confirms the plan first; the wait follows.)
    if cutover.assume_yes && !cutover.dry_run {
        if let Some(code) = wait::await_window(clock, cutover, console).await {
            return Ok(code);
        }
    }
    let inventory = fleet.discover(&cutover.cluster).await?;
    let cluster = inventory.cluster.name.clone();
    let checked = preflight::run(&inventory, cutover.preflight);
    let strategy = cutover.rollout.fallback.strategy;
    let mut rollout_plan = plan(
        &inventory,
        &checked,
        &cutover.selection,
        cutover.rollout.waves,
        strategy,
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
            console.err(&format!(
                "Blocked: fix the findings above (`privlink-restart check --cluster {} --region {}` explains each, docs/TROUBLESHOOTING.md how to fix it), or pass --force to run anyway.\n",
                cluster, inventory.cluster.region
            ));
            return Ok(exit::BLOCKED);
        }
        let ids: Vec<&str> = overrides.iter().map(|o| o.id).collect();
        console.err(&format!("--force: overriding {}\n", ids.join(", ")));
    }

    // Another run at work on the cluster comes first: what it left is not "unfinished".
    let durability = &cutover.durability;
    match lease::check_free(fleet, clock, &cluster, durability.break_lease).await {
        Ok(()) => {}
        Err(LeaseError::Fleet(error)) => return Err(error),
        Err(error) if cutover.dry_run => console.err(&format!("note: {error}\n")),
        Err(error) => {
            console.err(&format!("error: {error}\n"));
            return Ok(exit::LEASE_HELD);
        }
    }
    // What earlier runs left, here and on AWS.
    let key = journal_key(&inventory.cluster);
    let journal = match load_journal(durability.journal.as_ref(), &key, durability.fresh) {
        Ok(journal) => journal,
        Err(JournalError::Corrupt { path, reason, kept }) => {
            console.err(&format!(
                "warning: the journal {} is unreadable ({reason}); it is kept as {} and the run goes on from the records kept on AWS\n",
                path.display(),
                kept.display()
            ));
            None
        }
        Err(error) => {
            console.err(&format!("error: {error}\n"));
            return Ok(exit::USAGE);
        }
    };
    let record = crate::fleet::patiently(|| fleet.read_record(&cluster, Record::Run)).await?;
    let record = match record.as_deref().map(|v| (v, RunRecord::parse(v))) {
        None => None,
        Some((_, Some(record))) => Some(record),
        Some((value, None)) => {
            console.err(&format!(
                "error: the run record {} holds something this version cannot read ({value:?}); if no run is under way, delete it: aws ssm delete-parameter --name {}\n",
                Record::Run.parameter(&cluster),
                Record::Run.parameter(&cluster)
            ));
            return Ok(exit::USAGE);
        }
    };
    let record_seen = record.clone();
    let record_finished = record.clone().filter(|r| r.status == RunStatus::Finished);
    let group_marks = crate::fleet::patiently(|| fleet.group_marks()).await?;
    let mut prior = prior::gather(&inventory, journal, record, &group_marks);
    for warning in &prior.warnings {
        console.err(&format!("warning: {warning}\n"));
    }
    if !prior.unreadable.is_empty() {
        for line in &prior.unreadable {
            console.err(&format!("error: {line}\n"));
        }
        console.err(
            "Nothing was changed: an earlier run left restore records this version cannot read.\n",
        );
        return Ok(exit::USAGE);
    }
    // --fresh sets the unfinished run aside (its journal is archived once this run has
    // the lease: a dry run or a "no" changes nothing); its debts are still paid.
    let set_aside = if durability.fresh {
        prior.journal = None;
        prior.done.clear();
        prior.in_flight.clear();
        prior.run.take().map(|(run, _)| run)
    } else {
        None
    };
    if let Some(run) = &set_aside {
        console.err(&format!(
            "--fresh: run {run} is set aside; a new run starts (its journal is archived when it does)\n"
        ));
    }
    if !prior.is_empty() {
        console.err(&prior.describe());
    }
    apply_prior(&mut rollout_plan, &prior, cutover);
    if durability.resume && prior.is_empty() {
        if let Some(record) = record_finished.as_ref() {
            console.err(&format!(
                "Nothing to resume: run {} finished at {}. Run without --resume to start a new run.\n",
                record.run,
                crate::clock::rfc3339(record.updated)
            ));
            return Ok(exit::OK);
        }
    }
    // Agents already on the endpoints need nothing: the probe (read-only) finds them.
    let mut site = ProbeSite::of(&inventory, cutover.preflight.shared_endpoints);
    let already = already_private(fleet, &site, &rollout_plan, cutover).await?;
    skip_private(&mut rollout_plan, &already, cutover);
    if !already.is_empty() {
        console.err(&format!(
            "Probe: {} agent(s) already use the endpoints and are skipped (--restart-all restarts them too).\n",
            already.len()
        ));
    }

    // A dry run rehearses the plan for its estimate.
    let estimate = if cutover.dry_run {
        if human {
            console
                .err("Rehearsing the plan on a simulated copy of the cluster for an estimate…\n");
        }
        let measured = prior
            .journal
            .as_ref()
            .map(|j| j.estimates.clone())
            .unwrap_or_default();
        Some(estimate(fleet, clock, &inventory, &rollout_plan, cutover, &measured).await)
    } else {
        None
    };
    if human {
        console.out(&report::render_plan_human(
            &inventory.cluster,
            &rollout_plan,
            &cutover.rollout,
            colour,
        ));
        if let Some(estimate) = &estimate {
            console.out(&report::render_estimate_human(
                estimate,
                &cutover.rollout.limits,
            ));
        }
    } else if cutover.dry_run {
        console.out(&report::render_plan_json(
            &inventory.cluster,
            &rollout_plan,
            &cutover.rollout,
            estimate.as_ref(),
        ));
    }
    if cutover.dry_run {
        if !prior.is_empty() {
            console.err("A real run would first settle what is listed above (--resume), or start over (--fresh).\n");
        }
        return Ok(exit::OK);
    }
    let pending = rollout_plan.to_restart();
    let reboots = rollout_plan
        .preset
        .iter()
        .filter(|(_, s)| matches!(s, InstanceState::NeedsReboot { .. }))
        .count();
    if pending + reboots == 0 && prior.is_empty() {
        if already.is_empty() {
            console.err("Nothing to restart over SSM.\n");
        } else {
            console.err(&format!(
                "Nothing to restart: {} agent(s) already use the endpoints.\n",
                already.len()
            ));
        }
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
    let resuming = prior.run.is_some();
    if (resuming || prior.owes()) && !durability.resume && !durability.fresh && cutover.assume_yes {
        console.err(&format!(
            "error: cluster {cluster} has an unfinished run{} (see above): pass --resume to finish it, or --fresh to set it aside and start over\n",
            prior.run.as_ref().map(|(r, _)| format!(" {}", r.0)).unwrap_or_default()
        ));
        return Ok(exit::USAGE);
    }
    if !cutover.assume_yes {
        let settle = if prior.owes() {
            "Put back what is owed, then r"
        } else {
            "R"
        };
        let reboots = if reboots == 0 {
            String::new()
        } else {
            format!(
                ", then drain and reboot {reboots} instance(s), {} at a time",
                cutover.rollout.fallback.max_reboots
            )
        };
        // Outside the windows the run waits after the answer: say so in the question.
        let when = wait::opening(clock, &cutover.rollout.limits)
            .map(|opens| format!(", once the window opens at {opens}"))
            .unwrap_or_default();
        let question = if resuming {
            format!(
                "{settle}esume run {} on cluster {cluster}{when}: follow {} restart(s) under way and restart {pending} more ECS agent(s) in {} wave(s){reboots}? [y/N] ",
                prior.run.as_ref().map(|(r, _)| r.0.as_str()).unwrap_or_default(),
                prior.in_flight.values().filter(|s| !s.is_in_fallback()).count(),
                rollout_plan.waves.len(),
            )
        } else {
            format!(
                "{settle}estart {pending} ECS agent(s) in {} wave(s){reboots} on cluster {cluster}{when}? [y/N] ",
                rollout_plan.waves.len(),
            )
        };
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

    // Outside the windows: wait for the next (or stop), before the lease is taken.
    if let Some(code) = wait::await_window(clock, cutover, console).await {
        return Ok(code);
    }

    // One run per cluster from here on.
    let now = unix_seconds(clock.now());
    let (run_id, started) = prior
        .run
        .clone()
        .unwrap_or_else(|| (RunId::new(now, durability.operator.pid), now));
    let owner = Owner {
        user: durability.operator.user.clone(),
        host: durability.operator.host.clone(),
        pid: durability.operator.pid,
        run: run_id.clone(),
    };
    // From here an interrupt lets the run stop cleanly instead of ending the process.
    stop.begin_changes();
    let lease = match lease::acquire(
        fleet,
        clock,
        &cluster,
        owner,
        durability.lease,
        durability.break_lease,
    )
    .await
    {
        Ok(lease) => lease,
        Err(LeaseError::Fleet(error)) => return Err(error),
        Err(error) => {
            console.err(&format!("error: {error}\n"));
            return Ok(exit::LEASE_HELD);
        }
    };
    // Another run may have come and gone while this one was being confirmed: any run
    // rewrites the run record when it starts and ends.
    let record_now =
        match crate::fleet::patiently(|| fleet.read_record(&cluster, Record::Run)).await {
            Ok(value) => value.and_then(|v| RunRecord::parse(&v)),
            Err(error) => {
                let _ = lease.release(fleet).await;
                return Err(error);
            }
        };
    if record_now != record_seen {
        let _ = lease.release(fleet).await;
        console.err(&format!(
            "error: another run changed cluster {cluster} while this one was being confirmed; nothing was changed. See `privlink-restart status --cluster {cluster}`, then run again.\n"
        ));
        return Ok(exit::LEASE_HELD);
    }
    if durability.fresh {
        if let Some(store) = &durability.journal {
            let label = set_aside.as_ref().map_or("set-aside", |r| r.0.as_str());
            match store.archive(&key, &format!("{label}.{now}")) {
                Ok(Some(path)) => console.err(&format!(
                    "--fresh: the old journal is archived as {}\n",
                    path.display()
                )),
                Ok(None) => {}
                Err(error) => {
                    let _ = lease.release(fleet).await;
                    console.err(&format!("error: {error}\n"));
                    return Ok(exit::USAGE);
                }
            }
        }
    }
    let lease_status = RefCell::new(LeaseStatus::Held {
        until: lease.record().expires,
    });
    let lease = RefCell::new(lease);

    let mut journal = prior
        .journal
        .clone()
        .unwrap_or_else(|| Journal::new(run_id.clone(), &key, started));
    journal.status = RunStatus::Running;
    if cutover.force {
        journal.overridden = overrides.iter().map(|o| o.id.to_string()).collect();
    }
    journal.verdicts.extend(already.clone());
    let code = async {
        write_run_record(fleet, &cluster, &run_id, RunStatus::Running, started, now).await?;
        if let Err(error) = save(durability.journal.as_ref(), &journal) {
            console.err(&format!("error: {error}\n"));
            return Ok(exit::USAGE);
        }
        let (mut inventory, mut rollout_plan) = (inventory, rollout_plan);
        if prior.owes() {
            let patience = cutover.rollout.fallback.reboot_timeout;
            // The lease is kept while waiting: this can take minutes.
            let waited = tokio::select! {
                biased;
                waited = prior::await_return(fleet, &inventory, &prior, patience) => waited?,
                () = lease::keep(&lease, &lease_status, fleet, clock) => unreachable!("the lease keeper runs until dropped"),
            };
            if let Some(waited) = waited {
                console.err(&format!("Before putting back: {waited}\n"));
            }
            // The journal is written whatever happens: what was paid is not paid twice.
            let settled = prior::settle(fleet, &inventory, &prior, Some(&mut journal)).await;
            let saved = save(durability.journal.as_ref(), &journal);
            let settled = settled?;
            if let Err(error) = saved {
                console.err(&format!("error: {error}\n"));
                return Ok(exit::USAGE);
            }
            for line in &settled.lines {
                console.err(&format!("Put back: {line}\n"));
            }
            // An instance the tool itself had drained is ACTIVE again: plan it anew.
            if settled.activated {
                inventory = fleet.discover(&cluster).await?;
                let checked = preflight::run(&inventory, cutover.preflight);
                rollout_plan = plan(
                    &inventory,
                    &checked,
                    &cutover.selection,
                    cutover.rollout.waves,
                    strategy,
                );
                apply_prior(&mut rollout_plan, &prior, cutover);
                skip_private(&mut rollout_plan, &already, cutover);
                site = ProbeSite::of(&inventory, cutover.preflight.shared_endpoints);
            }
        }
        // Done in the journal but not yet marked on AWS (the run died in between): mark
        // them now, so that a run without this journal does not restart them.
        let unmarked = prior::unmarked_done(&inventory, &prior, &run_id);
        if !unmarked.is_empty() {
            crate::fleet::patiently(|| fleet.write_instance_marks(&cluster, &unmarked)).await?;
        }
        // Every target starts pending (a failure of an earlier session is retried); the
        // preset states arrive as events.
        for target in &rollout_plan.targets {
            journal.instances.insert(
                target.instance_id.clone(),
                crate::journal::InstanceEntry {
                    container_instance_arn: target.container_instance_arn.clone(),
                    state: InstanceState::Pending,
                    at: now,
                },
            );
        }
        let pending = rollout_plan.to_restart();
        let rows = summary_rows(&inventory, &rollout_plan);
        let arns: BTreeMap<String, String> = inventory
            .container_instances
            .iter()
            .map(|ci| (ci.ec2_instance_id.clone(), ci.arn.clone()))
            .collect();
        // The bar counts every instance the run moves: restarts and reboots.
        let reboots = rollout_plan
            .preset
            .iter()
            .filter(|(_, s)| matches!(s, InstanceState::NeedsReboot { .. }))
            .count();
        let mut progress =
            human.then(|| ProgressView::new(pending + reboots, console.progress_visible()));
        let mut timings = Timings::default();
        let input = RolloutInput {
            cluster: cluster.clone(),
            run: run_id.clone(),
            targets: rollout_plan.targets.clone(),
            preset: rollout_plan.preset.clone(),
            bystanders: rollout_plan.bystanders.clone(),
            // An earlier run that did not finish may have restarts under way, whether this
            // run resumes it or set it aside.
            resumed: record_seen
                .as_ref()
                .is_some_and(|r| r.status != RunStatus::Finished)
                || prior.run.is_some(),
            site: site.clone(),
            estimates: journal.estimates.clone(),
        };
        let outcome = {
            let mut hooks = RunHooks {
                clock,
                journal: durability.journal.as_ref().map(|store| Keeping {
                    store,
                    journal: &mut journal,
                }),
                arns: &arns,
                console: &mut *console,
                json: !human,
                progress: progress.as_mut(),
                timings: &mut timings,
                stop,
                lease: &lease_status,
                dirty: false,
            };
            tokio::select! {
                biased;
                outcome = roll(fleet, clock, input, &cutover.rollout, &mut hooks) => outcome,
                () = lease::keep(&lease, &lease_status, fleet, clock) => unreachable!("the lease keeper runs until dropped"),
            }
        };
        if let Some(progress) = progress {
            progress.finish();
        }
        // Finished: nothing left to do. A failed instance leaves the run open, so that
        // `--resume` retries it without touching what is done.
        let finished = outcome.halted.is_none()
            && outcome.states.values().all(|s| {
                matches!(
                    s,
                    InstanceState::Done { .. }
                        | InstanceState::Skipped { .. }
                        | InstanceState::Gone { .. }
                )
            });
        journal.status = if finished && !journal.owes() {
            RunStatus::Finished
        } else {
            RunStatus::Stopped
        };
        journal.updated_at = unix_seconds(clock.now());
        journal.estimates = outcome.estimates.clone();
        let saved = save(durability.journal.as_ref(), &journal);
        let recorded = write_run_record(fleet, &cluster, &run_id, journal.status, started, journal.updated_at).await;
        let requests = fleet.request_counts();
        let overridden = if cutover.force { overrides.clone() } else { Vec::new() };
        // Earlier sessions' verdicts (the journal), those before the plan, this run's.
        // `already` went into the journal before the rollout.
        let mut verdicts = journal.verdicts.clone();
        verdicts.extend(outcome.verdicts.clone());
        if human {
            console.out(&report::render_summary_human(
                &outcome, &rows, &timings, &verdicts, &requests, colour,
            ));
            let tasks = checked
                .findings
                .iter()
                .filter(|f| f.id.starts_with("task-"))
                .count();
            console.out(&format!(
                "{}\n",
                report::next_step_line(&outcome, &verdicts, &cluster, tasks)
            ));
        } else {
            console.out(&report::render_summary_json(
                &outcome,
                &overridden,
                &verdicts,
                &requests,
            ));
        }
        if let Err(error) = saved {
            console.err(&format!("error: {error}\n"));
            return Ok(exit::USAGE);
        }
        if let Err(error) = recorded {
            console.err(&format!(
                "warning: could not record the end of run {} on AWS ({error}); the next run may take it for unfinished: see `privlink-restart status --cluster {cluster}`\n",
                run_id.0
            ));
        }
        if outcome.aws_error || outcome.journal_error {
            // The rollout lost AWS or its journal: nothing more could be started or followed.
            console.err(&resume_hint(&inventory.cluster.region, &cluster));
            return Ok(exit::USAGE);
        }
        if outcome.stopped {
            console.err(&format!(
                "Stopped: {}. Restarts under way were followed to their end and the journal is written.\n",
                outcome.halted.as_deref().unwrap_or("on request")
            ));
            // Another run took the lease over: it goes on, a resume here would be refused.
            if matches!(*lease_status.borrow(), LeaseStatus::Lost { .. }) {
                console.err(&format!(
                    "Another run holds cluster {cluster} now and goes on from here: `privlink-restart status --cluster {cluster}` shows it.\n"
                ));
                return Ok(exit::STOPPED);
            }
            let limits = &cutover.rollout.limits;
            if outcome.out_of_time {
                let next = outcome
                    .resumes_at
                    .and_then(|at| jiff::Timestamp::from_second(at).ok());
                console.err(&match next {
                    Some(at) => format!("It resumes at the next window: {}.\n", limits.local(at)),
                    None => "No window opens before the deadline: resume when there is time again.\n".into(),
                });
            }
            // The deadline still holds for a resume in the next window (as a time: a
            // duration would count from the resume).
            let deadline = limits.deadline.filter(|_| outcome.resumes_at.is_some());
            console.err(&resume_hint_within(
                &inventory.cluster.region,
                &cluster,
                &limits.schedule,
                deadline,
            ));
            return Ok(exit::STOPPED);
        }
        let clean = outcome.halted.is_none()
            && outcome.count("failed") == 0
            && outcome.count("pending") == 0;
        Ok(if clean { exit::OK } else { exit::BLOCKED })
    }
    .await;
    // The lease goes whatever happened; a run that cannot release it lets it expire.
    if let Err(error) = lease.into_inner().release(fleet).await {
        console.err(&format!(
            "warning: could not release the lease on cluster {cluster} ({error}); it expires on its own within three --lease-interval, and until then other runs are refused\n"
        ));
    }
    code
}

/// The dry run's estimate: the plan rehearsed on a simulated copy of the cluster
/// (`rollout::rehearse`). Its services and tasks are read only where the fallback will
/// drain. Restarts an earlier run left under way are rehearsed as restarts to do.
async fn estimate<F: Fleet, C: Clock + ?Sized>(
    fleet: &F,
    clock: &C,
    inventory: &crate::inventory::Inventory,
    plan: &RolloutPlan,
    cutover: &CutoverPlan,
    measured: &Estimates,
) -> Result<Rehearsal, String> {
    let drains = cutover.rollout.fallback.strategy != crate::rollout::run::Strategy::Restart
        && plan
            .preset
            .iter()
            .any(|(_, s)| matches!(s, InstanceState::NeedsReboot { .. }));
    let workload = if drains {
        Some(
            fleet
                .workload(&inventory.cluster.name)
                .await
                .map_err(|e| format!("cannot read the cluster's services and tasks: {e}"))?,
        )
    } else {
        None
    };
    let ids: BTreeMap<&str, &str> = inventory
        .container_instances
        .iter()
        .map(|ci| (ci.arn.as_str(), ci.ec2_instance_id.as_str()))
        .collect();
    let script = Script {
        targets: plan.targets.iter().map(|t| t.instance_id.clone()).collect(),
        preset: plan
            .preset
            .iter()
            .filter(|(_, s)| !s.is_in_flight())
            .cloned()
            .collect(),
        bystanders: plan
            .bystanders
            .iter()
            .filter_map(|arn| ids.get(arn.as_str()).map(|id| id.to_string()))
            .collect(),
    };
    let blueprint = Blueprint {
        inventory,
        targets: &plan.targets,
        workload: workload.as_ref(),
    };
    Ok(rehearse(
        &blueprint,
        &script,
        &cutover.rollout,
        measured,
        clock.now(),
        REHEARSAL_SEED,
    ))
}

/// The rehearsal's latencies repeat from one dry run to the next.
const REHEARSAL_SEED: u64 = 0x5eed;

/// The pending targets SSM reaches whose agent the probe shows on the endpoints already,
/// with the verdicts. None with `--restart-all` or `--verify none`.
async fn already_private<F: Fleet>(
    fleet: &F,
    site: &ProbeSite,
    plan: &RolloutPlan,
    cutover: &CutoverPlan,
) -> Result<BTreeMap<String, Verdict>, FleetError> {
    if cutover.restart_all || cutover.rollout.verify == Some(VerifyMode::None) {
        return Ok(BTreeMap::new());
    }
    let candidates: Vec<(String, Platform)> = plan
        .targets
        .iter()
        .filter(|t| t.no_ssm.is_none())
        .filter(|t| probe_first(plan, &t.instance_id))
        .map(|t| (t.instance_id.clone(), t.platform))
        .collect();
    if candidates.is_empty() {
        return Ok(BTreeMap::new());
    }
    let prober = Prober {
        fleet,
        site,
        config: cutover.rollout.probe_config(),
    };
    let mut verdicts = prober.verdicts(&candidates).await?;
    verdicts.retain(|_, v| v.path == Path::Private);
    Ok(verdicts)
}

/// Whether a target still has work ahead that an agent already on the endpoints does
/// not need: a restart (pending), or a reboot (`--strategy reboot`, or an earlier
/// session's restart that did not work).
fn probe_first(plan: &RolloutPlan, id: &str) -> bool {
    match plan.preset.iter().find(|(p, _)| p == id) {
        None | Some((_, InstanceState::NeedsReboot { .. })) => true,
        Some(_) => false,
    }
}

/// Skips the targets already on the endpoints and plans the waves without them.
fn skip_private(
    plan: &mut RolloutPlan,
    already: &BTreeMap<String, Verdict>,
    cutover: &CutoverPlan,
) {
    for (id, verdict) in already {
        if plan.targets.iter().any(|t| &t.instance_id == id) && probe_first(plan, id) {
            plan.preset.retain(|(p, _)| p != id);
            plan.preset.push((
                id.clone(),
                InstanceState::Skipped {
                    reason: match (verdict.acs, verdict.tcs) {
                        (Some(acs), Some(tcs)) => {
                            format!("agent already on the endpoints: ACS {acs}, TCS {tcs}")
                        }
                        _ => format!("agent already on the endpoints: {}", verdict.reason),
                    },
                },
            ));
        }
    }
    replan_waves(plan, cutover);
}

/// The waves over the targets that have no state yet.
fn replan_waves(plan: &mut RolloutPlan, cutover: &CutoverPlan) {
    let pending: Vec<Candidate> = plan
        .targets
        .iter()
        .filter(|t| !plan.preset.iter().any(|(id, _)| id == &t.instance_id))
        .map(|t| Candidate {
            instance_id: t.instance_id.clone(),
            availability_zone: t.availability_zone.clone(),
        })
        .collect();
    // As wide as the run will make them: a share of everything it moves.
    let width = cutover.rollout.waves.max_unavailable.resolve(plan.moves());
    let policy = crate::rollout::waves::WavePolicy {
        max_unavailable: crate::rollout::waves::MaxUnavailable::Count(
            u32::try_from(width).unwrap_or(u32::MAX),
        ),
        ..cutover.rollout.waves
    };
    plan.waves = plan_waves(&pending, policy);
}

fn resume_hint(region: &str, cluster: &str) -> String {
    format!("Resume with: privlink-restart --region {region} --cluster {cluster} --resume\n")
}

/// The resume command, inside the same windows (a resume without them would start at
/// once) and before the same deadline.
fn resume_hint_within(
    region: &str,
    cluster: &str,
    schedule: &crate::window::Schedule,
    deadline: Option<jiff::Timestamp>,
) -> String {
    let windows: String = schedule
        .windows
        .iter()
        .map(|w| format!(" --window '{w}'"))
        .collect();
    let deadline = deadline.map_or(String::new(), |d| format!(" --deadline {d}"));
    format!(
        "Resume with: privlink-restart --region {region} --cluster {cluster} --resume{windows}{deadline}\n"
    )
}

/// The journal's name for this cluster.
pub fn journal_key(cluster: &crate::inventory::Cluster) -> JournalKey {
    JournalKey {
        account: cluster
            .account
            .clone()
            .unwrap_or_else(|| "unknown-account".into()),
        region: cluster.region.clone(),
        cluster: cluster.name.clone(),
    }
}

/// The cluster's journal; with `--fresh`, one of another schema version is set aside
/// (archived later) rather than refused.
fn load_journal(
    store: Option<&JournalStore>,
    key: &JournalKey,
    fresh: bool,
) -> Result<Option<Journal>, JournalError> {
    let Some(store) = store else {
        return Ok(None);
    };
    match store.load(key) {
        // Archived once the fresh run has the lease.
        Err(JournalError::Unsupported { .. }) if fresh => Ok(None),
        other => other,
    }
}

fn save(store: Option<&JournalStore>, journal: &Journal) -> Result<(), JournalError> {
    store.map_or(Ok(()), |store| store.save(journal))
}

async fn write_run_record<F: Fleet>(
    fleet: &F,
    cluster: &str,
    run: &RunId,
    status: RunStatus,
    started: i64,
    updated: i64,
) -> Result<(), FleetError> {
    let record = RunRecord {
        schema: RUN_RECORD_SCHEMA,
        run: run.clone(),
        status,
        started,
        updated,
    };
    let value = record.encode();
    crate::fleet::patiently(|| fleet.write_record(cluster, Record::Run, &value, true))
        .await
        .map(drop)
}

/// Takes what an unfinished run did into the plan: its done instances are not touched
/// again, its restarts under way are followed rather than sent again.
fn apply_prior(plan: &mut RolloutPlan, prior: &Prior, cutover: &CutoverPlan) {
    let run = prior
        .run
        .as_ref()
        .map(|(r, _)| r.0.clone())
        .unwrap_or_default();
    plan.targets.retain(|target| {
        let Some(done) = prior.done.get(&target.instance_id) else {
            return true;
        };
        let state = match &done.evidence {
            Some(evidence) => InstanceState::Done {
                evidence: evidence.clone(),
            },
            None => InstanceState::Skipped {
                reason: format!(
                    "done earlier in run {run} at {}",
                    crate::clock::rfc3339(done.at)
                ),
            },
        };
        plan.preset.push((target.instance_id.clone(), state));
        false
    });
    for target in &plan.targets {
        let state = match prior.in_flight.get(&target.instance_id) {
            // A drain or reboot cut short: settling put back what it changed; it starts
            // over when its turn comes.
            Some(state) if state.is_in_fallback() => InstanceState::NeedsReboot {
                reason: format!(
                    "the earlier run's {} was cut short; what it changed was put back",
                    state.name()
                ),
            },
            Some(state) => state.clone(),
            None => continue,
        };
        plan.preset.retain(|(id, _)| id != &target.instance_id);
        plan.preset.push((target.instance_id.clone(), state));
    }
    replan_waves(plan, cutover);
}

/// Every instance's zone and planned action, for the summary table.
fn summary_rows(
    inventory: &crate::inventory::Inventory,
    plan: &RolloutPlan,
) -> BTreeMap<String, SummaryRow> {
    let mut rows: BTreeMap<String, SummaryRow> = plan
        .preset
        .iter()
        .map(|(id, state)| {
            let action = match state.name() {
                "needs-reboot" => "reboot",
                "restarting" | "reconnecting" => "restart",
                _ => "none",
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
    for target in &plan.targets {
        rows.entry(target.instance_id.clone())
            .or_insert_with(|| SummaryRow {
                zone: target.availability_zone.clone(),
                action: "restart",
            })
            .zone
            .clone_from(&target.availability_zone);
    }
    rows
}

#[cfg(test)]
mod estimate_tests;
#[cfg(test)]
mod fault_matrix;
#[cfg(test)]
mod property_tests;
#[cfg(test)]
mod resume_tests;
#[cfg(test)]
mod window_tests;

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::clock::SimClock;
    use crate::fleet::sim::{Fault, Latencies, SimFleet, SimInstance};
    use crate::rollout::run::Strategy;

    #[derive(Default)]
    pub(super) struct Recorder {
        pub(super) out: String,
        pub(super) err: String,
        pub(super) answer: Option<bool>,
        pub(super) asked: bool,
        pub(super) question: String,
        /// When the rollout's JSON `halted` event was printed (virtual time).
        pub(super) halted_at: Option<tokio::time::Instant>,
    }

    impl Console for Recorder {
        fn out(&mut self, text: &str) {
            if self.halted_at.is_none() && text.contains(r#""event":"halted""#) {
                self.halted_at = Some(tokio::time::Instant::now());
            }
            self.out.push_str(text);
        }
        fn err(&mut self, text: &str) {
            self.err.push_str(text);
        }
        fn confirm(&mut self, question: &str) -> Option<bool> {
            self.asked = true;
            self.question = question.to_string();
            self.answer
        }
        fn colour(&self) -> Colour {
            Colour::Off
        }
        fn progress_visible(&self) -> bool {
            false
        }
    }

    pub(super) fn cutover(output: OutputFormat) -> CutoverPlan {
        CutoverPlan {
            cluster: "sim".into(),
            preflight: PreflightOptions::default(),
            selection: Selection::default(),
            rollout: RolloutConfig::default(),
            dry_run: false,
            assume_yes: false,
            force: false,
            restart_all: false,
            no_wait: false,
            output,
            durability: Durability::default(),
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
    async fn the_prompt_says_what_will_be_rebooted_and_a_no_changes_nothing() {
        let mut fleet_instances = instances(3);
        fleet_instances[1] = fleet_instances[1].clone().with_fault(Fault::SsmOffline);
        let sim = fleet(fleet_instances);
        let clock = SimClock::starting_at(SystemTime::UNIX_EPOCH);
        let mut console = Recorder {
            answer: Some(false),
            ..Default::default()
        };
        let code = run(
            &sim,
            &clock,
            &cutover(OutputFormat::Human),
            &mut console,
            &StopSignal::default(),
        )
        .await
        .unwrap();
        assert_eq!(code, exit::BLOCKED);
        assert_eq!(
            console.question,
            "Restart 2 ECS agent(s) in 2 wave(s), then drain and reboot 1 instance(s), 1 at a time on cluster sim? [y/N] "
        );
        assert!(sim.sent_commands().is_empty());
        assert_eq!(sim.reboots_of("i-001"), 0);
    }

    /// Runs the cutover with `--yes` (tuned by `tune`); returns the exit code and console.
    async fn run_yes(sim: &SimFleet, tune: impl Fn(&mut CutoverPlan)) -> (i32, Recorder) {
        let clock = SimClock::starting_at(SystemTime::UNIX_EPOCH);
        let mut plan = cutover(OutputFormat::Human);
        plan.assume_yes = true;
        tune(&mut plan);
        let mut console = Recorder::default();
        let code = run(sim, &clock, &plan, &mut console, &StopSignal::default())
            .await
            .unwrap();
        (code, console)
    }

    #[tokio::test(start_paused = true)]
    async fn agents_already_on_the_endpoints_are_skipped_with_their_evidence() {
        let mut fleet_instances = instances(4);
        for i in [0, 2] {
            fleet_instances[i] = fleet_instances[i].clone().already_private();
        }
        let sim = fleet(fleet_instances);
        let (code, console) = run_yes(&sim, |_| {}).await;
        assert_eq!(code, exit::OK, "{}{}", console.err, console.out);
        assert!(
            console
                .err
                .contains("Probe: 2 agent(s) already use the endpoints and are skipped"),
            "{}",
            console.err
        );
        assert_eq!(sim.restarts_sent("i-000"), 0);
        assert_eq!(sim.restarts_sent("i-002"), 0);
        assert_eq!(sim.restarts_sent("i-001"), 1);
        let line = console
            .out
            .lines()
            .find(|l| l.starts_with("i-000"))
            .unwrap();
        assert!(
            line.contains("skipped") && line.contains("already on the endpoints: ACS 10.0.16.4"),
            "{line}"
        );
        assert!(
            console
                .out
                .contains("4 agents are on the endpoints, proven by the path probe."),
            "{}",
            console.out
        );
    }

    #[tokio::test(start_paused = true)]
    async fn restart_all_restarts_agents_already_on_the_endpoints_and_none_skips_the_probe() {
        let fleet_instances: Vec<SimInstance> = instances(2)
            .into_iter()
            .map(SimInstance::already_private)
            .collect();
        let sim = fleet(fleet_instances.clone());
        let (code, console) = run_yes(&sim, |plan| plan.restart_all = true).await;
        assert_eq!(code, exit::OK, "{}{}", console.err, console.out);
        assert_eq!(sim.sent_commands().len(), 2, "both restarted");
        // Nothing to do when every agent is on the endpoints already: nothing is sent.
        let sim = fleet(fleet_instances.clone());
        let (code, console) = run_yes(&sim, |_| {}).await;
        assert_eq!(code, exit::OK);
        assert!(
            console
                .err
                .contains("Nothing to restart: 2 agent(s) already use the endpoints."),
            "{}",
            console.err
        );
        assert!(sim.sent_commands().is_empty());
        // --verify none sends no probe: both restarted, one command each wave.
        let sim = fleet(fleet_instances);
        let (code, _) = run_yes(&sim, |plan| plan.rollout.verify = Some(VerifyMode::None)).await;
        assert_eq!(code, exit::OK);
        assert_eq!(
            sim.request_counts()["ssm:SendCommand"] as usize,
            sim.sent_commands().len()
        );
        assert_eq!(sim.sent_commands().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn strategy_reboot_leaves_agents_already_on_the_endpoints_alone() {
        let mut fleet_instances = instances(2);
        fleet_instances[0] = fleet_instances[0].clone().already_private();
        let sim = fleet(fleet_instances);
        let (code, console) = run_yes(&sim, |plan| {
            plan.rollout.fallback.strategy = Strategy::Reboot;
        })
        .await;
        assert_eq!(code, exit::OK, "{}{}", console.err, console.out);
        assert_eq!(sim.reboots_of("i-000"), 0, "{}", console.out);
        assert_eq!(sim.reboots_of("i-001"), 1, "{}", console.out);
    }

    #[tokio::test(start_paused = true)]
    async fn confirmed_run_restarts_everyone_and_summarizes() {
        let sim = fleet(instances(5));
        let clock = SimClock::starting_at(SystemTime::UNIX_EPOCH);
        let mut console = Recorder {
            answer: Some(true),
            ..Default::default()
        };
        let code = run(
            &sim,
            &clock,
            &cutover(OutputFormat::Human),
            &mut console,
            &StopSignal::default(),
        )
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
        run(&sim, &clock, &plan, &mut console, &StopSignal::default())
            .await
            .unwrap();
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
            let code = run(
                &sim,
                &clock,
                &cutover(OutputFormat::Human),
                &mut console,
                &StopSignal::default(),
            )
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
        let code = run(&sim, &clock, &plan, &mut console, &StopSignal::default())
            .await
            .unwrap();
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
        let code = run(&sim, &clock, &plan, &mut console, &StopSignal::default())
            .await
            .unwrap();
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
        plan.rollout.fallback.strategy = Strategy::Restart;
        let mut console = Recorder::default();
        let code = run(&sim, &clock, &plan, &mut console, &StopSignal::default())
            .await
            .unwrap();
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
