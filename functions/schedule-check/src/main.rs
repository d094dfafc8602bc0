//! The `schedule-check` Lambda: wires configuration and adapters once, then serves the sweep
//! and planning events.

mod config;
mod handler;

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use presence_autopilot::aws::scheduler::EventBridgeSchedules;
use presence_autopilot::clock::SystemClock;
use presence_autopilot::compose::wire;
use presence_autopilot::service::schedule_check::ScheduleCheck;
use presence_autopilot::service::transition::TransitionService;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = config::Config::from_env()?;
    let aws = presence_autopilot::tls::aws_config().await;
    let wired = wire(&aws, &config.transition, Arc::new(SystemClock)).await?;
    let service = ScheduleCheck {
        transition: Arc::new(TransitionService::new(wired.deps)),
        schedules: Arc::new(EventBridgeSchedules::new(
            aws_sdk_scheduler::Client::new(&aws),
            config.scheduler.clone(),
        )),
        state: wired.store,
        shifts: Some(wired.shifts),
        clock: Arc::new(SystemClock),
        budget: config.sweep_budget,
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        handler::handle(&service, event)
    }))
    .await
}
