//! The seam between the tool's logic and the cloud: [`Fleet`] is shaped like the domain
//! (discover a cluster's inventory, and later restart agents, read their state), not like
//! the SDK. `aws` is the real adapter; tests and the demo use simulated fleets behind the
//! same trait.

pub mod aws;
pub mod operations;

use std::collections::BTreeMap;
use std::future::Future;

use crate::inventory::Inventory;

/// A cluster's fleet of container instances, as the tool sees it.
pub trait Fleet {
    /// Reads everything preflight and the rollout need about `cluster`. Facts that fail
    /// to read on their own come back as [`crate::inventory::Fact`] errors; only a cluster
    /// that cannot be found or listed at all is an `Err`.
    fn discover(&self, cluster: &str)
        -> impl Future<Output = Result<Inventory, FleetError>> + Send;

    /// AWS requests sent so far, per IAM action (`ecs:DescribeClusters` → 1).
    fn request_counts(&self) -> BTreeMap<String, u64>;
}

/// Why the fleet could not be reached or the cluster not read at all (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("cluster \"{cluster}\" not found in {region}{}; check --region or --profile", account.as_deref().map(|a| format!(" (account {a})")).unwrap_or_default())]
    ClusterNotFound {
        cluster: String,
        region: String,
        account: Option<String>,
    },

    #[error("no AWS region: pass --region, set AWS_REGION, or set a region in the profile")]
    NoRegion,

    #[error("no usable AWS credentials ({reason}); set AWS_PROFILE or AWS_ACCESS_KEY_ID, or run `aws sso login`")]
    NoCredentials { reason: String },

    #[error("cannot reach AWS at {endpoint} ({action}: {reason}); check --endpoint-url, the network or a proxy")]
    Unreachable {
        endpoint: String,
        action: String,
        reason: String,
    },

    #[error("{action} was denied on {scope} ({reason}); grant it to the caller (see `privlink-restart iam-policy`)")]
    AccessDenied {
        action: String,
        scope: String,
        reason: String,
    },

    #[error("{action} failed on {scope}: {reason}")]
    Aws {
        action: String,
        scope: String,
        reason: String,
    },
}
