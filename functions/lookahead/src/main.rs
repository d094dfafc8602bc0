//! The `lookahead` Lambda: composed once at cold start, then run by its daily schedule.

mod handler;

use lambda_runtime::{LambdaEvent, service_fn};
use presence_autopilot::compose::{self, LookaheadSettings};
use presence_autopilot::config::Env;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let settings = LookaheadSettings::from_env(&Env::process())?;
    let service = compose::lookahead(&settings).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        handler::handle(&service, event)
    }))
    .await
}
