//! The second yardstick: what `transition` costs to start before any of its own work. It sets
//! up logging as `transition` does, loads the AWS configuration and builds the same SDK clients
//! (Secrets Manager, DynamoDB, SQS) and the same HTTP client (our roots, rustls), then answers
//! every event with the event. `make bench` reads `transition`'s init against it and against
//! the minimal echo, so the gap our code adds is told apart from the gap the SDK brings.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use presence_autopilot::tls;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let aws = tls::aws_config().await;
    let clients = (
        aws_sdk_secretsmanager::Client::new(&aws),
        aws_sdk_dynamodb::Client::new(&aws),
        aws_sdk_sqs::Client::new(&aws),
        tls::client_builder().build()?,
    );
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        // Held by the handler, as the service holds its clients.
        let _held = &clients;
        async move { Ok::<Value, Error>(event.payload) }
    }))
    .await
}
