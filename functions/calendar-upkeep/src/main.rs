//! The `calendar-upkeep` Lambda, run on a schedule: composed once at cold start (the roster,
//! the calendar services, the table, the sync queue), then one bounded upkeep per invocation.

mod handler;

use lambda_runtime::{LambdaEvent, service_fn};
use presence_autopilot::compose::{self, connector::UpkeepFunctionSettings};
use presence_autopilot::config::Env;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let settings = UpkeepFunctionSettings::from_env(&Env::process())?;
    let service = compose::calendar_upkeep(&settings).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        handler::handle(&service, event)
    }))
    .await
}
