//! The `schedule-check` Lambda: composed once at cold start, then serves the sweep and the
//! planning events.

mod config;
mod handler;

use lambda_runtime::{LambdaEvent, service_fn};
use presence_autopilot::compose;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = config::Config::from_env()?;
    let service =
        compose::schedule_check(&config.transition, &config.scheduler, config.sweep_budget).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        handler::handle(&service, event)
    }))
    .await
}
