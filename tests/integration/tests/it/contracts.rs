//! The ports' contract tests (`presence_autopilot::fakes::contract`) against the real adapters
//! on moto: the same checks the fakes pass, so a fake cannot drift from what it stands for.

use std::sync::Arc;
use std::time::Duration;

use presence_autopilot::aws::bus::EventBridgeBus;
use presence_autopilot::aws::connections::DynamoConnections;
use presence_autopilot::aws::scheduler::{EventBridgeSchedules, SchedulerTarget};
use presence_autopilot::clock::SystemClock;
use presence_autopilot::fakes::contract;
use presence_autopilot::model::UserId;
use serde_json::Value;

use crate::support::connector::bus_to_queue;
use crate::support::dispatch::receive;
use crate::support::moto;

#[tokio::test]
async fn eventbridge_scheduler_keeps_the_schedules_contract() {
    let scheduler = moto::scheduler();
    let group = moto::unique_name("contract");
    scheduler
        .create_schedule_group()
        .name(&group)
        .send()
        .await
        .expect("schedule group");
    let schedules = EventBridgeSchedules::new(
        scheduler,
        SchedulerTarget {
            group,
            target_arn: "arn:aws:sqs:us-east-1:123456789012:presence-autopilot-burst".to_owned(),
            role_arn: "arn:aws:iam::123456789012:role/presence-autopilot-scheduler".to_owned(),
            dead_letter_arn: "arn:aws:sqs:us-east-1:123456789012:scheduler-dlq".to_owned(),
        },
    );
    contract::schedules(&schedules, "pa-contract-start").await;
}

#[tokio::test]
async fn eventbridge_keeps_the_event_bus_contract() {
    let sqs = moto::sqs();
    let (bus, queue) = bus_to_queue(&sqs).await;
    let clock = Arc::new(SystemClock);
    let events = EventBridgeBus::new(moto::eventbridge(), &bus, clock.clone());

    let published = contract::event_bus(&events, clock.as_ref()).await;

    let mut arrived = Vec::new();
    for _ in 0..10 {
        for message in receive(&sqs, &queue, Duration::ZERO).await {
            let envelope: Value =
                serde_json::from_str(message.body.as_deref().expect("body")).expect("json");
            arrived.push(envelope["detail"]["calendarEventId"].clone());
        }
        if arrived.len() >= published.len() {
            break;
        }
    }
    let mut expected: Vec<Value> = published
        .iter()
        .map(|entry| entry.detail["calendarEventId"].clone())
        .collect();
    arrived.sort_by_key(Value::to_string);
    expected.sort_by_key(Value::to_string);
    assert_eq!(arrived, expected, "every entry reached the bus once");
}

#[tokio::test]
async fn dynamodb_keeps_the_connection_store_contract() {
    let (client, table) = moto::new_table().await;
    let user = UserId::parse("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f").expect("valid");
    contract::connection_store(&DynamoConnections::new(client, &table), user).await;
}
