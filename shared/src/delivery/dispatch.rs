//! The `webhook-dispatch` use case: one SQS record → every matching subscriber, each attempt
//! audited, retries through the message's visibility timeout, nothing re-delivered to a
//! subscriber that already has it.
//!
//! Per (notification, subscriber) a marker in the idempotency store (`delivery#<id>#<sub>`)
//! remembers a final outcome, so a receive after a partial failure only retries the subscribers
//! that still need it (the webhook receiver also dedupes on `webhook-id`, but Slack and Teams
//! cannot).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use tracing::Instrument;

use super::retry::{AttemptOutcome, RetrySchedule};
use super::slack::{SlackClient, SlackStatus};
use super::subscribers::{
    SlackConfig, SubscriberConfig, SubscriberId, TeamsConfig, WebhookSubscriber, lookup_user,
};
use super::teams::{TeamsCall, TeamsClient};
use super::webhook::WebhookSender;
use crate::clock::{Clock, Deadline};
use crate::model::UserId;
use crate::ports::{AuditLog, Begin, IdempotencyStore, Lease, SecretSource, StoreError};
use crate::ports::{DisabledEndpoint, EndpointRegistry, MessageVisibility};
use crate::state::{AuditEntry, ChangePayload, DecisionKind, Notification};
use crate::telemetry::{self, Unit};

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
    Subscribers(#[source] StoreError),
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
    pub webhooks: WebhookSender,
    pub slack: SlackClient,
    pub teams: TeamsClient,
    pub audit: Arc<dyn AuditLog>,
    pub markers: Arc<dyn IdempotencyStore>,
    pub endpoints: Arc<dyn EndpointRegistry>,
    pub visibility: Arc<dyn MessageVisibility>,
    pub clock: Arc<dyn Clock>,
    pub settings: DispatchSettings,
    pub rng: Mutex<fastrand::Rng>,
}

/// One subscriber of one notification.
enum Target<'a> {
    Webhook(&'a WebhookSubscriber),
    Slack {
        config: &'a SlackConfig,
        token: &'a secrecy::SecretString,
        status: SlackStatus,
    },
    Teams {
        config: &'a TeamsConfig,
        object_id: &'a str,
        calls: Vec<TeamsCall>,
    },
}

impl Target<'_> {
    fn id(&self) -> &str {
        match self {
            Self::Webhook(hook) => hook.id.as_str(),
            Self::Slack { .. } => SubscriberId::SLACK,
            Self::Teams { .. } => SubscriberId::TEAMS,
        }
    }

    fn channel(&self) -> &'static str {
        match self {
            Self::Webhook(_) => "webhook",
            Self::Slack { .. } => "slack",
            Self::Teams { .. } => "teams",
        }
    }
}

/// How one subscriber ended on this receive.
#[derive(Debug, Clone, PartialEq)]
enum TargetResult {
    Done,
    Retry { retry_after: Option<Duration> },
    Parked { reason: String },
}

/// One attempt's fate (`Delivered`, `Retried`, `Failed`, `Disabled`) and time, per channel
/// (`webhook`, `slack`, `teams`), as EMF metrics the alarms and the dashboard read.
fn attempt_metrics(channel: &str, fate: &str, took: Option<Duration>) {
    let mut metrics = vec![(fate, 1.0, Unit::Count)];
    if let Some(took) = took {
        metrics.push((
            "DeliveryMs",
            took.as_secs_f64() * 1000.0,
            Unit::Milliseconds,
        ));
    }
    telemetry::emit(
        &[("Function", "webhook-dispatch"), ("Channel", channel)],
        &metrics,
    );
}

/// A parsed record.
struct Parsed {
    notification: Notification,
    change: ChangePayload,
}

