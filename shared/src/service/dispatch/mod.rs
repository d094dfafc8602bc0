//! The `webhook-dispatch` use case: one SQS record → every matching subscriber, each attempt
//! audited, retries through the message's visibility timeout, nothing re-delivered to a
//! subscriber that already has it.
//!
//! Per (notification, subscriber) a marker in the idempotency store (`delivery#<id>#<sub>`)
//! remembers a final outcome, so a receive after a partial failure only retries the subscribers
//! that still need it (the webhook receiver also dedupes on `webhook-id`, but Slack and Teams
//! cannot).
//!
//! - here: a batch and a record (parse, fan out, combine, the visibility for a retry or a park);
//! - [`targets`]: who wants the notification, and the message each channel is handed;
//! - [`subscriber`]: one subscriber's delivery (marker, attempt, audit, settle).

mod subscriber;
mod targets;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use tracing::Instrument;

use crate::clock::{Clock, Deadline};
use crate::delivery::messages::{SlackMessage, TeamsMessage, WebhookMessage};
use crate::delivery::retry::RetrySchedule;
use crate::delivery::subscribers::SubscriberConfig;
use crate::model::UserId;
use crate::ports::{
    AuditLog, Begin, Channel, EndpointRegistry, IdempotencyStore, MessageVisibility, SecretError,
    SecretSource,
};
use crate::state::{AuditEntry, DecisionKind};
use subscriber::TargetResult;
use targets::{parse, targets};

pub use crate::model::UNATTRIBUTED_USER;

/// Tunables; `Default` is production.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchSettings {
    pub schedule: RetrySchedule,
    /// Must equal the queue's redrive `maxReceiveCount`: the receive that fails at this count is
    /// the last, so its audit record says "parked" rather than "retry scheduled".
    pub max_receive_count: u32,
    /// How long a delivered marker is kept: longer than a message can live in the queue.
    pub delivered_ttl: Duration,
    /// How long a parked marker is kept: long enough for the quick redrive to the DLQ, short
    /// enough that replaying from the DLQ later delivers again.
    pub parked_ttl: Duration,
    /// Records handled at once.
    pub concurrency: usize,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            schedule: RetrySchedule::standard(),
            max_receive_count: 8,
            delivered_ttl: Duration::from_secs(14 * 24 * 3600),
            parked_ttl: Duration::from_secs(15 * 60),
            concurrency: 4,
        }
    }
}

/// One SQS record as the service sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRecord {
    pub message_id: String,
    pub receipt_handle: Option<String>,
    pub body: Option<String>,
    /// `ApproximateReceiveCount` (1 on the first receive).
    pub receive_count: u32,
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordVerdict {
    /// Every matching subscriber is done (delivered, or disabled): delete the message.
    Done,
    /// Some subscriber should be tried again; the message was hidden for this long.
    Retry { after: Duration },
    /// Cannot succeed (malformed, permanent failure): made visible again at once so SQS's
    /// redrive moves it to the DLQ after `maxReceiveCount` quick receives.
    Parked { reason: String },
}

impl RecordVerdict {
    pub fn is_failure(&self) -> bool {
        !matches!(self, Self::Done)
    }
}

/// The verdict per record, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchReport {
    pub records: Vec<(String, RecordVerdict)>,
}

impl BatchReport {
    /// The message ids to report as batch item failures.
    pub fn failed_ids(&self) -> Vec<String> {
        self.records
            .iter()
            .filter(|(_, verdict)| verdict.is_failure())
            .map(|(id, _)| id.clone())
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// Without subscribers nothing can be decided; the whole batch is retried.
    #[error("subscriber configuration: {0}")]
    Subscribers(#[source] SecretError),
}

impl DispatchError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Subscribers(err) => err.is_retryable(),
        }
    }
}

/// Everything dispatch talks to.
#[derive(Debug)]
pub struct Dispatcher {
    pub secrets: Arc<dyn SecretSource>,
    pub subscribers_secret: String,
    /// Signed webhooks, Slack statuses, Teams presences: the channels out.
    pub webhooks: Arc<dyn Channel<WebhookMessage>>,
    pub slack: Arc<dyn Channel<SlackMessage>>,
    pub teams: Arc<dyn Channel<TeamsMessage>>,
    pub audit: Arc<dyn AuditLog>,
    pub markers: Arc<dyn IdempotencyStore>,
    pub endpoints: Arc<dyn EndpointRegistry>,
    pub visibility: Arc<dyn MessageVisibility>,
    pub clock: Arc<dyn Clock>,
    pub settings: DispatchSettings,
    pub rng: Mutex<fastrand::Rng>,
}

