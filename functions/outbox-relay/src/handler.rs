//! The DynamoDB stream event → the user state changes it holds → the relay; the answer names the
//! first record to deliver again (`ReportBatchItemFailures`), so a user's notifications keep
//! their order.

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::{Diagnostic, LambdaEvent};
use presence_autopilot::service::outbox_relay::{OutboxRelay, StateChange};

/// The sort key of a user's state item (`USER#<id>` / `STATE`); other items are not relayed.
const STATE_SK: &str = "STATE";

pub async fn handle(
    relay: &OutboxRelay,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, Diagnostic> {
    let changes = state_changes(&event.payload.records);
    let report = relay.relay(&changes).await;
    tracing::info!(
        records = event.payload.records.len(),
        state_changes = changes.len(),
        relayed = report.relayed,
        unreadable = report.unreadable.len(),
        retry_from = report.retry_from.as_deref(),
        "stream batch relayed"
    );
    let mut response = DynamoDbEventResponse::default();
    if let Some(sequence) = report.retry_from {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(sequence);
        response.batch_item_failures.push(failure);
    }
    Ok(response)
}

/// The records about user state items, as the relay reads them.
pub fn state_changes(records: &[EventRecord]) -> Vec<StateChange> {
    records
        .iter()
        .filter(|record| string_attribute(&record.change.keys, "sk").as_deref() == Some(STATE_SK))
        .map(|record| StateChange {
            sequence: record.change.sequence_number.clone().unwrap_or_else(|| {
                tracing::warn!(event_id = %record.event_id, "a stream record without a sequence number");
                String::new()
            }),
            before: string_attribute(&record.change.old_image, "state"),
            after: string_attribute(&record.change.new_image, "state"),
        })
        .collect()
}

/// A string attribute of an image (`{"S": "..."}`), if the image has it.
fn string_attribute<T: serde::Serialize>(image: &T, name: &str) -> Option<String> {
    let image = serde_json::to_value(image).ok()?;
    image.get(name)?.get("S")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use presence_autopilot::fakes::FakeQueue;

    use super::*;

    fn event(json: &str) -> Event {
        serde_json::from_str(json).expect("a stream event")
    }

    #[tokio::test]
    async fn only_state_items_are_read_and_a_failed_send_is_reported_by_its_sequence() {
        let stream = event(include_str!(
            "../../../tests/fixtures/dynamodb-stream-batch.json"
        ));
        let changes = state_changes(&stream.records);
        let sequences: Vec<_> = changes.iter().map(|c| c.sequence.as_str()).collect();
        assert_eq!(
            sequences,
            vec!["100", "300"],
            "the audit record is not a state item"
        );
        assert!(changes[0].before.is_none() && changes[0].after.is_some());

        let queue = Arc::new(FakeQueue::default());
        let relay = OutboxRelay::new(queue.clone());
        let context = lambda_runtime::Context::default();
        let answer = handle(&relay, LambdaEvent::new(stream.clone(), context.clone()))
            .await
            .expect("answered");
        assert!(answer.batch_item_failures.is_empty());
        assert_eq!(queue.sent().len(), 2);

        let failing = Arc::new(FakeQueue::default());
        for notification in queue.sent() {
            failing.fail(notification.notification_id);
        }
        let relay = OutboxRelay::new(failing);
        let answer = handle(&relay, LambdaEvent::new(stream, context))
            .await
            .expect("answered");
        let failed: Vec<_> = answer
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_deref())
            .collect();
        assert_eq!(failed, vec![Some("100")]);
    }
}
