//! The table's stream read as Lambda's event source mapping reads it, into the outbox relay:
//! what the `outbox-relay` function does in AWS, with the records moto's stream holds.

use std::collections::HashMap;

use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use presence_autopilot::service::outbox_relay::{OutboxRelay, RelayReport, StateChange};
use tokio::sync::Mutex;

use crate::support::moto;

pub struct StreamPump {
    streams: aws_sdk_dynamodbstreams::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    relay: OutboxRelay,
    /// The last sequence number relayed in full.
    relayed_up_to: Mutex<Option<String>>,
}

impl StreamPump {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, table: &str, relay: OutboxRelay) -> Self {
        Self {
            streams: moto::dynamodb_streams(),
            dynamodb,
            table: table.to_owned(),
            relay,
            relayed_up_to: Mutex::new(None),
        }
    }

    /// Relays every user state change written since the last call, as one batch; what failed is
    /// read again next time, as the event source mapping retries from the reported record.
    pub async fn relay(&self) -> RelayReport {
        let mut relayed_up_to = self.relayed_up_to.lock().await;
        let changes = self.changes_after(relayed_up_to.as_deref()).await;
        let report = self.relay.relay(&changes).await;
        let done = match &report.retry_from {
            Some(failed) => changes.iter().take_while(|c| &c.sequence != failed).last(),
            None => changes.last(),
        };
        if let Some(done) = done {
            *relayed_up_to = Some(done.sequence.clone());
        }
        report
    }

    /// The state changes after `after` (all of them when `None`), in stream order.
    async fn changes_after(&self, after: Option<&str>) -> Vec<StateChange> {
        let table = self
            .dynamodb
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .expect("describe table");
        let arn = table
            .table()
            .and_then(|t| t.latest_stream_arn())
            .expect("the table has a stream")
            .to_owned();
        let stream = self
            .streams
            .describe_stream()
            .stream_arn(&arn)
            .send()
            .await
            .expect("describe stream");
        let shards = stream
            .stream_description()
            .map(|d| d.shards().to_vec())
            .unwrap_or_default();
        let mut changes = Vec::new();
        for shard in shards {
            let request = self
                .streams
                .get_shard_iterator()
                .stream_arn(&arn)
                .shard_id(shard.shard_id().expect("shard id"));
            let request = match after {
                Some(sequence) => request
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(sequence),
                None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            };
            let mut iterator = request
                .send()
                .await
                .expect("shard iterator")
                .shard_iterator
                .expect("an iterator");
            loop {
                let page = self
                    .streams
                    .get_records()
                    .shard_iterator(&iterator)
                    .send()
                    .await
                    .expect("records");
                if page.records().is_empty() {
                    break;
                }
                changes.extend(page.records().iter().filter_map(|record| {
                    let change = record.dynamodb()?;
                    if string(change.keys(), "sk") != Some("STATE") {
                        return None;
                    }
                    Some(StateChange {
                        sequence: change.sequence_number()?.to_owned(),
                        before: change
                            .old_image()
                            .and_then(|i| string(Some(i), "state"))
                            .map(str::to_owned),
                        after: change
                            .new_image()
                            .and_then(|i| string(Some(i), "state"))
                            .map(str::to_owned),
                    })
                }));
                match page.next_shard_iterator {
                    Some(next) => iterator = next,
                    None => break,
                }
            }
        }
        changes
    }
}

fn string<'a>(image: Option<&'a HashMap<String, AttributeValue>>, name: &str) -> Option<&'a str> {
    match image?.get(name)? {
        AttributeValue::S(value) => Some(value),
        _ => None,
    }
}
