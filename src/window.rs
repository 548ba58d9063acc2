//! Maintenance windows (`--window "Sat,Sun 02:00-05:00 Europe/Berlin"`) and deadlines
//! (`--deadline 2026-12-01T06:00Z` or `--deadline 90m`), as plain data with the time
//! passed in: the rollout asks whether a step that takes this long still fits.
//!
//! Time zones come from the IANA database bundled with `jiff`, so a window means the same
//! on every machine. A range that crosses midnight belongs to the day it starts
//! ("Mon-Fri 22:00-06:00" opens Friday night and closes Saturday morning). Local times
//! that a daylight-saving change skips or repeats are resolved as `jiff` does for
//! "compatible" disambiguation: a skipped time moves forward by the gap, a repeated one
//! takes its first occurrence.

use std::fmt;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Days of the week, Monday first.
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FULL_DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// One window spec: the days it opens on, from and to a local time, in a time zone.
#[derive(Debug, Clone)]
pub struct Window {
    spec: String,
    /// Monday first.
    days: [bool; 7],
    start: Time,
    /// `None`: midnight at the end of the day (`24:00`).
    end: Option<Time>,
    tz: TimeZone,
}

/// A spec that does not parse, and the part of it that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid window \"{spec}\": {part:?} {why}; expected e.g. \"Sat,Sun 02:00-05:00 Europe/Berlin\"")]
pub struct WindowError {
    pub spec: String,
    pub part: String,
    pub why: String,
}

impl Window {
    pub fn parse(spec: &str) -> Result<Window, WindowError> {
        let fail = |part: &str, why: &str| WindowError {
            spec: spec.to_string(),
            part: part.to_string(),
            why: why.to_string(),
        };
        let parts: Vec<&str> = spec.split_whitespace().collect();
        let [days, range, zone] = parts[..] else {
            return Err(fail(
                spec,
                "needs three parts: days, a time range and a time zone",
            ));
        };
        let days = parse_days(days).map_err(|(part, why)| fail(&part, why))?;
        let (start, end) = range
            .split_once('-')
            .ok_or_else(|| fail(range, "is not a time range (HH:MM-HH:MM)"))?;
        let start = parse_time(start).ok_or_else(|| fail(start, "is not a time (HH:MM)"))?;
        let end = match end {
            "24:00" => None,
            _ => Some(parse_time(end).ok_or_else(|| fail(end, "is not a time (HH:MM)"))?),
        };
        if Some(start) == end {
            return Err(fail(range, "opens and closes at the same time"));
        }
        let tz = TimeZone::get(zone)
            .map_err(|_| fail(zone, "is not an IANA time zone (e.g. UTC, Europe/Berlin)"))?;
        Ok(Window {
            spec: spec.to_string(),
            days,
            start,
            end,
            tz,
        })
    }

    /// The occurrence that starts on local `date`, if the window opens that day:
    /// (opens, closes).
    fn occurrence(&self, date: Date) -> Option<(Timestamp, Timestamp)> {
        let weekday = usize::try_from(date.weekday().to_monday_zero_offset()).ok()?;
        if !self.days[weekday] {
            return None;
        }
        let opens = self.tz.to_timestamp(date.to_datetime(self.start)).ok()?;
        let closes = match self.end {
            Some(end) if end > self.start => self.tz.to_timestamp(date.to_datetime(end)),
            Some(end) => self.tz.to_timestamp(date.tomorrow().ok()?.to_datetime(end)),
            None => self
                .tz
                .to_timestamp(date.tomorrow().ok()?.to_datetime(Time::midnight())),
        }
        .ok()?;
        (opens < closes).then_some((opens, closes))
    }

