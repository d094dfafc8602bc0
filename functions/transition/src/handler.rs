//! Translates Lambda input (an EventBridge event, or an SQS batch of them) into calls of the
//! transition service, and its results into the Lambda response.

use std::time::Instant;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Diagnostic, LambdaEvent};
use presence_autopilot::clock::{Deadline, SystemClock};
use presence_autopilot::events;
use presence_autopilot::model::preview;
use presence_autopilot::service::transition::{
    Outcome, TransitionError, TransitionService, bounded_event_id,
};
use presence_autopilot::telemetry::{self, Unit};
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument;

/// What transition is invoked with: an SQS batch (the burst queue), one EventBridge event (the
/// bus, a Scheduler target), or anything else, which is refused with its field named.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum TransitionInput {
    Batch(SqsEvent),
    Event(Box<EventBridgeEvent<Value>>),
    Unrecognised(Value),
}

pub async fn handle(
    service: &TransitionService,
    event: LambdaEvent<TransitionInput>,
) -> Result<Value, Diagnostic> {
    let (payload, context) = event.into_parts();
    let deadline = Deadline::of_invocation(&context, &SystemClock);
    let result = match payload {
        TransitionInput::Batch(batch) => {
            let response = handle_batch(service, batch, deadline, &context.request_id).await?;
            return to_json(&response);
        }
        TransitionInput::Unrecognised(value) if value.get("Records").is_some() => {
            // A batch we cannot read must fail whole: answering success would delete it.
            let reason = match serde_json::from_value::<SqsEvent>(value) {
                Err(err) => err.to_string(),
                Ok(_) => "not an SQS batch".to_owned(),
            };
            tracing::error!(%reason, "unreadable SQS batch; SQS retries it, then dead-letters it");
            return Err(Diagnostic {
                error_type: "NonRetryable".to_owned(),
                error_message: format!("unreadable SQS batch: {}", preview(&reason)),
            });
        }
        TransitionInput::Event(envelope) => {
            let span = event_span(&context.request_id, envelope.id.as_deref());
            let started = Instant::now();
            let result = service
                .handle_parsed(
                    events::parse(&envelope),
                    envelope.id.as_deref().map(bounded_event_id),
                    deadline,
                )
                .instrument(span.clone())
                .await;
            record_outcome(&span, &result, started);
            result
        }
        TransitionInput::Unrecognised(value) => {
            let id = value.get("id").and_then(Value::as_str).map(preview);
            let span = event_span(&context.request_id, id.as_deref());
            let started = Instant::now();
            // Not a typed envelope: the service rejects it with the field named.
            let result = service
                .handle_value(value, deadline)
                .instrument(span.clone())
                .await;
            record_outcome(&span, &result, started);
            result
        }
    };
    match result {
        Ok(outcome) => to_json(&outcome),
        Err(error) => Err(telemetry::diagnostic(&error, error.is_retryable())),
    }
}

fn event_span(request_id: &str, event_id: Option<&str>) -> tracing::Span {
    let event_id = event_id.map(preview).unwrap_or_default();
    tracing::info_span!("event", request_id = %request_id, event_id = %event_id, user_id = tracing::field::Empty)
}

fn to_json(value: &impl serde::Serialize) -> Result<Value, Diagnostic> {
    serde_json::to_value(value).map_err(|err| Diagnostic {
        error_type: "NonRetryable".to_owned(),
        error_message: format!("response not serialisable: {err}"),
    })
}

/// Each record on its own (starts for many users share bulk Genesys calls); the response
/// lists the records SQS should retry or, after `maxReceiveCount`, dead-letter.
pub async fn handle_batch(
    service: &TransitionService,
    batch: SqsEvent,
    deadline: Deadline,
    request_id: &str,
) -> Result<SqsBatchResponse, Diagnostic> {
    let started = Instant::now();
    let mut ids = Vec::with_capacity(batch.records.len());
    let mut bodies = Vec::with_capacity(batch.records.len());
    for (index, record) in batch.records.into_iter().enumerate() {
        // Without a message id no single record can be retried: fail the batch whole.
        let Some(id) = record.message_id.filter(|id| !id.is_empty()) else {
            return Err(Diagnostic {
                error_type: "NonRetryable".to_owned(),
                error_message: format!("Records[{index}].messageId: is required"),
            });
        };
        ids.push(id);
        // An absent body is an empty one: rejected and audited like any malformed event.
        bodies.push(record.body.unwrap_or_default());
    }
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
            response.add_failure(message_id);
        }
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

    fn input(raw: &str) -> TransitionInput {
        serde_json::from_str(raw).expect("any JSON is an input")
    }

    #[test]
    fn inputs_are_told_apart_by_their_shape() {
        let sqs = input(include_str!("../../../tests/fixtures/sqs-batch.json"));
        assert!(matches!(sqs, TransitionInput::Batch(batch) if !batch.records.is_empty()));
        let event = input(include_str!(
            "../../../tests/fixtures/calendar-event-started.json"
        ));
        assert!(matches!(event, TransitionInput::Event(_)));
        // A wrong envelope type is not an EventBridge event: the service names the field.
        let wrong_id =
            input(r#"{"id": 5, "detail-type": "Focus Started", "source": "s", "detail": {}}"#);
        assert!(matches!(wrong_id, TransitionInput::Unrecognised(_)));
    }

    #[test]
    fn an_unreadable_batch_is_never_an_empty_batch() {
        // `messageId` of the wrong type: not an SqsEvent, so not silently zero records.
        let broken =
            input(r#"{"Records": [{"messageId": 7, "body": "{}", "eventSource": "aws:sqs"}]}"#);
        assert!(
            matches!(broken, TransitionInput::Unrecognised(value) if value.get("Records").is_some())
        );
    }
}
