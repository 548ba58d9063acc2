//! Counts the AWS requests the SDK actually sends, per operation, from inside the SDK's
//! orchestrator: every attempt, retries included, of every client it is attached to.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::fleet::operations;

#[derive(Debug, Clone, Default)]
pub(crate) struct RequestCounter {
    /// (SDK service, operation) → attempts.
    counts: Arc<Mutex<BTreeMap<(String, String), u64>>>,
}

impl RequestCounter {
    /// Attempts per IAM action.
    pub(crate) fn by_action(&self) -> BTreeMap<String, u64> {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts
            .iter()
            .map(|((service, name), n)| (operations::iam_action(service, name), *n))
            .collect()
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "privlink-restart request counter"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(metadata) = cfg.load::<Metadata>() {
            let key = (metadata.service().to_string(), metadata.name().to_string());
            *self
                .counts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key)
                .or_default() += 1;
        }
        Ok(())
    }
}
