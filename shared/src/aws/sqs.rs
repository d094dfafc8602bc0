//! SQS as the `NotificationQueue` (SendMessageBatch in chunks of 10, retrying only the entries a
//! batch reports failed) and as webhook dispatch's `MessageVisibility`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

use super::messaging_error;
use crate::clock::Clock;
use crate::ports::{MessageVisibility, MessagingError, NotificationQueue, SendOutcome};
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

    fn entry(id: String, n: &Notification) -> Result<SendMessageBatchRequestEntry, MessagingError> {
        let attr = |value: String| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|err| MessagingError::Invalid(err.to_string()))
        };
        let body = serde_json::to_string(n)
            .map_err(|err| MessagingError::Invalid(format!("notification body: {err}")))?;
        SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body(body)
            .message_attributes("notificationId", attr(n.notification_id.to_string())?)
            .message_attributes("notificationKind", attr(n.kind.as_str().to_owned())?)
            .message_attributes("userId", attr(n.user_id.to_string())?)
            .build()
            .map_err(|err| MessagingError::Invalid(err.to_string()))
    }
}

/// One entry a batch call rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntryFailure {
    index: usize,
    code: String,
    message: String,
    /// Our fault (bad attribute, too large): sending it again fails the same way.
    sender_fault: bool,
}

/// What one batch call reported: `(index, message id)` per accepted entry, and the rejects.
#[derive(Debug, Default)]
struct BatchReply {
    sent: Vec<(usize, String)>,
    failed: Vec<EntryFailure>,
}

/// One SendMessageBatch call; a seam so the retry policy is unit-tested without a service that
/// fails single entries (moto never does).
#[async_trait]
trait BatchTransport: Send + Sync {
    async fn send_batch(
        &self,
        entries: Vec<(usize, &Notification)>,
    ) -> Result<BatchReply, MessagingError>;
}

#[async_trait]
impl BatchTransport for SqsQueue {
    async fn send_batch(
        &self,
        entries: Vec<(usize, &Notification)>,
    ) -> Result<BatchReply, MessagingError> {
        // Entry ids are positions in the caller's slice: unique within a batch even if the
        // caller passes the same notification twice.
        let entries = entries
            .into_iter()
            .map(|(i, n)| Self::entry(i.to_string(), n))
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|err| messaging_error("SendMessageBatch", err))?;
        let mut reply = BatchReply::default();
        for ok in out.successful() {
            if let Ok(index) = ok.id().parse() {
                reply.sent.push((index, ok.message_id().to_owned()));
            }
        }
        for failed in out.failed() {
            if let Ok(index) = failed.id().parse() {
                reply.failed.push(EntryFailure {
                    index,
                    code: failed.code().to_owned(),
                    message: failed.message().unwrap_or_default().to_owned(),
                    sender_fault: failed.sender_fault(),
                });
            }
        }
        Ok(reply)
    }
}

/// Sends in chunks of ten; entries a batch rejects through no fault of ours are sent again, up
/// to `max_attempts` calls per chunk. One outcome per notification, in input order.
async fn send_all(
    transport: &dyn BatchTransport,
    clock: &dyn Clock,
    max_attempts: u32,
    notifications: &[Notification],
) -> Result<Vec<SendOutcome>, MessagingError> {
    let mut outcomes: Vec<Option<SendOutcome>> = vec![None; notifications.len()];
    let indexes: Vec<usize> = (0..notifications.len()).collect();
    for chunk in indexes.chunks(MAX_BATCH) {
        let mut pending = chunk.to_vec();
        for attempt in 1..=max_attempts {
            let entries = pending
                .iter()
                .filter_map(|&i| notifications.get(i).map(|n| (i, n)))
                .collect();
            let reply = transport.send_batch(entries).await?;
            let mut retry = Vec::new();
            for (index, message_id) in reply.sent {
                if let (Some(slot), Some(n)) = (outcomes.get_mut(index), notifications.get(index)) {
                    let notification_id = n.notification_id;
                    *slot = Some(SendOutcome::Sent {
                        notification_id,
                        message_id,
                    });
                }
            }
            for failure in reply.failed {
                let index = failure.index;
                if let (Some(slot), Some(n)) = (outcomes.get_mut(index), notifications.get(index)) {
                    *slot = Some(SendOutcome::Failed {
                        notification_id: n.notification_id,
                        code: failure.code,
                        message: failure.message,
                    });
                    if !failure.sender_fault {
                        retry.push(index);
                    }
                }
            }
            if retry.is_empty() || attempt == max_attempts {
                break;
            }
            tracing::warn!(
                count = retry.len(),
                attempt,
                "SQS batch entries failed; retrying"
            );
            pending = retry;
            clock
                .sleep(Duration::from_millis(50 * u64::from(attempt)))
                .await;
        }
    }
    // An entry SQS neither accepted nor rejected would be a service bug; report it failed.
    Ok(outcomes
        .into_iter()
        .zip(notifications)
        .map(|(outcome, n)| {
            outcome.unwrap_or_else(|| SendOutcome::Failed {
                notification_id: n.notification_id,
                code: "Unreported".to_owned(),
                message: "SQS reported no result for this entry".to_owned(),
            })
        })
        .collect())
}

