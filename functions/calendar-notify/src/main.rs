//! The `calendar-notify` Lambda behind a public Function URL: wires the endpoint once, then
//! answers Graph.

use calendar_notify::handler;
use lambda_runtime::{LambdaEvent, service_fn};
use presence_autopilot::compose::{self, connector::ConnectorSettings};
use presence_autopilot::config::Env;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let env = Env::process();
    let settings = ConnectorSettings::from_env(&env)?;
    let queue_url = env.required("SYNC_QUEUE_URL")?;
    let service = compose::calendar_notify(&settings, &queue_url).await?;
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<handler::FunctionUrlRequest>| handler::handle(&service, event),
    ))
    .await
}
