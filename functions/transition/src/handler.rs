//! Translates Lambda input (an EventBridge event, or an SQS batch of them) into calls of the
//! transition service, and its results into the Lambda response.

use std::time::Instant;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;
use shared::clock::Deadline;
use shared::service::transition::{Outcome, TransitionError, TransitionService};
use shared::telemetry::{self, Unit};
use tracing::Instrument;

/// Work stops this long before the Lambda deadline, leaving time to answer.
const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_millis(500);

fn deadline_of(context: &lambda_runtime::Context) -> Deadline {
    Deadline::from_invocation(context.deadline, chrono::Utc::now(), DEADLINE_MARGIN)
}

pub async fn handle(
    service: &TransitionService,
    event: LambdaEvent<Value>,
) -> Result<Value, Diagnostic> {
    let (payload, context) = event.into_parts();
    let deadline = deadline_of(&context);
    if is_sqs_batch(&payload) {
        let batch: SqsEvent = serde_json::from_value(payload).unwrap_or_default();
        let response = handle_batch(service, batch, deadline, &context.request_id).await;
        return Ok(serde_json::to_value(response).unwrap_or_default());
    }
    let event_id = payload
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let span = tracing::info_span!("event", request_id = %context.request_id, event_id = %event_id, user_id = tracing::field::Empty);
    let started = Instant::now();
    let result = async {
        match serde_json::from_value::<EventBridgeEvent<Value>>(payload.clone()) {
            Ok(envelope) => service.handle_event(&envelope, deadline).await,
            // Not even an envelope: the service rejects it with the field named.
            Err(_) => service.handle_json(&payload.to_string(), deadline).await,
        }
    }
    .instrument(span.clone())
    .await;
    record_outcome(&span, &result, started);
    result
        .map(|outcome| serde_json::to_value(outcome).unwrap_or_default())
        .map_err(|error| telemetry::diagnostic(&error, error.is_retryable()))
}

/// Each record on its own (starts for many users share bulk Genesys calls); the response
/// lists the records SQS should retry or, after `maxReceiveCount`, dead-letter.
pub async fn handle_batch(
    service: &TransitionService,
    batch: SqsEvent,
    deadline: Deadline,
    request_id: &str,
) -> SqsBatchResponse {
    let started = Instant::now();
    let (ids, bodies): (Vec<String>, Vec<String>) = batch
        .records
        .into_iter()
        .map(|record| {
            (
                record.message_id.unwrap_or_default(),
                record.body.unwrap_or_default(),
            )
        })
        .unzip();
    let span = tracing::info_span!("batch", request_id = %request_id, records = bodies.len());
    let results = service
        .handle_batch(&bodies, deadline)
        .instrument(span.clone())
        .await;
    let mut response = SqsBatchResponse::default();
    for (message_id, result) in ids.into_iter().zip(results) {
        let record_span = tracing::info_span!(parent: &span, "record", message_id = %message_id, event_id = tracing::field::Empty, user_id = tracing::field::Empty);
        record_outcome(&record_span, &result, started);
        if result.as_ref().map_or(true, Outcome::is_rejected) {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id;
            response.batch_item_failures.push(failure);
        }
    }
    response
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
            telemetry::emit(
                &[
                    ("Function", "transition"),
                    ("Decision", outcome.decision.as_str()),
                ],
                &[
                    ("Events", 1.0, Unit::Count),
                    ("TotalMs", total_ms, Unit::Milliseconds),
                ],
            );
        }
        Err(error) => {
            tracing::error!(error = %error, retryable = error.is_retryable(), total_ms, "event failed");
            let rate_limited = matches!(
                error,
                TransitionError::Genesys(shared::genesys::GenesysError::RateLimited { .. })
            );
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

fn is_sqs_batch(payload: &Value) -> bool {
    payload
        .get("Records")
        .and_then(Value::as_array)
        .is_some_and(|records| {
            records
                .iter()
                .all(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sqs_batches_are_treated_as_batches() {
        let sqs: Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/sqs-batch.json"))
                .expect("fixture");
        assert!(is_sqs_batch(&sqs));
        let eventbridge: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/calendar-event-started.json"
        ))
        .expect("fixture");
        assert!(!is_sqs_batch(&eventbridge));
    }
}
