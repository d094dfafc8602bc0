//! Translates Lambda input into the schedule-check use case: the every-minute sweep (an
//! EventBridge `Scheduled Event`) or planning (`Calendar Event Upserted` / `Deleted`).

use lambda_runtime::{Diagnostic, LambdaEvent};
use presence_autopilot::clock::{Deadline, SystemClock};
use presence_autopilot::ingress;
use presence_autopilot::service::schedule_check::ScheduleCheck;
use serde_json::Value;
use tracing::Instrument;

const SWEEP: &str = "Scheduled Event";

pub async fn handle(
    service: &ScheduleCheck,
    event: LambdaEvent<Value>,
) -> Result<Value, Diagnostic> {
    let (payload, context) = event.into_parts();
    let deadline = Deadline::of_invocation(&context, &SystemClock);
    let event_id = payload
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let span = tracing::info_span!("event", request_id = %context.request_id, event_id = %event_id);
    let sweep = payload.get("detail-type").and_then(Value::as_str) == Some(SWEEP);
    async {
        let result = if sweep {
            service.sweep(deadline).await.map(|report| {
                tracing::info!(due = report.due, processed = report.processed, left = report.left, errors = report.errors, "sweep run");
                serde_json::to_value(report).unwrap_or_default()
            })
        } else {
            service.plan_event(ingress::canonical_event(payload), deadline).await.map(|outcome| {
                tracing::info!(action = %outcome.action, reason = ?outcome.reason, schedules = outcome.schedules.len(), "planning event handled");
                serde_json::to_value(outcome).unwrap_or_default()
            })
        };
        result.map_err(|error| {
            tracing::error!(%error, retryable = error.is_retryable(), "schedule-check failed");
            presence_autopilot::telemetry::diagnostic(&error, error.is_retryable())
        })
    }
    .instrument(span)
    .await
}
