//! One run per cluster, across machines: a lease kept in an SSM parameter
//! ([`Record::Lease`]), created only if absent, holding its owner, start and expiry,
//! renewed while the run goes on and deleted at its end.
//!
//! SSM has no compare-and-swap, so every write is followed by a read: a renewal reads the
//! lease, checks the owner is still this run, writes, and reads again to confirm. A holder
//! acts only while the expiry it last confirmed lies ahead on its own clock; another run
//! may break the lease only once it is expired by two of the holder's renewal intervals,
//! which leaves a stalled holder (a laptop waking from sleep) the margin to notice that it
//! lost the lease before it starts anything new. Wall-clock time comes from the
//! [`Clock`]; waits use tokio time, so all of this runs in virtual time in tests.

use std::cell::RefCell;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::{rfc3339, unix_seconds, Clock};
use crate::fleet::{Fleet, FleetError, Record};
use crate::journal::marks::RunId;

/// Who runs: enough for a colleague to find the run and its operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub run: RunId,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}@{} (pid {}, run {})",
            self.user, self.host, self.pid, self.run
        )
    }
}

/// The lease's value in the parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub schema: u32,
    pub owner: Owner,
    /// Unix seconds.
    pub started: i64,
    pub renewed: i64,
    pub expires: i64,
    /// The holder's renewal interval in seconds: a lease may be broken only once it is
    /// expired by two of them.
    pub renew_every: u64,
}

const LEASE_SCHEMA: u32 = 1;

impl LeaseRecord {
    /// The record in a parameter's value; `None` when it is not a lease this version reads.
    pub fn parse(value: &str) -> Option<LeaseRecord> {
        serde_json::from_str::<LeaseRecord>(value)
            .ok()
            .filter(|r| r.schema == LEASE_SCHEMA)
    }

    /// When another run may break the lease.
    pub fn breakable_at(&self) -> i64 {
        let interval = i64::try_from(self.renew_every).unwrap_or(i64::MAX);
        self.expires.saturating_add(interval.saturating_mul(2))
    }
}

/// How often the lease is renewed; it lasts three intervals, so one failed renewal
/// (AWS slow for a moment) does not lose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTerms {
    pub renew_every: Duration,
}

impl Default for LeaseTerms {
    fn default() -> Self {
        LeaseTerms {
            renew_every: Duration::from_secs(30),
        }
    }
}

impl LeaseTerms {
    fn lifetime(self) -> i64 {
        i64::try_from(3 * self.renew_every.as_secs().max(1)).unwrap_or(i64::MAX / 4)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("cluster {cluster} is held by {} since {}; its lease runs until {}. Wait for that run to end, or, if it is dead, pass --break-lease after {}", holder.owner, rfc3339(holder.started), rfc3339(holder.expires), rfc3339(holder.breakable_at()))]
    Held {
        cluster: String,
        holder: Box<LeaseRecord>,
    },
    #[error("cluster {cluster} is held by {} since {}, and its lease is not expired by two renewal intervals until {}; --break-lease takes over only a lease that old", holder.owner, rfc3339(holder.started), rfc3339(holder.breakable_at()))]
    NotBreakable {
        cluster: String,
        holder: Box<LeaseRecord>,
    },
    #[error("the lease {parameter} holds something this version cannot read ({value:?}); if no run is going on, delete it: aws ssm delete-parameter --name {parameter}")]
    Unreadable { parameter: String, value: String },
    #[error("lost the lease on cluster {cluster} to {by}")]
    Lost { cluster: String, by: String },
    #[error(transparent)]
    Fleet(#[from] FleetError),
}

/// The lease as this run holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    cluster: String,
    terms: LeaseTerms,
    record: LeaseRecord,
}

