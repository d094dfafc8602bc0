//! SQS (and EventBridge for bus targets) as the `DeadLetters` port: list the stack's queues,
//! receive with a short visibility timeout, re-send, delete or release.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{
    Message, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
};

use super::sdk_error;
use crate::ports::{
    BusEvent, DeadLetter, DeadLetterQueue, DeadLetters, LetterAttribute, ReplayTarget, StoreError,
};

/// SQS returns at most 10 messages per receive.
const MAX_RECEIVE: usize = 10;

#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    sqs: aws_sdk_sqs::Client,
    events: aws_sdk_eventbridge::Client,
    visibility: i32,
    wait: i32,
}

impl SqsDeadLetters {
    /// Long enough to re-send a batch of 10 at one per second; short enough that a message an
    /// interrupted run left behind comes back soon.
    pub const DEFAULT_VISIBILITY: Duration = Duration::from_secs(30);
    /// A short long-poll, so an empty answer means empty rather than "this server had none".
    pub const DEFAULT_WAIT: Duration = Duration::from_secs(1);

    pub fn new(sqs: aws_sdk_sqs::Client, events: aws_sdk_eventbridge::Client) -> Self {
        Self {
            sqs,
            events,
            visibility: seconds(Self::DEFAULT_VISIBILITY),
            wait: seconds(Self::DEFAULT_WAIT),
        }
    }

    pub fn with_visibility(mut self, visibility: Duration) -> Self {
        self.visibility = seconds(visibility);
        self
    }

    /// ReceiveMessage's WaitTimeSeconds (0 to 20).
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = seconds(wait).min(20);
        self
    }

    async fn describe(&self, url: String) -> Result<DeadLetterQueue, StoreError> {
        let answer = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| sdk_error("GetQueueAttributes", e))?;
        let count = |name: &QueueAttributeName| {
            answer
                .attributes()
                .and_then(|a| a.get(name))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let depth = count(&QueueAttributeName::ApproximateNumberOfMessages)
            + count(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
        let mut sources = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .sqs
                .list_dead_letter_source_queues()
                .queue_url(&url)
                .max_results(1000)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| sdk_error("ListDeadLetterSourceQueues", e))?;
            sources.extend(page.queue_urls().iter().cloned());
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
        Ok(DeadLetterQueue {
            name: url.rsplit('/').next().unwrap_or(&url).to_owned(),
            url,
            depth,
            sources,
        })
    }

    async fn send_to_queue(&self, url: &str, letter: &DeadLetter) -> Result<String, StoreError> {
        let mut request = self
            .sqs
            .send_message()
            .queue_url(url)
            .message_body(&letter.body);
        for (name, attribute) in &letter.attributes {
            let value = MessageAttributeValue::builder()
                .data_type(&attribute.data_type)
                .string_value(&attribute.value)
                .build()
                .map_err(|e| StoreError::Invalid(format!("attribute {name}: {e}")))?;
            request = request.message_attributes(name, value);
        }
        if url.ends_with(".fifo") {
            let group = letter.group_id.clone().ok_or_else(|| {
                StoreError::Invalid(format!(
                    "{url} is a FIFO queue and message {} has no MessageGroupId",
                    letter.message_id
                ))
            })?;
            // The DLQ message id is stable across retries of this replay, so SQS dedups them.
            let dedup = letter
                .deduplication_id
                .clone()
                .unwrap_or_else(|| letter.message_id.clone());
            request = request
                .message_group_id(group)
                .message_deduplication_id(dedup);
        }
        let answer = request
            .send()
            .await
            .map_err(|e| sdk_error("SendMessage", e))?;
        answer.message_id.ok_or_else(|| StoreError::Sdk {
            operation: "SendMessage",
            message: "the answer carries no message id".to_owned(),
        })
    }

    async fn put_event(&self, bus: &str, letter: &DeadLetter) -> Result<String, StoreError> {
        let event = BusEvent::parse(&letter.body)?;
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(bus)
            .source(event.source)
            .detail_type(event.detail_type)
            .detail(event.detail.to_string())
            .set_resources(Some(event.resources))
            .set_time(event.time.map(|t| {
                aws_sdk_eventbridge::primitives::DateTime::from_millis(t.timestamp_millis())
            }))
            .build();
        let answer = self
            .events
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| sdk_error("PutEvents", e))?;
        let result = answer.entries().first();
        match result.and_then(|r| r.event_id()) {
            Some(id) if answer.failed_entry_count() == 0 => Ok(id.to_owned()),
            _ => Err(StoreError::Sdk {
                operation: "PutEvents",
                message: format!(
                    "entry refused: {}: {}",
                    result.and_then(|r| r.error_code()).unwrap_or("no code"),
                    result.and_then(|r| r.error_message()).unwrap_or_default()
                ),
            }),
        }
    }
}

