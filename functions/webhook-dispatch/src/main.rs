//! Reads the configuration and builds the adapters once, then serves SQS batches.

use lambda_runtime::{LambdaEvent, service_fn};
use webhook_dispatch::{config::Config, handler};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let aws = presence_autopilot::tls::aws_config().await;
    let dispatcher = handler::build(&config, &aws)?;
    let dispatcher = &dispatcher;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        handler::handle(dispatcher, event).await
    }))
    .await
}
