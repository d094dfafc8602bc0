//! The `outbox-relay` Lambda: composed once at cold start, then relays the table's stream
//! batches.

mod config;
mod handler;

use aws_lambda_events::dynamodb::Event;
use lambda_runtime::{LambdaEvent, service_fn};
use presence_autopilot::compose;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = config::Config::from_env()?;
    let relay = compose::outbox_relay(&config.notifications_queue_url).await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Event>| {
        handler::handle(&relay, event)
    }))
    .await
}
