//! Translates the schedule's invocation into one look-ahead run. The input says nothing the run
//! needs (EventBridge Scheduler sends the template's fixed `Input`): the day is tomorrow in the
//! configured zone, at the moment the run happens.

use lambda_runtime::{Diagnostic, LambdaEvent};
use presence_autopilot::clock::{Deadline, SystemClock};
use presence_autopilot::service::lookahead::Lookahead;
use serde_json::Value;
use tracing::Instrument;

pub async fn handle(service: &Lookahead, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let (_, context) = event.into_parts();
    let deadline = Deadline::of_invocation(&context, &SystemClock);
    let span = tracing::info_span!("lookahead", request_id = %context.request_id);
    async {
        match service.run(deadline).await {
            Ok(report) => {
                let sent = report.teams.iter().filter(|t| t.notification_id.is_some()).count();
                tracing::info!(date = %report.date, teams = report.teams.len(), sent, "look-ahead run");
                Ok(serde_json::to_value(report).unwrap_or_default())
            }
            Err(error) => {
                tracing::error!(%error, retryable = error.is_retryable(), "look-ahead failed");
                Err(presence_autopilot::telemetry::diagnostic(
                    &error,
                    error.is_retryable(),
                ))
            }
        }
    }
    .instrument(span)
    .await
}
