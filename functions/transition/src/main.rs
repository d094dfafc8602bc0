//! The `transition` Lambda: composed once at cold start, then serves the burst queue's batches.

mod config;
mod handler;

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use presence_autopilot::compose;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = config::Config::from_env()?;
    let function = compose::transition(&config.transition, Some(&config.burst_queue_url)).await?;
    let redelivery = function.burst_queue.map(handler::Redelivery::on);
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        handler::handle(&function.service, redelivery.as_ref(), event)
    }))
    .await
}
