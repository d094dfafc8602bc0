//! SQS as the `SyncQueue`: "sync agent X" messages, SendMessageBatch in chunks of 10, retrying
//! only the failed entries; fails whole if any entry stays unsent (the endpoint then answers
//! 5xx and Graph delivers again).

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use super::messaging_error;
use crate::calendar::SyncRequest;
use crate::ports::{MessagingError, SyncQueue};

const MAX_BATCH: usize = 10;
const ATTEMPTS: u32 = 3;

#[derive(Debug, Clone)]
pub struct SqsSyncQueue {
    client: Client,
    queue_url: String,
}

impl SqsSyncQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl SyncQueue for SqsSyncQueue {
    async fn enqueue(&self, requests: &[SyncRequest]) -> Result<(), MessagingError> {
        for chunk in requests.chunks(MAX_BATCH) {
            let mut pending = Vec::with_capacity(chunk.len());
            for (index, request) in chunk.iter().enumerate() {
                let body = serde_json::to_string(request)
                    .map_err(|e| MessagingError::Invalid(format!("sync request: {e}")))?;
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message_body(body)
                    .build()
                    .map_err(|e| MessagingError::Invalid(e.to_string()))?;
                pending.push(entry);
            }
            let mut last_failure = String::new();
            for _ in 0..ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                let answer = self
                    .client
                    .send_message_batch()
                    .queue_url(&self.queue_url)
                    .set_entries(Some(pending.clone()))
                    .send()
                    .await
                    .map_err(|e| messaging_error("SendMessageBatch", e))?;
                let failed: Vec<&str> = answer.failed().iter().map(|f| f.id()).collect();
                if let Some(first) = answer.failed().first() {
                    last_failure = format!("{}: {}", first.code(), first.message().unwrap_or(""));
                }
                pending.retain(|entry| failed.contains(&entry.id()));
            }
            if !pending.is_empty() {
                return Err(MessagingError::Sdk {
                    operation: "SendMessageBatch",
                    message: format!("{} entries unsent: {last_failure}", pending.len()),
                });
            }
        }
        Ok(())
    }
}
