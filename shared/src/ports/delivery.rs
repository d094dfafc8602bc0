//! The two small ports webhook dispatch needs beyond `AuditLog` and `IdempotencyStore`.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::model::SubscriberId;

/// A webhook endpoint switched off after it answered 410.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisabledEndpoint {
    pub subscriber: SubscriberId,
    /// `EndpointUrl::fingerprint` of the URL that answered 410: configuring a new URL re-enables.
    pub url_fingerprint: String,
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// Where disabled endpoints are remembered (DynamoDB item `ENDPOINT#<id>` / `STATUS`).
#[async_trait]
pub trait EndpointRegistry: Send + Sync + fmt::Debug {
    async fn disabled(
        &self,
        subscriber: &SubscriberId,
    ) -> Result<Option<DisabledEndpoint>, StoreError>;

    async fn disable(&self, endpoint: &DisabledEndpoint) -> Result<(), StoreError>;
}

/// Control over when the queue hands a received message back (SQS ChangeMessageVisibility).
#[async_trait]
pub trait MessageVisibility: Send + Sync + fmt::Debug {
    async fn set_visibility(&self, receipt_handle: &str, after: Duration)
    -> Result<(), StoreError>;
}