#[async_trait]
impl NotificationQueue for SqsQueue {
    async fn send(
        &self,
        notifications: &[Notification],
    ) -> Result<Vec<SendOutcome>, MessagingError> {
        send_all(self, self.clock.as_ref(), self.max_attempts, notifications).await
    }
}

/// ChangeMessageVisibility on the notifications queue.
#[derive(Debug, Clone)]
pub struct SqsVisibility {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsVisibility {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl MessageVisibility for SqsVisibility {
    async fn set_visibility(
        &self,
        receipt_handle: &str,
        after: Duration,
    ) -> Result<(), MessagingError> {
        // SQS takes whole seconds up to 12 h; round up so a Retry-After is never cut short.
        let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        let seconds = i32::try_from(seconds.min(43_200)).unwrap_or(43_200);
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|err| messaging_error("ChangeMessageVisibility", err))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use chrono::DateTime;

    use super::*;
    use crate::clock::ManualClock;
    use crate::model::UserId;
    use crate::state::NotificationKind;

    /// Rejects each index as scripted (`(failures left, sender fault)`) and records every call.
    #[derive(Default)]
    struct Scripted {
        failures: Mutex<HashMap<usize, (u32, bool)>>,
        calls: Mutex<Vec<Vec<usize>>>,
    }

    #[async_trait]
    impl BatchTransport for Scripted {
        async fn send_batch(
            &self,
            entries: Vec<(usize, &Notification)>,
        ) -> Result<BatchReply, MessagingError> {
            let mut failures = self.failures.lock().expect("lock");
            self.calls
                .lock()
                .expect("lock")
                .push(entries.iter().map(|e| e.0).collect());
            let mut reply = BatchReply::default();
            for (index, _) in entries {
                match failures.get_mut(&index) {
                    Some((left, sender_fault)) if *left > 0 => {
                        *left -= 1;
                        reply.failed.push(EntryFailure {
                            index,
                            code: "InternalError".to_owned(),
                            message: "scripted".to_owned(),
                            sender_fault: *sender_fault,
                        });
                    }
                    _ => reply.sent.push((index, format!("m{index}"))),
                }
            }
            Ok(reply)
        }
    }

    fn notifications(count: u64) -> Vec<Notification> {
        let user = UserId::parse("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f").expect("id");
        let at = DateTime::from_timestamp(1_770_000_000, 0).expect("time");
        (1..=count)
            .map(|seq| {
                let kind = NotificationKind::PresenceApplied;
                Notification::for_change(user.clone(), at, seq, kind, serde_json::Value::Null)
            })
            .collect()
    }

    fn clock() -> ManualClock {
        ManualClock::starting_at(DateTime::from_timestamp(0, 0).expect("time"))
    }

    #[tokio::test]
    async fn chunks_of_ten_and_only_failed_entries_are_retried() {
        let transport = Scripted::default();
        transport
            .failures
            .lock()
            .expect("lock")
            .extend([(3, (1, false)), (12, (2, false))]);
        let all = notifications(25);

        let outcomes = send_all(&transport, &clock(), 3, &all).await.expect("send");

        assert!(outcomes.iter().all(SendOutcome::is_sent), "{outcomes:?}");
        let calls = transport.calls.lock().expect("lock").clone();
        let sizes: Vec<usize> = calls.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![10, 1, 10, 1, 1, 5]);
        assert_eq!(
            (calls[1].clone(), calls[3].clone(), calls[4].clone()),
            (vec![3], vec![12], vec![12])
        );
    }

    #[tokio::test]
    async fn retries_are_bounded_and_sender_faults_are_not_retried() {
        let transport = Scripted::default();
        transport
            .failures
            .lock()
            .expect("lock")
            .extend([(0, (9, false)), (1, (9, true))]);
        let clock = clock();

        let outcomes = send_all(&transport, &clock, 3, &notifications(3))
            .await
            .expect("send");

        assert!(!outcomes[0].is_sent() && !outcomes[1].is_sent() && outcomes[2].is_sent());
        let calls = transport.calls.lock().expect("lock").clone();
        assert_eq!(calls, vec![vec![0, 1, 2], vec![0], vec![0]]);
        assert_eq!(
            clock.sleeps(),
            vec![Duration::from_millis(50), Duration::from_millis(100)]
        );
    }
}
