//! The `calendar-sync` Lambda: wires Graph, the connections and the bus once, then syncs the
//! agents named on the sync queue.

mod handler;

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use presence_autopilot::compose::{self, connector::SyncFunctionSettings};
use presence_autopilot::config::Env;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let settings = SyncFunctionSettings::from_env(&Env::process())?;
    let service = compose::calendar_sync(&settings).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        handler::handle(&service, event)
    }))
    .await
}
