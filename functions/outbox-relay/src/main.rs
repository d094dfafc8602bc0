//! The `outbox-relay` Lambda: wires the notification queue once, then relays stream batches.

mod config;
mod handler;

use std::sync::Arc;

use aws_lambda_events::dynamodb::Event;
use lambda_runtime::{LambdaEvent, service_fn};
use presence_autopilot::aws::sqs::SqsQueue;
use presence_autopilot::clock::SystemClock;
use presence_autopilot::service::outbox_relay::OutboxRelay;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = config::Config::from_env()?;
    let aws = presence_autopilot::tls::aws_config().await;
    let queue = SqsQueue::new(
        aws_sdk_sqs::Client::new(&aws),
        &config.notifications_queue_url,
        Arc::new(SystemClock),
    );
    let relay = OutboxRelay::new(Arc::new(queue));
    lambda_runtime::run(service_fn(|event: LambdaEvent<Event>| {
        handler::handle(&relay, event)
    }))
    .await
}