    /// The occurrences that could matter around `at`: from the day before its local date
    /// (a range crossing midnight) to a week after.
    fn occurrences_near(&self, at: Timestamp) -> impl Iterator<Item = (Timestamp, Timestamp)> + '_ {
        let today = self.tz.to_datetime(at).date();
        (-1..=8).filter_map(move |offset: i64| {
            let date = today.checked_add(jiff::Span::new().days(offset)).ok()?;
            self.occurrence(date)
        })
    }

    /// Whether the window is open at `at`.
    pub fn contains(&self, at: Timestamp) -> bool {
        self.closes_at(at).is_some()
    }

    /// When the occurrence open at `at` closes; `None` when the window is closed then.
    pub fn closes_at(&self, at: Timestamp) -> Option<Timestamp> {
        self.occurrences_near(at)
            .filter(|(opens, closes)| *opens <= at && at < *closes)
            .map(|(_, closes)| closes)
            .max()
    }

    /// When the window next opens at or after `at` (`at` itself when it is open).
    pub fn next_open(&self, at: Timestamp) -> Option<Timestamp> {
        if self.contains(at) {
            return Some(at);
        }
        self.occurrences_near(at)
            .map(|(opens, _)| opens)
            .filter(|opens| *opens >= at)
            .min()
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

/// Two windows are the same when their specs are: the spec is all there is to one.
impl PartialEq for Window {
    fn eq(&self, other: &Window) -> bool {
        self.spec == other.spec
    }
}

impl Eq for Window {}

/// Every `--window` given: open when any of them is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedule {
    pub windows: Vec<Window>,
}

impl Schedule {
    /// No window: always open.
    pub fn is_always(&self) -> bool {
        self.windows.is_empty()
    }

    pub fn contains(&self, at: Timestamp) -> bool {
        self.is_always() || self.windows.iter().any(|w| w.contains(at))
    }

    /// When the schedule closes if open at `at`: windows that overlap or touch are one
    /// stretch. `None` when closed, or always open. Windows that cover the whole week
    /// never close: the stretch is followed for a week, and a close further than that is
    /// as good as none.
    pub fn closes_at(&self, at: Timestamp) -> Option<Timestamp> {
        let mut close = self.windows.iter().filter_map(|w| w.closes_at(at)).max()?;
        let horizon = at
            .checked_add(jiff::SignedDuration::from_hours(24 * 8))
            .unwrap_or(Timestamp::MAX);
        // A window open at the moment another closes carries on.
        while close < horizon {
            let Some(later) = self
                .windows
                .iter()
                .filter_map(|w| w.closes_at(close))
                .max()
                .filter(|later| *later > close)
            else {
                break;
            };
            close = later;
        }
        Some(close)
    }

    /// When the schedule next opens at or after `at` (`at` when open now).
    pub fn next_open(&self, at: Timestamp) -> Option<Timestamp> {
        if self.is_always() {
            return Some(at);
        }
        self.windows.iter().filter_map(|w| w.next_open(at)).min()
    }

    /// `at` as the operator wrote their windows: in the zone of the window open (or
    /// opening) then, else the first window's, else UTC: "Sat 2026-11-28 02:00 CET".
    pub fn local(&self, at: Timestamp) -> String {
        let tz = self
            .windows
            .iter()
            .find(|w| w.next_open(at) == Some(at))
            .or(self.windows.first())
            .map_or(TimeZone::UTC, |w| w.tz.clone());
        at.to_zoned_datetime(tz)
            .strftime("%a %Y-%m-%d %H:%M %Z")
            .to_string()
    }
}

/// When a run may work: its windows (`--window`) and its deadline (`--deadline`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeLimits {
    pub schedule: Schedule,
    pub deadline: Option<Timestamp>,
}

impl TimeLimits {
    /// Neither windows nor a deadline: any time will do.
    pub fn is_none(&self) -> bool {
        self.schedule.is_always() && self.deadline.is_none()
    }

    /// Whether a step expected to take `expected` may start at `now`.
    pub fn may_start(&self, now: Timestamp, expected: std::time::Duration) -> Start {
        may_start(&self.schedule, self.deadline, now, expected)
    }

    /// `at` in the windows' time zone (see [`Schedule::local`]).
    pub fn local(&self, at: Timestamp) -> String {
        self.schedule.local(at)
    }
}

fn parse_time(raw: &str) -> Option<Time> {
    let (h, m) = raw.split_once(':')?;
    let digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || !digits(m) {
        return None;
    }
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    Time::new(h, m, 0, 0).ok()
}

