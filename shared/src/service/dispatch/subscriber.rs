//! One subscriber's delivery of one record: claim its marker, one attempt through its channel,
//! audit the outcome, settle the marker (delivered, disabled, parked, or retried).

use std::time::Duration;

use serde_json::json;

use super::targets::{Parsed, Target};
use super::{Dispatcher, InboundRecord};
use crate::clock::Deadline;
use crate::delivery::messages::WebhookMessage;
use crate::delivery::subscribers::WebhookSubscriber;
use crate::ports::{AttemptOutcome, Begin, DisabledEndpoint, Lease, StoreError};
use crate::state::{AuditEntry, DecisionKind};
use crate::telemetry::{self, Unit};

/// How one subscriber ended on this receive.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum TargetResult {
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

/// One subscriber's delivery of one record, its marker claimed.
#[derive(Clone, Copy)]
struct Delivery<'a> {
    target: &'a Target<'a>,
    parsed: &'a Parsed,
    record: &'a InboundRecord,
    lease: &'a Lease,
}

impl Dispatcher {
    /// One subscriber, at most one attempt per receive: claim its delivery marker, attempt,
    /// audit and settle the marker.
    pub(super) async fn deliver_once(
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
                Ok(None) => {
                    let message = WebhookMessage {
                        subscriber: (*hook).clone(),
                        notification: notification.clone(),
                    };
                    self.webhooks.send(&message).await
                }
                Err(err) => AttemptOutcome::retryable(format!("endpoint registry: {err}")),
            },
            Target::Slack(message) => self.slack.send(message).await,
            Target::Teams(message) => self.teams.send(message).await,
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
        entry.trigger_id = parsed.trigger_id();
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

    pub(super) async fn finish(&self, lease: &Lease, outcome: &serde_json::Value, ttl: Duration) {
        if let Err(err) = self.markers.complete(lease, outcome, ttl).await {
            tracing::warn!(error = %err, key = %lease.key, "could not store the delivery marker");
        }
    }

    pub(super) async fn give_up_lease(&self, lease: &Lease) {
        if let Err(err) = self.markers.release(lease).await {
            tracing::warn!(error = %err, key = %lease.key, "could not release the delivery marker");
        }
    }
}
