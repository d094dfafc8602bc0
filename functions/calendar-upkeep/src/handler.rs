//! The schedule's tick in, one bounded upkeep run, its report out.

use lambda_runtime::{Diagnostic, LambdaEvent};
use presence_autopilot::clock::{Deadline, SystemClock};
use presence_autopilot::service::calendar_upkeep::UpkeepService;
use presence_autopilot::telemetry;
use serde_json::{Value, json};

pub async fn handle(
    service: &UpkeepService,
    event: LambdaEvent<Value>,
) -> Result<Value, Diagnostic> {
    let deadline = Deadline::of_invocation(&event.context, &SystemClock);
    match service.run(deadline).await {
        Ok(report) => {
            tracing::info!(?report, "calendar upkeep");
            Ok(json!({
                "members": report.members,
                "optedOut": report.opted_out,
                "connected": report.connected,
                "unmatched": report.unmatched,
                "disconnected": report.disconnected,
                "queued": report.queued,
                "deferred": report.deferred,
            }))
        }
        // The next scheduled run starts over; nothing is half-written (every write is conditional).
        Err(error) => Err(telemetry::diagnostic(&error, true)),
    }
}