/// One subscriber's delivery of one record, its marker claimed.
#[derive(Clone, Copy)]
struct Delivery<'a> {
    target: &'a Target<'a>,
    parsed: &'a Parsed,
    record: &'a InboundRecord,
    lease: &'a Lease,
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

    /// One subscriber, at most one attempt per receive: claim its delivery marker, attempt,
    /// audit and settle the marker.
    async fn deliver_once(
        &self,
        target: &Target<'_>,
        parsed: &Parsed,
        record: &InboundRecord,
        deadline: Deadline,
    ) -> TargetResult {
        let lease = match self.claim_marker(target, parsed, deadline).await {
            Ok(lease) => lease,
            Err(settled) => return settled,
        };
        let delivery = Delivery {
            target,
            parsed,
            record,
            lease: &lease,
        };
        let began = std::time::Instant::now();
        let outcome = match self.attempt(target, parsed).await {
            Ok(outcome) => outcome,
            Err(disabled) => {
                attempt_metrics(target.channel(), "Disabled", None);
                return self
                    .record(&delivery, DecisionKind::DeliveryDisabled, disabled, None)
                    .await;
            }
        };
        let took = began.elapsed();
        tracing::info!(subscriber = target.id(), outcome = ?outcome, "attempt");
        let gone = matches!(outcome, AttemptOutcome::Gone { .. });
        let result = self.settle(&delivery, outcome).await;
        let fate = match (&result, gone) {
            (_, true) => "Disabled",
            (TargetResult::Done, false) => "Delivered",
            (TargetResult::Retry { .. }, false) => "Retried",
            (TargetResult::Parked { .. }, false) => "Failed",
        };
        attempt_metrics(target.channel(), fate, Some(took));
        result
    }

    /// The delivery marker of this notification and subscriber; `Err` is the answer when it was
    /// delivered before, or is being delivered right now.
    async fn claim_marker(
        &self,
        target: &Target<'_>,
        parsed: &Parsed,
        deadline: Deadline,
    ) -> Result<Lease, TargetResult> {
        let notification = &parsed.notification;
        let key = format!("delivery#{}#{}", notification.notification_id, target.id());
        match self
            .markers
            .begin(&key, deadline, self.settings.delivered_ttl)
            .await
        {
            Ok(Begin::Started(lease)) => Ok(lease),
            Ok(Begin::AlreadyCompleted(outcome)) => Err(if outcome["state"] == "parked" {
                TargetResult::Parked {
                    reason: format!("{}: parked on an earlier receive", target.id()),
                }
            } else {
                TargetResult::Done
            }),
            Ok(Begin::InProgress { until }) => {
                // Another invocation is delivering it right now; look again after it is done.
                let wait = (until - self.clock.now())
                    .to_std()
                    .unwrap_or(Duration::ZERO);
                Err(TargetResult::Retry {
                    retry_after: Some(wait),
                })
            }
            Err(err) => {
                tracing::warn!(error = %err, subscriber = target.id(), "delivery marker unavailable");
                Err(TargetResult::Retry { retry_after: None })
            }
        }
    }

    /// The one attempt; `Err(reason)`: the webhook endpoint is disabled, nothing was sent.
    async fn attempt(
        &self,
        target: &Target<'_>,
        parsed: &Parsed,
    ) -> Result<AttemptOutcome, String> {
        let notification = &parsed.notification;
        Ok(match target {
            Target::Webhook(hook) => match self.disabled(hook).await {
                Ok(Some(disabled)) => {
                    return Err(format!(
                        "endpoint disabled since {} ({}); not attempted",
                        disabled.at.to_rfc3339(),
                        disabled.reason
                    ));
                }
                Ok(None) => self.webhooks.deliver(hook, notification).await,
                Err(err) => AttemptOutcome::retryable(format!("endpoint registry: {err}")),
            },
            Target::Slack {
                config,
                token,
                status,
            } => {
                self.slack
                    .set_status(
                        config.api_base_url.as_deref(),
                        token,
                        status,
                        self.clock.now(),
                    )
                    .await
            }
            Target::Teams {
                config,
                object_id,
                calls,
            } => self.teams.apply(config, object_id, calls).await,
        })
    }

    /// What the attempt's outcome becomes: delivered, disabled (410), parked, or retried.
    async fn settle(&self, delivery: &Delivery<'_>, outcome: AttemptOutcome) -> TargetResult {
        let (kind, reason, retry) = match outcome {
            AttemptOutcome::Delivered { status } => (
                DecisionKind::DeliveryDelivered,
                format!("delivered (HTTP {status})"),
                None,
            ),
            AttemptOutcome::Gone { reason } => {
                if let Target::Webhook(hook) = delivery.target {
                    let disabled = DisabledEndpoint {
                        subscriber: hook.id.clone(),
                        url_fingerprint: hook.url.fingerprint(),
                        at: self.clock.now(),
                        reason: reason.clone(),
                    };
                    if let Err(err) = self.endpoints.disable(&disabled).await {
                        tracing::error!(error = %err, "could not record the disabled endpoint");
                        self.give_up_lease(delivery.lease).await;
                        return TargetResult::Retry { retry_after: None };
                    }
                }
                (DecisionKind::DeliveryDisabled, reason, None)
            }
            AttemptOutcome::Permanent { reason } => (DecisionKind::DeliveryParked, reason, None),
            AttemptOutcome::Retryable {
                reason,
                retry_after,
            } => {
                let receives = delivery.record.receive_count;
                if receives >= self.settings.max_receive_count {
                    let reason = format!(
                        "retries exhausted after {receives} receives, last: {reason}; the message goes to the DLQ"
                    );
                    (DecisionKind::DeliveryParked, reason, None)
                } else {
                    (
                        DecisionKind::DeliveryRetryScheduled,
                        reason,
                        Some(retry_after),
                    )
                }
            }
        };
        self.record(delivery, kind, reason, retry).await
    }

    async fn disabled(
        &self,
        hook: &WebhookSubscriber,
    ) -> Result<Option<DisabledEndpoint>, StoreError> {
        let disabled = self.endpoints.disabled(&hook.id).await?;
        Ok(disabled.filter(|d| d.url_fingerprint == hook.url.fingerprint()))
    }

    /// Audits the outcome, then settles the marker. A failed audit gives the marker back and
    /// retries, so every outcome is audited at least once (a receiver may see the delivery
    /// twice; it dedupes on `webhook-id`).
    async fn record(
        &self,
        delivery: &Delivery<'_>,
        kind: DecisionKind,
        reason: String,
        retry: Option<Option<Duration>>,
    ) -> TargetResult {
        let Delivery {
            target,
            parsed,
            record,
            lease,
        } = *delivery;
        let notification = &parsed.notification;
        let mut entry = AuditEntry::new(notification.user_id.clone(), kind);
        entry.event_id = Some(notification.notification_id.to_string());
        entry.trigger_id = parsed.change.trigger_id.clone();
        entry.reason = Some(reason.clone());
        let mut details = json!({
            "subscriber": target.id(),
            "channel": target.channel(),
            "notificationKind": notification.kind.as_str(),
            "sequence": notification.sequence,
            "receiveCount": record.receive_count,
            "sqsMessageId": record.message_id,
        });
        if let Some(Some(after)) = retry {
            details["retryAfterSeconds"] = json!(after.as_secs());
        }
        entry.details = details;
        if let Err(err) = self.audit.append(entry).await {
            tracing::error!(error = %err, subscriber = target.id(), "audit append failed");
            self.give_up_lease(lease).await;
            return TargetResult::Retry { retry_after: None };
        }
        match kind {
            DecisionKind::DeliveryRetryScheduled => {
                self.give_up_lease(lease).await;
                TargetResult::Retry {
                    retry_after: retry.flatten(),
                }
            }
            DecisionKind::DeliveryParked => {
                // A parked marker outlives the quick redrive only: a later DLQ replay delivers.
                let exhausted = record.receive_count >= self.settings.max_receive_count;
                if exhausted {
                    self.give_up_lease(lease).await;
                } else {
                    let outcome = json!({"state": "parked", "reason": reason});
                    self.finish(lease, &outcome, self.settings.parked_ttl).await;
                }
                TargetResult::Parked {
                    reason: format!("{}: {reason}", target.id()),
                }
            }
            _ => {
                let state = if kind == DecisionKind::DeliveryDelivered {
                    "delivered"
                } else {
                    "disabled"
                };
                self.finish(lease, &json!({"state": state}), self.settings.delivered_ttl)
                    .await;
                TargetResult::Done
            }
        }
    }

    async fn finish(&self, lease: &Lease, outcome: &serde_json::Value, ttl: Duration) {
        if let Err(err) = self.markers.complete(lease, outcome, ttl).await {
            tracing::warn!(error = %err, key = %lease.key, "could not store the delivery marker");
        }
    }

    async fn give_up_lease(&self, lease: &Lease) {
        if let Err(err) = self.markers.release(lease).await {
            tracing::warn!(error = %err, key = %lease.key, "could not release the delivery marker");
        }
    }
}