#[async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn list(&self, prefix: &str) -> Result<Vec<DeadLetterQueue>, StoreError> {
        let mut urls = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .sqs
                .list_queues()
                .queue_name_prefix(prefix)
                .max_results(1000)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| sdk_error("ListQueues", e))?;
            urls.extend(page.queue_urls().iter().cloned());
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
        let mut queues = Vec::with_capacity(urls.len());
        for url in urls {
            queues.push(self.describe(url).await?);
        }
        queues.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(queues)
    }

    async fn peek(&self, queue_url: &str, max: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let max = i32::try_from(max.clamp(1, MAX_RECEIVE)).unwrap_or(1);
        let answer = self
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(max)
            .visibility_timeout(self.visibility)
            .wait_time_seconds(self.wait)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| sdk_error("ReceiveMessage", e))?;
        answer.messages().iter().map(letter).collect()
    }

    async fn resend(
        &self,
        target: &ReplayTarget,
        letter: &DeadLetter,
    ) -> Result<String, StoreError> {
        match target {
            ReplayTarget::Queue { url } => self.send_to_queue(url, letter).await,
            ReplayTarget::Bus { name } => self.put_event(name, letter).await,
        }
    }

    async fn delete(&self, queue_url: &str, letter: &DeadLetter) -> Result<(), StoreError> {
        self.sqs
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(&letter.receipt_handle)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteMessage", e))?;
        Ok(())
    }

    async fn release(&self, queue_url: &str, letter: &DeadLetter) -> Result<(), StoreError> {
        self.sqs
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(&letter.receipt_handle)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| sdk_error("ChangeMessageVisibility", e))?;
        Ok(())
    }
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

/// Reads one received message; ids and handle are always present in a real answer.
fn letter(message: &Message) -> Result<DeadLetter, StoreError> {
    let required = |value: Option<&str>, field: &str| {
        value.map(str::to_owned).ok_or_else(|| StoreError::Corrupt {
            item: "received message".to_owned(),
            field: field.to_owned(),
            reason: "missing".to_owned(),
        })
    };
    let system = |name: MessageSystemAttributeName| {
        message
            .attributes()
            .and_then(|a| a.get(&name))
            .map(String::to_owned)
    };
    let attributes: BTreeMap<String, LetterAttribute> = message
        .message_attributes()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| {
            value.string_value().map(|text| {
                let attribute = LetterAttribute {
                    data_type: value.data_type().to_owned(),
                    value: text.to_owned(),
                };
                (name.clone(), attribute)
            })
        })
        .collect();
    Ok(DeadLetter {
        message_id: required(message.message_id(), "MessageId")?,
        receipt_handle: required(message.receipt_handle(), "ReceiptHandle")?,
        body: message.body().unwrap_or_default().to_owned(),
        attributes,
        receive_count: system(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        first_sent: system(MessageSystemAttributeName::SentTimestamp)
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(chrono::DateTime::from_timestamp_millis),
        group_id: system(MessageSystemAttributeName::MessageGroupId),
        deduplication_id: system(MessageSystemAttributeName::MessageDeduplicationId),
    })
}
