//! One composition per Lambda function: each reads the AWS configuration (with the process's
//! one set of TLS roots, `AWS_ENDPOINT_URL` for local stand-ins) and builds the function's
//! service from its settings. A function's `main` calls exactly one of these; the `*_on`
//! builders they use take the AWS configuration from a test instead.

use std::sync::Arc;

use super::connector::{
    ConnectorBootError, ConnectorSettings, SyncFunctionSettings, UpkeepFunctionSettings,
    notify_service, sync_service, upkeep_service,
};
use super::dispatch::{WebhookDispatchSettings, dispatcher};
use super::{BootError, TransitionSettings, wire};
use crate::aws::scheduler::{EventBridgeSchedules, SchedulerTarget};
use crate::aws::sqs::{SqsQueue, SqsVisibility};
use crate::clock::SystemClock;
use crate::delivery::http::TransportFailure;
use crate::ports::MessageVisibility;
use crate::service::calendar_notify::NotifyService;
use crate::service::calendar_sync::SyncService;
use crate::service::calendar_upkeep::UpkeepService;
use crate::service::dispatch::Dispatcher;
use crate::service::outbox_relay::OutboxRelay;
use crate::service::schedule_check::ScheduleCheck;
use crate::service::transition::TransitionService;

async fn aws() -> aws_config::SdkConfig {
    crate::tls::aws_config().await
}

/// What `transition` serves with.
#[derive(Debug)]
pub struct TransitionFunction {
    pub service: TransitionService,
    /// The burst queue's visibility: a record that failed for a retryable reason comes back
    /// after a short backoff instead of the queue's timeout (`None`: not configured).
    pub burst_queue: Option<Arc<dyn MessageVisibility>>,
}

pub async fn transition(
    settings: &TransitionSettings,
    burst_queue_url: Option<&str>,
) -> Result<TransitionFunction, BootError> {
    let aws = aws().await;
    let wired = wire(&aws, settings, Arc::new(SystemClock)).await?;
    let burst_queue = burst_queue_url.map(|url| {
        let visibility = SqsVisibility::new(aws_sdk_sqs::Client::new(&aws), url);
        Arc::new(visibility) as Arc<dyn MessageVisibility>
    });
    Ok(TransitionFunction {
        service: TransitionService::new(wired.deps),
        burst_queue,
    })
}

/// `schedule-check`: planning and the sweep over the transition path it shares.
pub async fn schedule_check(
    settings: &TransitionSettings,
    scheduler: &SchedulerTarget,
    sweep_budget: usize,
) -> Result<ScheduleCheck, BootError> {
    let aws = aws().await;
    let wired = wire(&aws, settings, Arc::new(SystemClock)).await?;
    let policy = wired.deps.policy.clone();
    Ok(ScheduleCheck {
        transition: Arc::new(TransitionService::new(wired.deps)),
        policy,
        schedules: Arc::new(EventBridgeSchedules::new(
            aws_sdk_scheduler::Client::new(&aws),
            scheduler.clone(),
        )),
        state: wired.store,
        shifts: Some(wired.shifts),
        clock: Arc::new(SystemClock),
        budget: sweep_budget,
    })
}

/// `outbox-relay`: the notifications each commit added go to this queue.
pub async fn outbox_relay(notifications_queue_url: &str) -> OutboxRelay {
    let aws = aws().await;
    let queue = SqsQueue::new(
        aws_sdk_sqs::Client::new(&aws),
        notifications_queue_url,
        Arc::new(SystemClock),
    );
    OutboxRelay::new(Arc::new(queue))
}

/// `webhook-dispatch`: signed webhooks, Slack and Teams.
pub async fn webhook_dispatch(
    settings: &WebhookDispatchSettings,
) -> Result<Dispatcher, TransportFailure> {
    dispatcher(&aws().await, settings)
}

/// `calendar-notify`, behind its Function URL.
pub async fn calendar_notify(
    settings: &ConnectorSettings,
    sync_queue_url: &str,
) -> Result<NotifyService, ConnectorBootError> {
    notify_service(&aws().await, settings, sync_queue_url).await
}

/// `calendar-sync`, on the sync queue.
pub async fn calendar_sync(
    settings: &SyncFunctionSettings,
) -> Result<SyncService, ConnectorBootError> {
    sync_service(&aws().await, settings).await
}

/// `calendar-upkeep`, on its schedule.
pub async fn calendar_upkeep(
    settings: &UpkeepFunctionSettings,
) -> Result<UpkeepService, ConnectorBootError> {
    upkeep_service(&aws().await, settings).await
}
