//! The `transition` Lambda: wires configuration and adapters once, then serves events.

mod config;
mod handler;

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use presence_autopilot::aws::sqs::SqsVisibility;
use presence_autopilot::compose::transition_deps;
use presence_autopilot::service::transition::TransitionService;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = config::Config::from_env()?;
    let aws = presence_autopilot::tls::aws_config().await;
    let deps = transition_deps(&aws, &config.transition).await?;
    let service = TransitionService::new(deps);
    let redelivery = config.burst_queue_url.as_ref().map(|url| {
        let visibility = SqsVisibility::new(aws_sdk_sqs::Client::new(&aws), url);
        handler::Redelivery::on(std::sync::Arc::new(visibility))
    });
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        handler::handle(&service, redelivery.as_ref(), event)
    }))
    .await
}
