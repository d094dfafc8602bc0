//! Translates the burst queue's SQS batches into calls of the transition service, and its
//! results into the batch answer (only the failed records come back).

use std::time::Instant;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{Diagnostic, LambdaEvent};
use presence_autopilot::clock::{Deadline, SystemClock};
use presence_autopilot::delivery::RetrySchedule;
use presence_autopilot::ingress;
use presence_autopilot::ports::MessageVisibility;
use presence_autopilot::service::transition::{Outcome, TransitionError, TransitionService};
use presence_autopilot::telemetry::{self, Unit};
use tracing::Instrument;

/// When a record that failed for a retryable reason comes back: after Genesys's `Retry-After`
/// when it gave one, else after a short backoff by receive count, instead of the queue's
/// visibility timeout (730 s, sized for the function's timeout, far too long for a meeting).
#[derive(Debug)]
pub struct Redelivery {
    pub visibility: std::sync::Arc<dyn MessageVisibility>,
    pub schedule: RetrySchedule,
}

impl Redelivery {
    /// 5 s, 30 s, 2 min, then 5 min, ±20 %; never above the queue's own 730 s.
    pub fn on(visibility: std::sync::Arc<dyn MessageVisibility>) -> Self {
        let seconds = |s: u64| std::time::Duration::from_secs(s);
        Self {
            visibility,
            schedule: RetrySchedule::new(
                vec![seconds(5), seconds(30), seconds(120), seconds(300)],
                0.2,
                seconds(720),
            ),
        }
    }

    /// Sets the visibility of each retryable failure; a failed change only logs (the record
    /// then comes back after the queue's timeout, as before).
    pub async fn schedule(&self, failed: &[(&SqsMessage, &TransitionError)]) {
        let mut rng = fastrand::Rng::new();
        for (record, error) in failed {
            let Some(handle) = record.receipt_handle.as_deref() else {
                continue;
            };
            if !error.is_retryable() {
                continue;
            }
            let receives = record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|count| count.parse().ok())
                .unwrap_or(1);
            let after = self.schedule.delay(receives, error.retry_after(), &mut rng);
            if let Err(change) = self.visibility.set_visibility(handle, after).await {
                tracing::warn!(error = %change, "could not shorten the failed record's wait");
            }
        }
    }
}

