//! What webhook dispatch needs beyond `AuditLog` and `IdempotencyStore`: the channels a
//! notification leaves by, the registry of disabled endpoints, the queue's visibility.

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
    async fn set_visibility(
        &self,
        receipt_handle: &str,
        after: Duration,
    ) -> Result<(), super::MessagingError>;
}

/// The result of one delivery attempt to one subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered {
        status: u16,
    },
    /// 429, 5xx, timeouts, connection errors: try again later (not before `retry_after`).
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Other 4xx, 3xx, refused URLs, bad configuration: retrying will not help.
    Permanent {
        reason: String,
    },
    /// 410: the receiver asks us to stop; the endpoint is disabled.
    Gone {
        reason: String,
    },
}

/// A way out for notifications: the signed webhook sender, Slack, Teams. Each takes its own
/// message (`delivery::messages`), decided by the dispatch use case, and makes one attempt.
#[async_trait]
pub trait Channel<M: Send + Sync>: Send + Sync + fmt::Debug {
    async fn send(&self, message: &M) -> AttemptOutcome;
}

/// Resolves a host name before a webhook is sent (the SSRF guard checks every address); the
/// operating system's resolver in production, fixed answers in tests.
#[async_trait]
pub trait Resolve: Send + Sync + fmt::Debug {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<std::net::SocketAddr>>;
}