/// The notification and its payload, or why not (the reason names the field).
fn parse(body: Option<&str>) -> Result<Parsed, String> {
    let body = body.ok_or_else(|| "empty body".to_owned())?;
    let notification: Notification =
        serde_json::from_str(body).map_err(|err| format!("not a notification: {err}"))?;
    let change: ChangePayload = serde_json::from_value(notification.payload.clone())
        .map_err(|err| format!("payload: {err}"))?;
    Ok(Parsed {
        notification,
        change,
    })
}

/// Every subscriber that wants this notification and has something to do with it.
fn targets<'a>(
    config: &'a SubscriberConfig,
    parsed: &Parsed,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<Target<'a>> {
    let user = &parsed.notification.user_id;
    let kind = parsed.notification.kind;
    let email = parsed.change.email.as_deref();
    let mut targets: Vec<Target<'a>> = config
        .webhooks
        .iter()
        .filter(|hook| hook.wants(user, email))
        .map(Target::Webhook)
        .collect();
    if let Some(slack) = &config.slack
        && let Some(token) = lookup_user(&slack.tokens, user, email)
        && let Some(status) = SlackStatus::for_change(kind, &parsed.change)
    {
        targets.push(Target::Slack {
            config: slack,
            token,
            status,
        });
    }
    if let Some(teams) = &config.teams
        && let Some(object_id) = lookup_user(&teams.users, user, email)
    {
        let calls = TeamsCall::for_change(kind, &parsed.change, now);
        if !calls.is_empty() {
            targets.push(Target::Teams {
                config: teams,
                object_id,
                calls,
            });
        }
    }
    targets
}