/// One batch of the burst queue (bus rules and Scheduler schedules both send there). A payload
/// that is not an SQS batch never gets here: the runtime fails the invocation whole, so SQS
/// retries it and then dead-letters it; nothing unreadable is answered as handled.
pub async fn handle(
    service: &TransitionService,
    redelivery: Option<&Redelivery>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Diagnostic> {
    let (batch, context) = event.into_parts();
    let deadline = Deadline::of_invocation(&context, &SystemClock);
    handle_batch(service, redelivery, batch, deadline, &context.request_id).await
}

/// Each record on its own (starts for many users share bulk Genesys calls); the response
/// lists the records SQS should retry or, after `maxReceiveCount`, dead-letter.
pub async fn handle_batch(
    service: &TransitionService,
    redelivery: Option<&Redelivery>,
    batch: SqsEvent,
    deadline: Deadline,
    request_id: &str,
) -> Result<SqsBatchResponse, Diagnostic> {
    let started = Instant::now();
    let mut ids = Vec::with_capacity(batch.records.len());
    let mut bodies = Vec::with_capacity(batch.records.len());
    for (index, record) in batch.records.iter().enumerate() {
        // Without a message id no single record can be retried: fail the batch whole.
        let Some(id) = record.message_id.clone().filter(|id| !id.is_empty()) else {
            return Err(Diagnostic {
                error_type: "NonRetryable".to_owned(),
                error_message: format!("Records[{index}].messageId: is required"),
            });
        };
        ids.push(id);
        // An absent body is an empty one: rejected and audited like any malformed event. A
        // forwarder's Graph- or Google-shaped event becomes our canonical one here, at the edge.
        let body = record.body.as_deref().unwrap_or_default();
        bodies.push(ingress::canonical_body(body).into_owned());
    }
    let span = tracing::info_span!("batch", request_id = %request_id, records = bodies.len());
    let results = service
        .handle_batch(&bodies, deadline)
        .instrument(span.clone())
        .await;
    let mut response = SqsBatchResponse::default();
    let mut retryable = Vec::new();
    for ((message_id, result), record) in ids.into_iter().zip(&results).zip(&batch.records) {
        let record_span = tracing::info_span!(parent: &span, "record", message_id = %message_id, event_id = tracing::field::Empty, user_id = tracing::field::Empty);
        record_outcome(&record_span, result, started);
        if result.as_ref().map_or(true, Outcome::is_rejected) {
            response.add_failure(message_id);
        }
        if let Err(error) = result {
            retryable.push((record, error));
        }
    }
    if let Some(redelivery) = redelivery {
        redelivery.schedule(&retryable).await;
    }
    Ok(response)
}

fn record_outcome(
    span: &tracing::Span,
    result: &Result<Outcome, TransitionError>,
    started: Instant,
) {
    let total_ms = started.elapsed().as_secs_f64() * 1000.0;
    let _entered = span.enter();
    match result {
        Ok(outcome) => {
            if let Some(user) = &outcome.user_id {
                span.record("user_id", user.as_str());
            }
            if let Some(event) = &outcome.event_id {
                span.record("event_id", event.as_str());
            }
            tracing::info!(decision = %outcome.decision, reason = ?outcome.reason, duplicate = outcome.duplicate, total_ms, "event handled");
            let stages = outcome.timings.metrics();
            let mut metrics = vec![
                ("Events", 1.0, Unit::Count),
                ("TotalMs", total_ms, Unit::Milliseconds),
            ];
            metrics.extend(
                stages
                    .iter()
                    .map(|(name, ms)| (*name, *ms as f64, Unit::Milliseconds)),
            );
            telemetry::emit(
                &[
                    ("Function", "transition"),
                    ("Decision", outcome.decision.as_str()),
                ],
                &metrics,
            );
        }
        Err(error) => {
            tracing::error!(error = %error, retryable = error.is_retryable(), total_ms, "event failed");
            let rate_limited = error.is_rate_limited();
            telemetry::emit(
                &[("Function", "transition")],
                &[
                    ("Errors", 1.0, Unit::Count),
                    (
                        "GenesysRateLimited",
                        if rate_limited { 1.0 } else { 0.0 },
                        Unit::Count,
                    ),
                ],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(raw: &str) -> Result<SqsEvent, serde_json::Error> {
        serde_json::from_str(raw)
    }

    #[test]
    fn only_an_sqs_batch_is_an_input() {
        let sqs = batch(include_str!("../../../tests/fixtures/sqs-batch.json")).expect("a batch");
        assert_eq!(sqs.records.len(), 3);
        // A bare EventBridge event is not read as an empty batch: the invocation fails whole.
        let event = batch(include_str!(
            "../../../tests/fixtures/calendar-event-started.json"
        ));
        assert!(event.is_err(), "{event:?}");
    }

    #[tokio::test]
    async fn retryable_failures_come_back_after_retry_after_or_a_short_backoff() {
        use std::sync::Arc;
        use std::time::Duration;

        use presence_autopilot::fakes::delivery::FakeVisibility;
        use presence_autopilot::ports::PlatformError;

        let fake = Arc::new(FakeVisibility::default());
        let redelivery = Redelivery::on(fake.clone());
        let record = |handle: &str, receives: &str| {
            let mut message = SqsMessage::default();
            message.receipt_handle = Some(handle.to_owned());
            message
                .attributes
                .insert("ApproximateReceiveCount".to_owned(), receives.to_owned());
            message
        };
        let (limited, unavailable, refused) =
            (record("h1", "1"), record("h2", "3"), record("h3", "1"));
        let message = || "genesys".to_owned();
        let rate_limited = TransitionError::Platform(PlatformError::RateLimited {
            retry_after: Duration::from_secs(42),
            message: message(),
        });
        let down = TransitionError::Platform(PlatformError::Unavailable { message: message() });
        let refusal = TransitionError::Platform(PlatformError::Refused { message: message() });

        redelivery
            .schedule(&[
                (&limited, &rate_limited),
                (&unavailable, &down),
                (&refused, &refusal),
            ])
            .await;

        let changes = fake.changes();
        assert_eq!(
            changes.len(),
            2,
            "a refusal keeps the queue's timeout: {changes:?}"
        );
        assert_eq!(
            changes[0],
            ("h1".to_owned(), Duration::from_secs(42)),
            "Retry-After wins"
        );
        assert_eq!(changes[1].0, "h2");
        let third_step = changes[1].1.as_secs_f64();
        assert!(
            (96.0..=144.0).contains(&third_step),
            "2 min ± 20 %: {third_step}"
        );
    }

    #[test]
    fn an_unreadable_batch_is_never_an_empty_batch() {
        // `messageId` of the wrong type: not an SqsEvent, so not silently zero records.
        let broken =
            batch(r#"{"Records": [{"messageId": 7, "body": "{}", "eventSource": "aws:sqs"}]}"#);
        assert!(broken.is_err(), "{broken:?}");
    }
}
