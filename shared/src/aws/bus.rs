//! EventBridge as the `EventBus`: PutEvents in batches of 10, retrying only the entries a batch
//! reports failed, within the deadline; nothing is dropped silently.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use crate::clock::{Clock, Deadline};
use crate::ports::{BusEntry, EventBus, MessagingError};

/// EventBridge accepts at most 10 entries per PutEvents.
const MAX_BATCH: usize = 10;
const ATTEMPTS: u32 = 4;
/// The `source` of every event the connector puts.
pub const CALENDAR_SOURCE: &str = "presence-autopilot.calendar";

#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: Client,
    bus_name: String,
    clock: Arc<dyn Clock>,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus_name: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
            clock,
        }
    }

    fn entry(&self, entry: &BusEntry) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(CALENDAR_SOURCE)
            .detail_type(entry.detail_type)
            .detail(entry.detail.to_string())
            .build()
    }

    /// Sends one batch; returns the entries to send again and the last failure's words.
    async fn send(
        &self,
        batch: Vec<PutEventsRequestEntry>,
    ) -> Result<(Vec<PutEventsRequestEntry>, Option<String>), MessagingError> {
        let answer = self
            .client
            .put_events()
            .set_entries(Some(batch.clone()))
            .send()
            .await
            .map_err(|e| super::messaging_error("PutEvents", e))?;
        if answer.failed_entry_count() == 0 {
            return Ok((Vec::new(), None));
        }
        let mut again = Vec::new();
        let mut reason = None;
        for (sent, result) in batch.into_iter().zip(answer.entries()) {
            if let Some(code) = result.error_code() {
                reason = Some(format!(
                    "{code}: {}",
                    result.error_message().unwrap_or_default()
                ));
                again.push(sent);
            }
        }
        Ok((again, reason))
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(
        &self,
        entries: &[BusEntry],
        deadline: Deadline,
    ) -> Result<(), MessagingError> {
        for chunk in entries.chunks(MAX_BATCH) {
            let mut pending: Vec<PutEventsRequestEntry> =
                chunk.iter().map(|entry| self.entry(entry)).collect();
            let mut last_reason = None;
            for attempt in 0..ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                if attempt > 0 {
                    let wait = Duration::from_millis(100 << attempt);
                    if wait >= deadline.remaining(self.clock.as_ref()) {
                        break;
                    }
                    self.clock.sleep(wait).await;
                }
                let (again, reason) = self.send(std::mem::take(&mut pending)).await?;
                pending = again;
                last_reason = reason.or(last_reason);
            }
            if !pending.is_empty() {
                return Err(MessagingError::Sdk {
                    operation: "PutEvents",
                    message: format!(
                        "{} of {} entries still failed: {}",
                        pending.len(),
                        chunk.len(),
                        last_reason.unwrap_or_default()
                    ),
                });
            }
        }
        Ok(())
    }
}