impl Dispatcher {
    /// Handles a batch; every record independently. Fails only when the subscriber document
    /// cannot be read (then no record could be decided).
    pub async fn dispatch_batch(
        &self,
        records: Vec<InboundRecord>,
        deadline: Deadline,
    ) -> Result<BatchReport, DispatchError> {
        let config = SubscriberConfig::load(self.secrets.as_ref(), &self.subscribers_secret)
            .await
            .map_err(DispatchError::Subscribers)?;
        let config = &config;
        let verdicts = futures::stream::iter(records)
            .map(|record| async move {
                let span = tracing::info_span!(
                    "record",
                    message_id = %record.message_id,
                    receive_count = record.receive_count
                );
                let verdict = self
                    .dispatch_record(config, &record, deadline)
                    .instrument(span)
                    .await;
                (record.message_id, verdict)
            })
            .buffered(self.settings.concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        Ok(BatchReport { records: verdicts })
    }

    /// One record: parse, fan out, combine, and set the visibility for a retry or a park.
    pub async fn dispatch_record(
        &self,
        config: &SubscriberConfig,
        record: &InboundRecord,
        deadline: Deadline,
    ) -> RecordVerdict {
        let parsed = match parse(record.body.as_deref()) {
            Ok(parsed) => parsed,
            Err(reason) => return self.park_malformed(record, reason, deadline).await,
        };
        let targets = targets(config, &parsed, self.clock.now());
        tracing::info!(
            notification_id = %parsed.notification.notification_id,
            subscribers = targets.len(),
            "dispatching"
        );
        let results = futures::future::join_all(
            targets
                .iter()
                .map(|target| self.deliver_once(target, &parsed, record, deadline)),
        )
        .await;

        let mut retry_after: Option<Option<Duration>> = None;
        let mut parked = Vec::new();
        for result in results {
            match result {
                TargetResult::Done => {}
                TargetResult::Retry { retry_after: after } => {
                    let longest = retry_after.flatten().max(after);
                    retry_after = Some(longest);
                }
                TargetResult::Parked { reason } => parked.push(reason),
            }
        }
        let verdict = if let Some(after) = retry_after {
            // The record waits for the slowest subscriber; the parked ones stay parked.
            let delay = {
                let mut rng = self
                    .rng
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                self.settings
                    .schedule
                    .delay(record.receive_count, after, &mut rng)
            };
            RecordVerdict::Retry { after: delay }
        } else if !parked.is_empty() {
            RecordVerdict::Parked {
                reason: parked.join("; "),
            }
        } else {
            RecordVerdict::Done
        };
        self.apply_visibility(record, &verdict).await;
        verdict
    }

    async fn apply_visibility(&self, record: &InboundRecord, verdict: &RecordVerdict) {
        let after = match verdict {
            RecordVerdict::Done => return,
            RecordVerdict::Retry { after } => *after,
            RecordVerdict::Parked { .. } => Duration::ZERO,
        };
        let Some(handle) = record.receipt_handle.as_deref() else {
            return;
        };
        if let Err(err) = self.visibility.set_visibility(handle, after).await {
            // The message then comes back after the queue's own visibility timeout.
            tracing::warn!(error = %err, "could not change the message visibility");
        }
    }

    /// Malformed: audited once (keyed by the SQS message id), then parked.
    async fn park_malformed(
        &self,
        record: &InboundRecord,
        reason: String,
        deadline: Deadline,
    ) -> RecordVerdict {
        let reason = format!("malformed notification: {reason}");
        tracing::warn!(%reason, "parking record");
        let key = format!("parked#{}", record.message_id);
        match self
            .markers
            .begin(&key, deadline, self.settings.parked_ttl)
            .await
        {
            Ok(Begin::Started(lease)) => {
                let user = record
                    .body
                    .as_deref()
                    .and_then(|body| serde_json::from_str::<serde_json::Value>(body).ok())
                    .and_then(|v| v["userId"].as_str().and_then(|u| UserId::parse(u).ok()))
                    .or_else(|| UserId::parse(UNATTRIBUTED_USER).ok());
                let audited = match user {
                    Some(user) => {
                        let mut entry = AuditEntry::new(user, DecisionKind::DeliveryParked);
                        entry.event_id = Some(record.message_id.clone());
                        entry.reason = Some(reason.clone());
                        entry.details = json!({
                            "sqsMessageId": record.message_id,
                            "receiveCount": record.receive_count,
                        });
                        self.audit.append(entry).await.map(|_| ())
                    }
                    None => Ok(()),
                };
                match audited {
                    Ok(()) => {
                        let outcome = json!({"state": "parked"});
                        self.finish(&lease, &outcome, self.settings.parked_ttl)
                            .await;
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "audit of a malformed record failed");
                        self.give_up_lease(&lease).await;
                    }
                }
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "parked marker unavailable"),
        }
        let verdict = RecordVerdict::Parked { reason };
        self.apply_visibility(record, &verdict).await;
        verdict
    }
}
