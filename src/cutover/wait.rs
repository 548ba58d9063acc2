//! Waiting for the maintenance window before anything changes (`--window`, `--deadline`,
//! `--no-wait`). Once the rollout runs, each step checks its own fit (`rollout::run`).

use std::time::Duration;

use jiff::Timestamp;

use super::{Console, CutoverPlan};
use crate::clock::Clock;
use crate::exit;
use crate::report::humantime;
use crate::window::TimeLimits;

/// How often a wait that nobody watches on a terminal says it is still waiting: a
/// pipeline's log shows the run alive.
const NOTE_EVERY: Duration = Duration::from_secs(30 * 60);

/// When the next window opens (in its zone), if the run is outside the windows now.
pub(super) fn opening<C: Clock + ?Sized>(clock: &C, limits: &TimeLimits) -> Option<String> {
    let now = Timestamp::try_from(clock.now()).ok()?;
    if limits.schedule.contains(now) {
        return None;
    }
    limits.schedule.next_open(now).map(|at| limits.local(at))
}

/// Before anything is read: a run that cannot start (past its deadline, the next window
/// after it, or outside the windows with `--no-wait`) says so and returns exit 3 at once.
/// A dry run always goes on: it shows the plan whatever the time.
pub(super) fn refuse_early<C: Clock + ?Sized>(
    clock: &C,
    cutover: &CutoverPlan,
    console: &mut dyn Console,
) -> Option<i32> {
    if cutover.dry_run {
        return None;
    }
    admit(clock, cutover, console)
}

/// Inside a window (or without any) the run goes on: `None`. Outside, it waits until one
/// opens, or with `--no-wait` returns exit 3 at once; past the deadline (or with the next
/// window after it), exit 3. Nothing has changed yet, so an interrupt while waiting just
/// ends the process.
pub(super) async fn await_window<C: Clock + ?Sized>(
    clock: &C,
    cutover: &CutoverPlan,
    console: &mut dyn Console,
) -> Option<i32> {
    if let Some(code) = admit(clock, cutover, console) {
        return Some(code);
    }
    let limits = &cutover.rollout.limits;
    let now = Timestamp::try_from(clock.now()).ok()?;
    if limits.schedule.contains(now) {
        return None;
    }
    let opens = limits.schedule.next_open(now)?;
    let local = limits.local(opens);
    let until =
        |now: Timestamp| Duration::try_from(opens.duration_since(now)).unwrap_or(Duration::ZERO);
    console.err(&format!(
        "Waiting for the maintenance window: it opens at {local} (in {}). Nothing has been changed yet; Ctrl-C stops here.\n",
        humantime(until(now))
    ));
    let spinner = console.progress_visible().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let mut noted = tokio::time::Instant::now();
    loop {
        // The clock is read again each time: a machine that slept or had its clock
        // corrected still starts when the window opens, not after a fixed sleep.
        let Ok(now) = Timestamp::try_from(clock.now()) else {
            console.err("Not started: cannot read the time while waiting for the window. Nothing was changed.\n");
            return Some(exit::STOPPED);
        };
        let left = until(now);
        if left.is_zero() {
            break;
        }
        if let Some(bar) = &spinner {
            bar.set_message(format!(
                "the window opens at {local}, in {}",
                humantime(left)
            ));
        } else if noted.elapsed() >= NOTE_EVERY {
            noted = tokio::time::Instant::now();
            console.err(&format!(
                "Still waiting: the window opens at {local}, in {}.\n",
                humantime(left)
            ));
        }
        let step = if spinner.is_some() {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(60)
        };
        tokio::time::sleep(left.min(step)).await;
    }
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    console.err(&format!(
        "The maintenance window is open ({local}): starting.\n"
    ));
    None
}

/// Whether the run may go on (`None`: inside a window, or outside to wait for one) or
/// stops with exit 3, with a message saying why.
fn admit<C: Clock + ?Sized>(
    clock: &C,
    cutover: &CutoverPlan,
    console: &mut dyn Console,
) -> Option<i32> {
    let limits = &cutover.rollout.limits;
    if limits.is_none() {
        return None;
    }
    let now = match Timestamp::try_from(clock.now()) {
        Ok(now) => now,
        Err(error) => {
            console.err(&format!(
                "Not started: cannot read the time to check --window/--deadline ({error}). Nothing was changed.\n"
            ));
            return Some(exit::STOPPED);
        }
    };
    if let Some(deadline) = limits.deadline.filter(|d| now >= *d) {
        console.err(&format!(
            "Not started: the deadline {deadline} has passed. Nothing was changed; pass a later --deadline.\n"
        ));
        return Some(exit::STOPPED);
    }
    if limits.schedule.contains(now) {
        return None;
    }
    let Some(opens) = limits.schedule.next_open(now) else {
        console
            .err("Not started: no maintenance window opens within a week. Nothing was changed.\n");
        return Some(exit::STOPPED);
    };
    let local = limits.local(opens);
    if let Some(deadline) = limits.deadline.filter(|d| opens >= *d) {
        console.err(&format!(
            "Not started: the next maintenance window opens at {local}, after the deadline {deadline}. Nothing was changed; move --deadline or --window.\n"
        ));
        return Some(exit::STOPPED);
    }
    let until =
        |now: Timestamp| Duration::try_from(opens.duration_since(now)).unwrap_or(Duration::ZERO);
    if cutover.no_wait {
        console.err(&format!(
            "Not started: outside the maintenance windows; the next opens at {local} (in {}). Nothing was changed. Run again then, or without --no-wait to wait for it.\n",
            humantime(until(now))
        ));
        return Some(exit::STOPPED);
    }
    None
}
