//! SQS as the `NotificationQueue`: SendMessageBatch in chunks of 10, retrying only the entries a
//! batch reports failed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

use super::sdk_error;
use crate::clock::Clock;
use crate::ports::{NotificationQueue, SendOutcome, StoreError};
use crate::state::Notification;

/// SQS accepts at most 10 entries per SendMessageBatch.
const MAX_BATCH: usize = 10;

#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    clock: Arc<dyn Clock>,
    max_attempts: u32,
}

impl SqsQueue {
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

    pub fn new(client: Client, queue_url: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            clock,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
        }
    }

    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    fn entry(id: String, n: &Notification) -> Result<SendMessageBatchRequestEntry, StoreError> {
        let attr = |value: String| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|err| StoreError::Invalid(err.to_string()))
        };
        let body = serde_json::to_string(n)
            .map_err(|err| StoreError::Invalid(format!("notification body: {err}")))?;
        SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body(body)
            .message_attributes("notificationId", attr(n.notification_id.to_string())?)
            .message_attributes("notificationKind", attr(n.kind.as_str().to_owned())?)
            .message_attributes("userId", attr(n.user_id.to_string())?)
            .build()
            .map_err(|err| StoreError::Invalid(err.to_string()))
    }

    /// Sends one chunk (≤ 10); `outcomes[i]` is filled for every index of the chunk.
    async fn send_chunk(
        &self,
        notifications: &[Notification],
        indexes: Vec<usize>,
        outcomes: &mut [Option<SendOutcome>],
    ) -> Result<(), StoreError> {
        let mut pending = indexes;
        for attempt in 1..=self.max_attempts {
            // Entry ids are the positions in the caller's slice: unique within a batch even if
            // the caller passes the same notification twice.
            let entries = pending
                .iter()
                .map(|&i| Self::entry(i.to_string(), &notifications[i]))
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|err| sdk_error("SendMessageBatch", err))?;
            for ok in out.successful() {
                if let Ok(i) = ok.id().parse::<usize>()
                    && let Some(slot) = outcomes.get_mut(i)
                {
                    *slot = Some(SendOutcome::Sent {
                        notification_id: notifications[i].notification_id,
                        message_id: ok.message_id().to_owned(),
                    });
                }
            }
            let mut retry = Vec::new();
            for failed in out.failed() {
                let Ok(i) = failed.id().parse::<usize>() else {
                    continue;
                };
                let Some(slot) = outcomes.get_mut(i) else {
                    continue;
                };
                *slot = Some(SendOutcome::Failed {
                    notification_id: notifications[i].notification_id,
                    code: failed.code().to_owned(),
                    message: failed.message().unwrap_or_default().to_owned(),
                });
                // A sender fault (bad attribute, too large) fails again the same way.
                if !failed.sender_fault() {
                    retry.push(i);
                }
            }
            if retry.is_empty() {
                break;
            }
            tracing::warn!(
                count = retry.len(),
                attempt,
                "SQS batch entries failed; retrying"
            );
            pending = retry;
            self.clock
                .sleep(Duration::from_millis(50 * u64::from(attempt)))
                .await;
        }
        Ok(())
    }
}

#[async_trait]
impl NotificationQueue for SqsQueue {
    async fn send(&self, notifications: &[Notification]) -> Result<Vec<SendOutcome>, StoreError> {
        let mut outcomes: Vec<Option<SendOutcome>> = vec![None; notifications.len()];
        let indexes: Vec<usize> = (0..notifications.len()).collect();
        for chunk in indexes.chunks(MAX_BATCH) {
            self.send_chunk(notifications, chunk.to_vec(), &mut outcomes)
                .await?;
        }
        let by_index: HashMap<usize, SendOutcome> = outcomes
            .into_iter()
            .enumerate()
            .filter_map(|(i, outcome)| outcome.map(|o| (i, o)))
            .collect();
        // An entry SQS neither accepted nor rejected would be a service bug; report it failed.
        Ok(notifications
            .iter()
            .enumerate()
            .map(|(i, n)| {
                by_index
                    .get(&i)
                    .cloned()
                    .unwrap_or_else(|| SendOutcome::Failed {
                        notification_id: n.notification_id,
                        code: "Unreported".to_owned(),
                        message: "SQS reported no result for this entry".to_owned(),
                    })
            })
            .collect())
    }
}
