//! What one event came to: the typed outcome returned to the caller and stored for duplicates,
//! and the errors that send an event back to its source.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::UserId;
use crate::policy::PolicyError;
use crate::ports::{PlatformError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("event {event_id} is being handled by another invocation")]
    InProgress { event_id: String },
    #[error("user {user_id}: the state kept changing under us; gave up after {attempts} attempts")]
    Contended { user_id: UserId, attempts: u32 },
    /// The policy names a presence the org does not have (or no longer has): retried, so the
    /// events wait (then in the dead-letter queue) until the policy or the org is fixed.
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
}

impl TransitionError {
    /// Whether the event should be delivered again (SQS retry, Lambda async retry).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Platform(error) => error.is_retryable(),
            Self::Store(error) => error.is_retryable() || matches!(error, StoreError::Conflict(_)),
            Self::InProgress { .. } | Self::Contended { .. } | Self::Policy(_) => true,
        }
    }

    /// Genesys answered 429 (counted by the handler's metrics).
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, Self::Platform(PlatformError::RateLimited { .. }))
    }

    /// How long Genesys asked us to wait (its `Retry-After`), when it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Platform(PlatformError::RateLimited { retry_after, .. }) => Some(*retry_after),
            _ => None,
        }
    }
}

/// What became of an event, as stored and reported (`"applied"`, `"restored"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeKind {
    Applied,
    Restored,
    Kept,
    Skipped,
    Deferred,
    Rejected,
    /// A presence event that needed no decision (our own write echoed back); not audited.
    Ignored,
    /// A stored outcome of an earlier delivery that no longer reads (written by another version).
    Unknown,
}

impl OutcomeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Restored => "restored",
            Self::Kept => "kept",
            Self::Skipped => "skipped",
            Self::Deferred => "deferred",
            Self::Rejected => "rejected",
            Self::Ignored => "ignored",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An outcome compares with its wire name, so logs, metrics and tests can speak it.
impl PartialEq<str> for OutcomeKind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for OutcomeKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// What happened to one event; stored as the idempotency outcome and returned to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub event_id: Option<String>,
    pub user_id: Option<String>,
    pub decision: OutcomeKind,
    pub reason: Option<String>,
    /// True when this event id was handled before and this is the stored outcome.
    #[serde(default)]
    pub duplicate: bool,
    /// Where the time went (logged and emitted as metrics by the handler).
    #[serde(default)]
    pub timings: StageTimings,
}

impl Outcome {
    pub fn new(
        decision: OutcomeKind,
        event_id: Option<&str>,
        user: Option<&UserId>,
        reason: Option<String>,
    ) -> Self {
        Self {
            event_id: event_id.map(str::to_owned),
            user_id: user.map(ToString::to_string),
            decision,
            reason,
            duplicate: false,
            timings: StageTimings::default(),
        }
    }

    pub fn is_rejected(&self) -> bool {
        self.decision == OutcomeKind::Rejected
    }
}

/// Latency of each stage of one event, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageTimings {
    /// Reading the Genesys credentials (Secrets Manager, when the cache missed).
    pub secret_ms: u64,
    /// OAuth token requests (when the cached token was missing or expired).
    pub token_ms: u64,
    /// Resolving the policy's presence names against the org's definitions: a container's
    /// first event only (it includes that event's `secret_ms` and `token_ms`, and overlaps
    /// `state_read_ms`).
    #[serde(default)]
    pub targets_ms: u64,
    /// Reading the user's state with the event's record (one BatchGetItem per attempt).
    #[serde(default)]
    pub state_read_ms: u64,
    pub genesys_read_ms: u64,
    pub genesys_write_ms: u64,
    /// The claim and the commit.
    pub store_ms: u64,
}

impl StageTimings {
    /// Metric name and value of each stage, for the handler's EMF line.
    pub fn metrics(&self) -> [(&'static str, u64); 7] {
        [
            ("SecretMs", self.secret_ms),
            ("TokenMs", self.token_ms),
            ("TargetsMs", self.targets_ms),
            ("StateReadMs", self.state_read_ms),
            ("GenesysReadMs", self.genesys_read_ms),
            ("GenesysWriteMs", self.genesys_write_ms),
            ("StoreMs", self.store_ms),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_keep_their_wire_names() {
        let outcome = Outcome::new(OutcomeKind::Deferred, Some("e-1"), None, None);
        let stored = serde_json::to_value(&outcome).expect("serialises");
        assert_eq!(stored["decision"], "deferred");
        let back: Outcome = serde_json::from_value(stored).expect("reads back");
        assert_eq!(back.decision, "deferred");
        assert_eq!(back.decision.to_string(), "deferred");
    }
}
