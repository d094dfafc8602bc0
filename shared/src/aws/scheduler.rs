//! EventBridge Scheduler as the `Schedules` port: one-time `at(...)` schedules in the project's
//! group, deleted after they fire, retried and dead-lettered by the service.

use async_trait::async_trait;
use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::operation::create_schedule::CreateScheduleError;
use aws_sdk_scheduler::operation::delete_schedule::DeleteScheduleError;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode,
    RetryPolicy, Target,
};

use crate::ports::{MessagingError, PlannedSchedule, Schedules};

/// Where planned events go and how the service retries them.
#[derive(Debug, Clone)]
pub struct SchedulerTarget {
    pub group: String,
    /// The burst queue transition reads: a schedule's input becomes one message of its batches.
    pub target_arn: String,
    /// The role EventBridge Scheduler assumes to send to it.
    pub role_arn: String,
    pub dead_letter_arn: String,
}

#[derive(Debug, Clone)]
pub struct EventBridgeSchedules {
    client: Client,
    target: SchedulerTarget,
}

impl EventBridgeSchedules {
    pub fn new(client: Client, target: SchedulerTarget) -> Self {
        Self { client, target }
    }

    fn target(&self, input: &str) -> Result<Target, MessagingError> {
        let retry = RetryPolicy::builder()
            .maximum_retry_attempts(10)
            .maximum_event_age_in_seconds(3600)
            .build();
        Target::builder()
            .arn(&self.target.target_arn)
            .role_arn(&self.target.role_arn)
            .input(input)
            .retry_policy(retry)
            .dead_letter_config(
                DeadLetterConfig::builder()
                    .arn(&self.target.dead_letter_arn)
                    .build(),
            )
            .build()
            .map_err(|e| MessagingError::Invalid(format!("schedule target: {e}")))
    }
}

/// `at(yyyy-mm-ddThh:mm:ss)`, interpreted in UTC.
fn at_expression(schedule: &PlannedSchedule) -> String {
    format!("at({})", schedule.at.format("%Y-%m-%dT%H:%M:%S"))
}

#[async_trait]
impl Schedules for EventBridgeSchedules {
    async fn upsert(&self, schedule: &PlannedSchedule) -> Result<(), MessagingError> {
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| MessagingError::Invalid(format!("flexible time window: {e}")))?;
        let created = self
            .client
            .create_schedule()
            .name(&schedule.name)
            .group_name(&self.target.group)
            .schedule_expression(at_expression(schedule))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window.clone())
            .action_after_completion(ActionAfterCompletion::Delete)
            .target(self.target(&schedule.input)?)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(CreateScheduleError::ConflictException(_))
                ) =>
            {
                // Planned before: move it (the same name, so repeats never make a second one).
                self.client
                    .update_schedule()
                    .name(&schedule.name)
                    .group_name(&self.target.group)
                    .schedule_expression(at_expression(schedule))
                    .schedule_expression_timezone("UTC")
                    .flexible_time_window(window)
                    .action_after_completion(ActionAfterCompletion::Delete)
                    .target(self.target(&schedule.input)?)
                    .send()
                    .await
                    .map_err(|err| super::messaging_error("UpdateSchedule", err))?;
                Ok(())
            }
            Err(err) => Err(super::messaging_error("CreateSchedule", err)),
        }
    }

    async fn delete(&self, name: &str) -> Result<bool, MessagingError> {
        match self
            .client
            .delete_schedule()
            .name(name)
            .group_name(&self.target.group)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(DeleteScheduleError::ResourceNotFoundException(_))
                ) =>
            {
                Ok(false)
            }
            Err(err) => Err(super::messaging_error("DeleteSchedule", err)),
        }
    }
}