fn day_index(raw: &str) -> Option<usize> {
    let lower = raw.to_ascii_lowercase();
    DAYS.iter()
        .position(|d| *d == lower)
        .or_else(|| FULL_DAYS.iter().position(|d| *d == lower))
}

/// `Mon-Fri`, `Sat,Sun`, `Fri-Mon` (wrapping), `Mon,Wed-Fri`.
fn parse_days(raw: &str) -> Result<[bool; 7], (String, &'static str)> {
    let mut days = [false; 7];
    for item in raw.split(',') {
        let (from, to) = item.split_once('-').unwrap_or((item, item));
        let from = day_index(from).ok_or((from.to_string(), "is not a day (Mon…Sun)"))?;
        let to = day_index(to).ok_or((to.to_string(), "is not a day (Mon…Sun)"))?;
        let mut day = from;
        loop {
            days[day] = true;
            if day == to {
                break;
            }
            day = (day + 1) % 7;
        }
    }
    Ok(days)
}

/// `--deadline`: a time (`2026-12-01T06:00Z`, `2026-12-01T07:00:00+01:00`) or a duration
/// from `now` (`90m`, `2h`).
pub fn parse_deadline(raw: &str, now: Timestamp) -> Result<Timestamp, String> {
    if let Ok(at) = raw.parse::<Timestamp>() {
        return Ok(at);
    }
    let duration = crate::plan::parse_duration(raw).map_err(|_| {
        format!(
            "{raw:?} is neither a time with an offset (2026-12-01T06:00Z) nor a duration (90m, 2h)"
        )
    })?;
    let span = jiff::SignedDuration::try_from(duration).map_err(|e| e.to_string())?;
    now.checked_add(span).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;

/// Whether a step expected to take `expected` may start at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// It fits before the schedule closes and before the deadline.
    Go,
    /// Outside every window: the schedule next opens at this time.
    WaitUntil(Timestamp),
    /// It would not finish in time; why, and when the next window opens (if any) for
    /// the command that resumes.
    Stop {
        why: String,
        resumes_at: Option<Timestamp>,
    },
}

/// The start decision for a step: inside a window only, and only if its expected
/// duration ends before the window closes and before the deadline.
pub fn may_start(
    schedule: &Schedule,
    deadline: Option<Timestamp>,
    now: Timestamp,
    expected: std::time::Duration,
) -> Start {
    let expected = jiff::SignedDuration::try_from(expected).unwrap_or(jiff::SignedDuration::MAX);
    let ends = now.checked_add(expected).unwrap_or(Timestamp::MAX);
    if let Some(deadline) = deadline {
        if ends > deadline {
            return Start::Stop {
                why: format!(
                    "the next step takes about {}s and would end after the deadline {deadline}",
                    expected.as_secs()
                ),
                resumes_at: None,
            };
        }
    }
    if !schedule.contains(now) {
        return match schedule.next_open(now) {
            Some(opens) => match deadline {
                Some(deadline) if opens.checked_add(expected).unwrap_or(Timestamp::MAX) > deadline => {
                    Start::Stop {
                        why: format!(
                            "outside the maintenance windows, and the next one opens ({opens}) too late to finish a step before the deadline {deadline}"
                        ),
                        resumes_at: None,
                    }
                }
                _ => Start::WaitUntil(opens),
            },
            None => Start::Stop {
                why: "no window opens within a week".into(),
                resumes_at: None,
            },
        };
    }
    match schedule.closes_at(now) {
        Some(closes) if ends > closes => {
            let after = closes
                .checked_add(jiff::SignedDuration::from_secs(1))
                .unwrap_or(closes);
            // The next window counts only if a step fits in it before the deadline.
            let resumes_at = schedule.next_open(after).filter(|opens| {
                deadline.is_none_or(|deadline| {
                    opens.checked_add(expected).unwrap_or(Timestamp::MAX) <= deadline
                })
            });
            Start::Stop {
                why: format!(
                    "the next step takes about {}s and would end after the window closes at {closes}",
                    expected.as_secs()
                ),
                resumes_at,
            }
        }
        _ => Start::Go,
    }
}
