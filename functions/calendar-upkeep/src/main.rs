//! The `calendar-upkeep` Lambda, run on a schedule: wires the roster, Graph, the table and the
//! sync queue once, then runs one bounded upkeep per invocation.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use presence_autopilot::clock::{Deadline, SystemClock};
use presence_autopilot::compose::{self, connector::UpkeepFunctionSettings};
use presence_autopilot::config::Env;
use presence_autopilot::service::calendar_upkeep::UpkeepService;
use presence_autopilot::telemetry;
use serde_json::{Value, json};

async fn handle(service: &UpkeepService, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
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

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let settings = UpkeepFunctionSettings::from_env(&Env::process())?;
    let service = compose::calendar_upkeep(&settings).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        handle(&service, event)
    }))
    .await
}
