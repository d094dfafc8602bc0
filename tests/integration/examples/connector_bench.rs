//! `connector_bench [--agents N] [--requests N]`: the Microsoft 365 connector's two figures for
//! `make bench`, on loopback against the AWS endpoint the environment names (the local stand-in,
//! through `AWS_ENDPOINT_URL`; `scripts/bench_connector.py` starts it) and an in-process Graph
//! simulator:
//! - the notification endpoint's answer time over HTTP (the real handler, its DynamoDB lookup of
//!   the subscriptions and its SQS send), p50 / p99 / max, for handshakes and notification bodies;
//! - Graph calls per changed calendar event, counted by the simulator, when each change is
//!   synced on its own and when a burst of changes shares one sync.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use presence_autopilot::aws::bus::EventBridgeBus;
use presence_autopilot::aws::connections::DynamoConnections;
use presence_autopilot::aws::dynamo::DynamoStore;
use presence_autopilot::aws::sync_queue::SqsSyncQueue;
use presence_autopilot::calendar::{ClientStateKey, Connection, SyncReason, SyncRequest};
use presence_autopilot::clock::{Clock, Deadline, SystemClock};
use presence_autopilot::graph::{GraphClient, GraphSettings};
use presence_autopilot::model::UserId;
use presence_autopilot::ports::ConnectionStore;
use presence_autopilot::service::calendar_notify::NotifyService;
use presence_autopilot::service::calendar_sync::{SyncService, SyncSettings};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

const KEY: &str = "bench-client-state-key-0123456789abcdef";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn row(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {what} | {} | {:.1} ms | {:.1} ms | {:.1} ms |",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap_or(&Duration::ZERO)),
    );
}

/// A connected agent, with what its notifications must carry.
struct Agent {
    user: UserId,
    graph_id: String,
    subscription: String,
    nonce: String,
}

struct Bench {
    graph: graph_sim::SimServer,
    endpoint: String,
    sync: SyncService,
    connections: Arc<DynamoConnections>,
    http: reqwest::Client,
    sqs: aws_sdk_sqs::Client,
    queue: String,
}

impl Bench {
    async fn start(aws: &aws_config::SdkConfig) -> anyhow::Result<Self> {
        let graph =
            graph_sim::SimServer::start(graph_sim::Seed::default(), "127.0.0.1:0".parse()?).await?;
        let dynamodb = aws_sdk_dynamodb::Client::new(aws);
        let table = format!("connector-bench-{}", std::process::id());
        DynamoStore::create_table(&dynamodb, &table).await?;
        let connections = Arc::new(DynamoConnections::new(dynamodb, &table));
        let sqs = aws_sdk_sqs::Client::new(aws);
        let queue = sqs
            .create_queue()
            .queue_name(format!("connector-bench-sync-{}", std::process::id()))
            .send()
            .await?
            .queue_url
            .context("queue url")?;
        let events = aws_sdk_eventbridge::Client::new(aws);
        let bus = format!("connector-bench-{}", std::process::id());
        events.create_event_bus().name(&bus).send().await?;
        let key = ClientStateKey::new(SecretString::from(KEY)).map_err(anyhow::Error::msg)?;
        let notify = Arc::new(NotifyService {
            connections: connections.clone(),
            queue: Arc::new(SqsSyncQueue::new(sqs.clone(), &queue)),
            key: key.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, calendar_notify::local::router(notify)).await;
        });
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let settings = GraphSettings {
            tenant_id: graph_sim::seed::TENANT_ID.to_owned(),
            client_id: graph_sim::seed::CLIENT_ID.to_owned(),
            client_secret: SecretString::from(graph_sim::seed::CLIENT_SECRET),
            graph_base_url: graph.base_url(),
            login_base_url: graph.base_url(),
            page_size: 50,
            notification_url: String::new(),
            lifecycle_url: String::new(),
        }
        .with_notification_base(&endpoint);
        let sync = SyncService {
            calendar: Arc::new(GraphClient::new(settings, clock.clone())?),
            connections: connections.clone(),
            bus: Arc::new(EventBridgeBus::new(events, &bus, clock.clone())),
            key,
            clock,
            settings: SyncSettings::default(),
        };
        Ok(Self {
            graph,
            endpoint,
            sync,
            connections,
            http: reqwest::Client::new(),
            sqs,
            queue,
        })
    }

    async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.graph.base_url()))
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        Ok(response.json().await.unwrap_or(Value::Null))
    }

    fn deadline() -> Deadline {
        Deadline::after(&SystemClock, Duration::from_secs(30))
    }

    /// Connects `count` new Graph users as agents.
    async fn connect(&self, count: usize) -> anyhow::Result<Vec<Agent>> {
        let mut agents = Vec::with_capacity(count);
        for n in 0..count {
            let upn = format!("bench{n}@contoso.example");
            let user = self
                .control(
                    reqwest::Method::POST,
                    "/sim/users",
                    json!({"user_principal_name": upn}),
                )
                .await?;
            let graph_id = user["id"].as_str().context("graph user id")?.to_owned();
            let agent = UserId::parse(&uuid::Uuid::new_v4().to_string())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            self.connections
                .put(&Connection::new(agent.clone(), upn, graph_id.clone()))
                .await?;
            self.sync
                .sync(
                    &SyncRequest {
                        user_id: agent.clone(),
                        reason: SyncReason::Upkeep,
                    },
                    Self::deadline(),
                )
                .await?;
            let subscription = self
                .connections
                .get(&agent)
                .await?
                .and_then(|c| c.subscription)
                .context("subscribed")?;
            agents.push(Agent {
                user: agent,
                graph_id,
                subscription: subscription.id,
                nonce: subscription.nonce,
            });
        }
        Ok(agents)
    }

    async fn post(&self, path_and_query: &str, body: String) -> anyhow::Result<Duration> {
        let began = Instant::now();
        let response = self
            .http
            .post(format!("{}{path_and_query}", self.endpoint))
            .body(body)
            .send()
            .await?;
        let status = response.status();
        response.bytes().await?;
        anyhow::ensure!(status.is_success(), "endpoint answered {status}");
        Ok(began.elapsed())
    }

    /// Empties the sync queue, as the sync worker does in production: moto's SQS send slows
    /// down as a queue that nobody reads grows.
    async fn drain(&self) -> anyhow::Result<()> {
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue)
                .max_number_of_messages(10)
                .send()
                .await?;
            let messages = received.messages();
            if messages.is_empty() {
                return Ok(());
            }
            for message in messages {
                if let Some(handle) = message.receipt_handle() {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.queue)
                        .receipt_handle(handle)
                        .send()
                        .await?;
                }
            }
        }
    }

    fn graph_calls(&self) -> usize {
        self.graph
            .sim
            .lock()
            .requests
            .iter()
            .filter(|r| r.path.starts_with("/v1.0/") || r.path.contains("/oauth2/"))
            .count()
    }
}

