//! Wall-clock time for the parts that need it (timestamps in events and evidence checks,
//! later leases and windows), passed in so simulated runs use virtual time. Durations and
//! timeouts use `tokio::time` directly, which tests pause and advance.

use std::time::SystemTime;

/// Where wall-clock time comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A fixed start plus the time tokio has let pass since it was made: with
/// `tokio::time::pause` this is virtual time that advances only when the runtime does.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    start: SystemTime,
    origin: tokio::time::Instant,
}

impl SimClock {
    pub fn starting_at(start: SystemTime) -> SimClock {
        SimClock {
            start,
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for SimClock {
    fn now(&self) -> SystemTime {
        self.start + self.origin.elapsed()
    }
}

/// Seconds since the Unix epoch, the unit the on-instance evidence uses.
pub fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// A Unix time as RFC 3339 in UTC (`2026-11-26T18:03:35Z`), for messages and records.
pub fn rfc3339(unix: i64) -> String {
    jiff::Timestamp::from_second(unix).map_or_else(|_| unix.to_string(), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn sim_clock_moves_with_virtual_time_only() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let clock = SimClock::starting_at(start);
        assert_eq!(clock.now(), start);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(clock.now(), start + Duration::from_secs(3600));
        assert_eq!(unix_seconds(clock.now()), 1_800_003_600);
    }

    #[test]
    fn times_print_as_rfc3339_in_utc() {
        assert_eq!(rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
    }

    #[test]
    fn unix_seconds_before_the_epoch_are_negative() {
        assert_eq!(
            unix_seconds(SystemTime::UNIX_EPOCH - Duration::from_secs(5)),
            -5
        );
    }
}