/// Takes the cluster's lease. With `break_expired`, takes over a lease expired by two of
/// its holder's renewal intervals, confirming after one interval that no other run took
/// it over at the same moment.
pub async fn acquire<F: Fleet, C: Clock + ?Sized>(
    fleet: &F,
    clock: &C,
    cluster: &str,
    owner: Owner,
    terms: LeaseTerms,
    break_expired: bool,
) -> Result<Lease, LeaseError> {
    let now = unix_seconds(clock.now());
    let mut lease = Lease {
        cluster: cluster.to_string(),
        terms,
        record: LeaseRecord {
            schema: LEASE_SCHEMA,
            owner,
            started: now,
            renewed: now,
            expires: now + terms.lifetime(),
            renew_every: terms.renew_every.as_secs().max(1),
        },
    };
    let value = lease.encode();
    if crate::fleet::patiently(|| fleet.write_record(cluster, Record::Lease, &value, false)).await?
    {
        if let Err(error) = lease.confirm(fleet).await {
            // Do not leave a lease behind that nobody keeps (release checks the owner).
            let _ = lease.release(fleet).await;
            return Err(error);
        }
        return Ok(lease);
    }
    let holder = lease.read(fleet).await?.ok_or_else(|| LeaseError::Lost {
        cluster: cluster.into(),
        by: "a run that released it while this one was taking it; try again".into(),
    })?;
    if holder == lease.record {
        // Our own record: an attempt whose answer was lost created it, and the retry found
        // it there. Read back as written, it is confirmed.
        return Ok(lease);
    }
    if !break_expired {
        return Err(LeaseError::Held {
            cluster: cluster.into(),
            holder: Box::new(holder),
        });
    }
    if now < holder.breakable_at() {
        return Err(LeaseError::NotBreakable {
            cluster: cluster.into(),
            holder: Box::new(holder),
        });
    }
    let value = lease.encode();
    crate::fleet::patiently(|| fleet.write_record(cluster, Record::Lease, &value, true)).await?;
    // Another run breaking the same lease at the same moment wrote too: after one
    // interval, the later write is what both read, and only its writer goes on.
    tokio::time::sleep(terms.renew_every).await;
    let confirmed = match lease.confirm(fleet).await {
        Ok(()) => lease.renew(fleet, clock).await,
        Err(error) => Err(error),
    };
    if let Err(error) = confirmed {
        let _ = lease.release(fleet).await;
        return Err(error);
    }
    Ok(lease)
}

/// Reads who holds the cluster now, without taking anything: `Ok` when the lease is free
/// (or, with `break_expired`, breakable), else why another run stands in the way.
pub async fn check_free<F: Fleet, C: Clock + ?Sized>(
    fleet: &F,
    clock: &C,
    cluster: &str,
    break_expired: bool,
) -> Result<(), LeaseError> {
    let Some(value) = crate::fleet::patiently(|| fleet.read_record(cluster, Record::Lease)).await?
    else {
        return Ok(());
    };
    let holder = LeaseRecord::parse(&value).ok_or_else(|| LeaseError::Unreadable {
        parameter: Record::Lease.parameter(cluster),
        value,
    })?;
    let now = unix_seconds(clock.now());
    match (break_expired, now >= holder.breakable_at()) {
        (true, true) => Ok(()),
        (true, false) => Err(LeaseError::NotBreakable {
            cluster: cluster.into(),
            holder: Box::new(holder),
        }),
        (false, _) => Err(LeaseError::Held {
            cluster: cluster.into(),
            holder: Box::new(holder),
        }),
    }
}

impl Lease {
    pub fn record(&self) -> &LeaseRecord {
        &self.record
    }

    pub fn renew_every(&self) -> Duration {
        self.terms.renew_every
    }

    fn encode(&self) -> String {
        serde_json::to_string(&self.record).unwrap_or_default()
    }

    async fn read<F: Fleet>(&self, fleet: &F) -> Result<Option<LeaseRecord>, LeaseError> {
        let Some(value) =
            crate::fleet::patiently(|| fleet.read_record(&self.cluster, Record::Lease)).await?
        else {
            return Ok(None);
        };
        LeaseRecord::parse(&value)
            .map(Some)
            .ok_or_else(|| LeaseError::Unreadable {
                parameter: Record::Lease.parameter(&self.cluster),
                value,
            })
    }

