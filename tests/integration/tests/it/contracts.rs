//! The ports' contract tests (`presence_autopilot::fakes::contract`) against the real adapters
//! on moto: the same checks the fakes pass, so a fake cannot drift from what it stands for.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use presence_autopilot::aws::bus::EventBridgeBus;
use presence_autopilot::aws::connections::DynamoConnections;
use presence_autopilot::aws::scheduler::{EventBridgeSchedules, SchedulerTarget};
use presence_autopilot::clock::{ManualClock, SystemClock};
use presence_autopilot::fakes::{contract, table_contract};
use presence_autopilot::graph::{GraphClient, GraphSettings};
use presence_autopilot::model::UserId;
use secrecy::SecretString;
use serde_json::{Value, json};

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

/// The table's ports on the stand-in, on a manual clock (the leases' deadlines move with it).
async fn dynamo_table() -> (presence_autopilot::aws::dynamo::DynamoStore, ManualClock) {
    let (client, table) = moto::new_table().await;
    let clock = ManualClock::starting_at(Utc::now());
    let store =
        presence_autopilot::aws::dynamo::DynamoStore::new(client, &table, Arc::new(clock.clone()));
    (store, clock)
}

fn ports<'a>(
    store: &'a presence_autopilot::aws::dynamo::DynamoStore,
    clock: &'a ManualClock,
) -> table_contract::Table<'a> {
    table_contract::Table {
        state: store,
        log: store,
        audit: store,
        idempotency: store,
        clock,
    }
}

fn contract_user() -> UserId {
    UserId::parse("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f").expect("valid")
}

#[tokio::test]
async fn dynamodb_keeps_the_state_and_audit_contract() {
    let (store, clock) = dynamo_table().await;
    table_contract::state_and_audit(&ports(&store, &clock), contract_user()).await;
}

#[tokio::test]
async fn dynamodb_keeps_the_event_mark_contract() {
    let (store, clock) = dynamo_table().await;
    table_contract::event_marks(&ports(&store, &clock), contract_user()).await;
}

#[tokio::test]
async fn dynamodb_keeps_the_staffing_guard_contract() {
    let (store, clock) = dynamo_table().await;
    table_contract::staffing_guard(&ports(&store, &clock)).await;
}

#[tokio::test]
async fn dynamodb_keeps_the_idempotency_contract() {
    let (store, clock) = dynamo_table().await;
    table_contract::idempotency(&ports(&store, &clock)).await;
}

/// Books and removes events in a simulator user's calendar through its control surface:
/// graph-sim deletes an event, google-sim cancels it (Google's deletion).
struct SimDesk {
    /// `.../sim/users/{user}/events` (Graph) or `.../sim/calendars/{email}/events` (Google).
    events_url: String,
    /// The event's title field: `subject` (Graph) or `summary` (Google).
    title: &'static str,
    removal: Removal,
    http: reqwest::Client,
}

enum Removal {
    /// `DELETE {events}/{id}`.
    Delete,
    /// `POST {events}/{id}/cancel`.
    Cancel,
}

#[async_trait::async_trait]
impl contract::CalendarDesk for SimDesk {
    async fn book(&self, subject: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
        let mut body = json!({"start": from.to_rfc3339(), "end": to.to_rfc3339()});
        body[self.title] = Value::String(subject.to_owned());
        let created: Value = self
            .http
            .post(&self.events_url)
            .json(&body)
            .send()
            .await
            .expect("booked")
            .json()
            .await
            .expect("json");
        created["id"].as_str().expect("event id").to_owned()
    }

    async fn delete(&self, id: &str) {
        let url = format!("{}/{id}", self.events_url);
        let request = match self.removal {
            Removal::Delete => self.http.delete(url),
            Removal::Cancel => self.http.post(format!("{url}/cancel")),
        };
        let status = request.send().await.expect("removed").status();
        assert!(status.is_success(), "{status}");
    }
}

#[tokio::test]
async fn graph_keeps_the_calendar_contract_on_its_simulator() {
    let graph = graph_sim::SimServer::start(
        graph_sim::Seed::default(),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("graph simulator");
    let clock = Arc::new(SystemClock);
    let settings = GraphSettings {
        tenant_id: graph_sim::seed::TENANT_ID.to_owned(),
        client_id: graph_sim::seed::CLIENT_ID.to_owned(),
        client_secret: SecretString::from(graph_sim::seed::CLIENT_SECRET),
        graph_base_url: graph.base_url(),
        login_base_url: graph.base_url(),
        page_size: 2,
        notification_url: "https://notify.example.com/graph/notify".to_owned(),
        lifecycle_url: "https://notify.example.com/graph/lifecycle".to_owned(),
    };
    let api = GraphClient::new(settings, clock.clone()).expect("client");
    let desk = SimDesk {
        events_url: format!(
            "{}/sim/users/{}/events",
            graph.base_url(),
            graph_sim::seed::AGENT4
        ),
        title: "subject",
        removal: Removal::Delete,
        http: reqwest::Client::new(),
    };
    contract::calendar_api(&api, &desk, graph_sim::seed::AGENT4, clock.as_ref()).await;
}

#[tokio::test]
async fn genesys_keeps_the_platform_contract_on_its_simulator() {
    use genesys_sim::seed::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};

    let sim = crate::support::sim::TestSim::start().await;
    let (genesys, clock) = sim.client((DEMO_CLIENT_ID, DEMO_CLIENT_SECRET));
    let ada = UserId::parse("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f").expect("valid");
    let platform = contract::Platform {
        presence: &genesys,
        routing: &genesys,
        users: &genesys,
        catalog: &genesys,
    };
    contract::platform(&platform, &ada, "ada@example.com", &clock).await;
}

#[tokio::test]
async fn google_keeps_the_calendar_contract_on_its_simulator() {
    let google = google_sim::SimServer::start(
        google_sim::Seed::default(),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("google simulator");
    let clock = Arc::new(SystemClock);
    let api = crate::support::connector::google_client(
        &google,
        "https://notify.example.com",
        2,
        clock.clone(),
    );
    let desk = SimDesk {
        events_url: format!(
            "{}/sim/calendars/{}/events",
            google.base_url(),
            google_sim::seed::AGENT2
        ),
        title: "summary",
        removal: Removal::Cancel,
        http: reqwest::Client::new(),
    };
    contract::calendar_api(&api, &desk, google_sim::seed::AGENT2, clock.as_ref()).await;
}
