//! The calendar connector on loopback: the Graph and Google simulators, the real
//! `calendar-notify` handler served over HTTP, the sync service with the real Graph and Google
//! clients, and on the local AWS stand-in the table, the sync queue and a bus whose rule copies
//! every event to a queue the test reads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use graph_sim::{Seed, SimServer};
use presence_autopilot::aws::bus::{CALENDAR_SOURCE, EventBridgeBus};
use presence_autopilot::aws::connections::DynamoConnections;
use presence_autopilot::aws::sync_queue::SqsSyncQueue;
use presence_autopilot::calendar::{ClientStateKey, Connection, Provider, SyncReason, SyncRequest};
use presence_autopilot::clock::{Clock, Deadline, SystemClock};
use presence_autopilot::google::{GoogleClient, GoogleSettings};
use presence_autopilot::graph::{GraphClient, GraphSettings};
use presence_autopilot::model::UserId;
use presence_autopilot::ports::{CalendarApis, ConnectionStore, SecretDocument};
use presence_autopilot::service::calendar_notify::NotifyService;
use presence_autopilot::service::calendar_sync::{
    SyncError, SyncReport, SyncService, SyncSettings,
};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::dispatch::receive;
use super::moto;

pub const KEY: &str = "integration-client-state-key-0123456789";

/// The test service account's key file (`tests/fixtures/google`).
const GOOGLE_KEY_FILE: &str = include_str!("../../../../fixtures/google/test-service-account.json");

#[derive(Debug)]
pub struct Connector {
    pub graph: SimServer,
    pub google: google_sim::SimServer,
    pub endpoint: String,
    pub notify: Arc<NotifyService>,
    pub sync: SyncService,
    pub connections: Arc<DynamoConnections>,
    /// The connector's table (connections, mirror), for scanning what it stores.
    pub table: String,
    pub sqs: aws_sdk_sqs::Client,
    pub sync_queue: String,
    pub bus_queue: String,
    http: reqwest::Client,
    _endpoint_server: tokio::task::JoinHandle<()>,
}

async fn queue(sqs: &aws_sdk_sqs::Client, prefix: &str) -> (String, String) {
    let url = sqs
        .create_queue()
        .queue_name(moto::unique_name(prefix))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");
    let arn = moto::queue_arn(sqs, &url).await;
    (url, arn)
}

/// A bus with one rule sending the connector's events to a queue; returns (bus, queue url).
pub async fn bus_to_queue(sqs: &aws_sdk_sqs::Client) -> (String, String) {
    moto::bus_to_queue(sqs, json!({"source": [CALENDAR_SOURCE]})).await
}

impl Connector {
    pub async fn start() -> Self {
        Self::start_with(Seed::default(), SyncSettings::default(), 50).await
    }

    pub async fn start_with(seed: Seed, settings: SyncSettings, page_size: u32) -> Self {
        let graph = SimServer::start(seed, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("graph simulator");
        let (dynamodb, table) = moto::new_table().await;
        let connections = Arc::new(DynamoConnections::new(dynamodb, &table));
        let sqs = moto::sqs();
        let table_name = table.clone();
        let (sync_queue, _) = queue(&sqs, "sync").await;
        let (bus, bus_queue) = bus_to_queue(&sqs).await;
        let key = ClientStateKey::new(SecretString::from(KEY)).expect("key");
        let notify = Arc::new(NotifyService {
            connections: connections.clone(),
            queue: Arc::new(SqsSyncQueue::new(sqs.clone(), &sync_queue)),
            key: key.clone(),
        });
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind endpoint");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let router = calendar_notify::local::router(notify.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let google = google_sim::SimServer::start(
            google_sim::Seed::default(),
            "127.0.0.1:0".parse().expect("addr"),
        )
        .await
        .expect("google simulator");
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let settings_graph = GraphSettings {
            tenant_id: graph_sim::seed::TENANT_ID.to_owned(),
            client_id: graph_sim::seed::CLIENT_ID.to_owned(),
            client_secret: SecretString::from(graph_sim::seed::CLIENT_SECRET),
            graph_base_url: graph.base_url(),
            login_base_url: graph.base_url(),
            page_size,
            notification_url: format!("{endpoint}/graph/notify"),
            lifecycle_url: format!("{endpoint}/graph/lifecycle"),
        };
        let sync = SyncService {
            calendars: CalendarApis {
                microsoft: Some(Arc::new(
                    GraphClient::new(settings_graph, clock.clone()).expect("client"),
                )),
                google: Some(Arc::new(google_client(
                    &google,
                    &endpoint,
                    page_size,
                    clock.clone(),
                ))),
            },
            connections: connections.clone(),
            bus: Arc::new(EventBridgeBus::new(
                moto::eventbridge(),
                &bus,
                clock.clone(),
            )),
            key,
            clock,
            settings,
        };
        Self {
            graph,
            google,
            endpoint,
            notify,
            sync,
            connections,
            table: table_name,
            sqs,
            sync_queue,
            bus_queue,
            http: reqwest::Client::new(),
            _endpoint_server: server,
        }
    }

    pub fn deadline(&self, seconds: u64) -> Deadline {
        Deadline::after(&SystemClock, Duration::from_secs(seconds))
    }

    /// Connects Graph user `graph_id` as a new agent; returns the agent's Genesys id.
    pub async fn connect(&self, graph_id: &str) -> UserId {
        let user = UserId::parse(&uuid::Uuid::new_v4().to_string()).expect("uuid");
        let connection = Connection::new(user.clone(), format!("{graph_id}@example"), graph_id);
        self.connections.put(&connection).await.expect("connect");
        user
    }

