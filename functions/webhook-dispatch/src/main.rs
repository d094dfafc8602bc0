//! The `webhook-dispatch` Lambda: composed once at cold start, then serves SQS batches.

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use presence_autopilot::compose::{self, WebhookDispatchSettings};
use webhook_dispatch::handler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let settings = WebhookDispatchSettings::from_env()?;
    let dispatcher = compose::webhook_dispatch(&settings).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        handler::handle(&dispatcher, event)
    }))
    .await
}