    /// Reads the lease back: it must be this run's, as last written.
    async fn confirm<F: Fleet>(&self, fleet: &F) -> Result<(), LeaseError> {
        match self.read(fleet).await {
            Ok(Some(record)) if record == self.record => Ok(()),
            Ok(Some(record)) => Err(self.lost(record.owner.to_string())),
            Ok(None) => Err(self.lost("nobody: the lease was deleted".into())),
            Err(LeaseError::Unreadable { value, .. }) => {
                Err(self.lost(format!("a record this run did not write ({value:?})")))
            }
            Err(other) => Err(other),
        }
    }

    fn lost(&self, by: String) -> LeaseError {
        LeaseError::Lost {
            cluster: self.cluster.clone(),
            by,
        }
    }

    /// Read, check the owner, write, read again.
    pub async fn renew<F: Fleet, C: Clock + ?Sized>(
        &mut self,
        fleet: &F,
        clock: &C,
    ) -> Result<(), LeaseError> {
        self.confirm(fleet).await?;
        let now = unix_seconds(clock.now());
        let mut next = self.clone();
        next.record.renewed = now;
        next.record.expires = now + self.terms.lifetime();
        let value = next.encode();
        crate::fleet::patiently(|| fleet.write_record(&self.cluster, Record::Lease, &value, true))
            .await?;
        next.confirm(fleet).await?;
        *self = next;
        Ok(())
    }

    /// Deletes the lease if it is still this run's.
    pub async fn release<F: Fleet>(&self, fleet: &F) -> Result<(), LeaseError> {
        match self.read(fleet).await? {
            Some(record) if record.owner == self.record.owner => {
                crate::fleet::patiently(|| fleet.delete_record(&self.cluster, Record::Lease))
                    .await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The lease as the rollout sees it while it is kept in the background.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseStatus {
    /// Held until this time (Unix seconds), as last confirmed.
    Held { until: i64 },
    /// Held until this time, but the last renewal failed with this error.
    Failing { until: i64, error: String },
    /// Another run holds it now: start nothing new.
    Lost { reason: String },
}

impl LeaseStatus {
    /// Why new work may not start now, if it may not.
    pub fn refusal(&self, now: i64) -> Option<String> {
        match self {
            LeaseStatus::Held { until } | LeaseStatus::Failing { until, .. } if now < *until => {
                None
            }
            LeaseStatus::Held { until } => Some(format!(
                "the cluster's lease could not be renewed since it expired at {}",
                rfc3339(*until)
            )),
            LeaseStatus::Failing { until, error } => Some(format!(
                "the cluster's lease could not be renewed since it expired at {} ({error}); mend that, then --resume",
                rfc3339(*until)
            )),
            LeaseStatus::Lost { reason } => Some(reason.clone()),
        }
    }
}

/// Renews the lease every interval until dropped, publishing what it knows in `status`.
/// An AWS error only skips a renewal (the lease lasts three intervals); a lease taken
/// over is lost for good.
pub async fn keep<F: Fleet, C: Clock + ?Sized>(
    lease: &RefCell<Lease>,
    status: &RefCell<LeaseStatus>,
    fleet: &F,
    clock: &C,
) {
    loop {
        let every = lease.borrow().renew_every();
        tokio::time::sleep(every).await;
        let mut renewed = lease.borrow().clone();
        match renewed.renew(fleet, clock).await {
            Ok(()) => {
                *status.borrow_mut() = LeaseStatus::Held {
                    until: renewed.record.expires,
                };
                *lease.borrow_mut() = renewed;
            }
            Err(lost @ (LeaseError::Lost { .. } | LeaseError::Unreadable { .. })) => {
                *status.borrow_mut() = LeaseStatus::Lost {
                    reason: lost.to_string(),
                };
                return std::future::pending().await;
            }
            Err(error) => {
                // Kept for the stop message: why the lease could not be renewed.
                let until = match &*status.borrow() {
                    LeaseStatus::Held { until } | LeaseStatus::Failing { until, .. } => *until,
                    LeaseStatus::Lost { .. } => continue,
                };
                *status.borrow_mut() = LeaseStatus::Failing {
                    until,
                    error: error.to_string(),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests;