fn arg(name: &str, default: usize) -> anyhow::Result<usize> {
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == name {
            let value = args.next().context("a value")?;
            return value.parse().with_context(|| format!("{name} {value}"));
        }
    }
    Ok(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    anyhow::ensure!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL must name the local stand-in (scripts/bench_connector.py sets it)"
    );
    let agents_count = arg("--agents", 20)?;
    let requests = arg("--requests", 300)?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let bench = Bench::start(&aws).await?;
    let agents = bench.connect(agents_count).await?;
    let key = ClientStateKey::new(SecretString::from(KEY)).map_err(anyhow::Error::msg)?;

    // The endpoint's own share of the answer: its subscription lookup, alone.
    let ids = vec![agents[0].subscription.clone()];
    let mut lookups = Vec::new();
    for _ in 0..50 {
        let began = Instant::now();
        bench.connections.subscription_owners(&ids).await?;
        lookups.push(began.elapsed());
    }
    println!("| request | n | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    let mut handshakes = Vec::with_capacity(requests);
    for n in 0..requests {
        let query = format!("validationToken=Validation%3a+bench+{n}");
        handshakes.push(
            bench
                .post(&format!("/graph/notify?{query}"), String::new())
                .await?,
        );
    }
    row("validation handshake", handshakes);
    let mut notifications = Vec::with_capacity(requests);
    for n in 0..requests {
        // 1 to 5 items per body, as Graph batches them, for agents in turn.
        let items: Vec<Value> = (0..=(n % 5))
            .map(|i| {
                let agent = &agents[(n + i) % agents.len()];
                json!({"subscriptionId": agent.subscription, "changeType": "updated",
                       "clientState": key.client_state(&agent.nonce).expose_secret()})
            })
            .collect();
        let body = json!({ "value": items }).to_string();
        notifications.push(bench.post("/graph/notify", body).await?);
        if n % 10 == 9 {
            bench.drain().await?;
        }
    }
    row("change notification (1–5 items)", notifications);
    row("of which: the subscription lookup (BatchGetItem)", lookups);

    // Graph calls per changed event.
    let before = bench.graph_calls();
    let singles = agents.len().min(10);
    for agent in agents.iter().take(singles) {
        book(&bench, &agent.graph_id).await?;
        bench
            .sync
            .sync(
                &SyncRequest {
                    user_id: agent.user.clone(),
                    reason: SyncReason::Changed,
                },
                Bench::deadline(),
            )
            .await?;
    }
    let single_calls = bench.graph_calls() - before;
    let agent = &agents[0];
    for _ in 0..10 {
        book(&bench, &agent.graph_id).await?;
    }
    let before = bench.graph_calls();
    bench
        .sync
        .sync(
            &SyncRequest {
                user_id: agent.user.clone(),
                reason: SyncReason::Changed,
            },
            Bench::deadline(),
        )
        .await?;
    let burst_calls = bench.graph_calls() - before;
    println!();
    println!("| Graph calls per changed event | calls | events | per event |");
    println!("|---|---|---|---|");
    println!(
        "| one change, one sync ({singles} agents) | {single_calls} | {singles} | {:.2} |",
        single_calls as f64 / singles as f64
    );
    println!(
        "| 10 changes, one sync (one agent) | {burst_calls} | 10 | {:.2} |",
        burst_calls as f64 / 10.0
    );
    Ok(())
}

async fn book(bench: &Bench, graph_id: &str) -> anyhow::Result<()> {
    let start = chrono::Utc::now() + chrono::Duration::hours(1);
    bench
        .control(
            reqwest::Method::POST,
            &format!("/sim/users/{graph_id}/events"),
            json!({"subject": "bench", "start": start.to_rfc3339(),
                   "end": (start + chrono::Duration::minutes(30)).to_rfc3339()}),
        )
        .await?;
    Ok(())
}