    pub async fn sync(&self, user: &UserId, reason: SyncReason) -> Result<SyncReport, SyncError> {
        let request = SyncRequest {
            user_id: user.clone(),
            reason,
        };
        self.sync.sync(&request, self.deadline(20)).await
    }

    pub async fn connection(&self, user: &UserId) -> Connection {
        self.connections
            .get(user)
            .await
            .expect("read connection")
            .expect("connected")
    }

    /// Connects Google Workspace user `email` as a new agent; returns the agent's Genesys id.
    pub async fn connect_google(&self, email: &str) -> UserId {
        let user = UserId::parse(&uuid::Uuid::new_v4().to_string()).expect("uuid");
        let connection = Connection::new(user.clone(), email, email).on(Provider::Google);
        self.connections.put(&connection).await.expect("connect");
        user
    }

    pub async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        self.control_at(&self.graph.base_url(), method, path, body)
            .await
    }

    pub async fn google_control(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        self.control_at(&self.google.base_url(), method, path, body)
            .await
    }

    async fn control_at(
        &self,
        base: &str,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Value {
        let response = self
            .http
            .request(method.clone(), format!("{base}{path}"))
            .json(&body)
            .send()
            .await
            .expect("graph control");
        let status = response.status();
        let text = response.text().await.expect("control body");
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Creates an event in Graph user `graph_id`'s calendar; returns its Graph id.
    pub async fn book(
        &self,
        graph_id: &str,
        subject: &str,
        from_now_min: i64,
        minutes: i64,
    ) -> String {
        let start = chrono::Utc::now() + chrono::Duration::minutes(from_now_min);
        let end = start + chrono::Duration::minutes(minutes);
        let event = self
            .control(
                reqwest::Method::POST,
                &format!("/sim/users/{graph_id}/events"),
                json!({"subject": subject, "start": start.to_rfc3339(), "end": end.to_rfc3339()}),
            )
            .await;
        event["id"].as_str().expect("event id").to_owned()
    }

    /// Sync requests on the queue, deleted as read.
    pub async fn queued_requests(&self, wait: Duration) -> Vec<SyncRequest> {
        let messages = receive(&self.sqs, &self.sync_queue, wait).await;
        let mut requests = Vec::new();
        for message in messages {
            let body = message.body.expect("body");
            requests.push(serde_json::from_str(&body).expect("a sync request"));
            self.sqs
                .delete_message()
                .queue_url(&self.sync_queue)
                .receipt_handle(message.receipt_handle.expect("handle"))
                .send()
                .await
                .expect("delete");
        }
        requests
    }

    /// Everything the connector put on the bus since last asked, as (detail-type, detail).
    pub async fn bus_events(&self) -> Vec<(String, Value)> {
        let mut events = Vec::new();
        loop {
            let messages = receive(&self.sqs, &self.bus_queue, Duration::ZERO).await;
            if messages.is_empty() {
                return events;
            }
            for message in messages {
                let envelope: Value =
                    serde_json::from_str(message.body.as_deref().expect("body")).expect("json");
                events.push((
                    envelope["detail-type"]
                        .as_str()
                        .expect("detail-type")
                        .to_owned(),
                    envelope["detail"].clone(),
                ));
                self.sqs
                    .delete_message()
                    .queue_url(&self.bus_queue)
                    .receipt_handle(message.receipt_handle.expect("handle"))
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }

    /// POSTs `body` to the endpoint path with `query`; returns status, content type and body.
    pub async fn post(&self, path_and_query: &str, body: &str) -> (u16, String, String) {
        let response = self
            .http
            .post(format!("{}{path_and_query}", self.endpoint))
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body.to_owned())
            .send()
            .await
            .expect("endpoint");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (status, content_type, response.text().await.expect("body"))
    }

    /// Waits (on the simulator's signal, not a sleep) for `count` delivery attempts.
    pub async fn deliveries(&self, count: usize) -> Vec<Value> {
        let answer = self
            .control(
                reqwest::Method::POST,
                "/sim/deliveries/wait",
                json!({"count": count, "timeout_ms": 10_000}),
            )
            .await;
        answer.as_array().cloned().unwrap_or_default()
    }

    /// The same for the Google simulator's notifications.
    pub async fn google_deliveries(&self, count: usize) -> Vec<Value> {
        let answer = self
            .google_control(
                reqwest::Method::POST,
                "/sim/deliveries/wait",
                json!({"count": count, "timeoutMs": 10_000}),
            )
            .await;
        answer.as_array().cloned().unwrap_or_default()
    }

    /// A Google-style notification (headers only) to the endpoint; returns the status.
    pub async fn post_google(&self, headers: &[(&str, &str)]) -> u16 {
        let mut request = self.http.post(format!("{}/google/notify", self.endpoint));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("endpoint").status().as_u16()
    }
}

/// Settings for the Google client: the test key file, the simulator as token endpoint and API.
pub fn google_settings(
    google: &google_sim::SimServer,
    endpoint: &str,
    page_size: u32,
) -> GoogleSettings {
    let mut file: Value = serde_json::from_str(GOOGLE_KEY_FILE).expect("key file");
    file["token_uri"] = Value::String(format!("{}/token", google.base_url()));
    file["apiBaseUrl"] = Value::String(google.base_url());
    let doc = SecretDocument::parse("google", SecretString::from(file.to_string())).expect("doc");
    let mut settings = GoogleSettings::from_secret(&doc)
        .expect("settings")
        .with_notification_base(endpoint);
    settings.page_size = page_size;
    settings
}

pub fn google_client(
    google: &google_sim::SimServer,
    endpoint: &str,
    page_size: u32,
    clock: Arc<dyn Clock>,
) -> GoogleClient {
    GoogleClient::new(google_settings(google, endpoint, page_size), clock).expect("google client")
}
