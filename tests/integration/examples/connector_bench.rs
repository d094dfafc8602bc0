//! `connector_bench [--agents N] [--requests N]`: the calendar connector's figures for
//! `make bench`, on loopback against the AWS endpoint the environment names (the local stand-in,
//! through `AWS_ENDPOINT_URL`; `scripts/bench_connector.py` starts it) and in-process Graph and
//! Google simulators:
//! - the notification endpoint's answer time over HTTP (the real handler, its DynamoDB lookup of
//!   the subscriptions and its SQS send), p50 / p99 / max, for Graph handshakes and notification
//!   bodies and for Google's header-only channel notifications;
//! - Graph and Google calls per changed calendar event, counted by the simulators, when each
//!   change is synced on its own and when a burst of changes shares one sync.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use presence_autopilot::aws::bus::EventBridgeBus;
use presence_autopilot::aws::connections::DynamoConnections;
use presence_autopilot::aws::dynamo::DynamoStore;
use presence_autopilot::aws::sync_queue::SqsSyncQueue;
use presence_autopilot::calendar::{ClientStateKey, Connection, Provider, SyncReason, SyncRequest};
use presence_autopilot::clock::{Clock, Deadline, SystemClock};
use presence_autopilot::google::{GoogleClient, GoogleSettings};
use presence_autopilot::graph::{GraphClient, GraphSettings};
use presence_autopilot::model::UserId;
use presence_autopilot::ports::{ConnectionStore, SecretDocument};
use presence_autopilot::service::calendar_notify::NotifyService;
use presence_autopilot::service::calendar_sync::{SyncService, SyncSettings};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

const KEY: &str = "bench-client-state-key-0123456789abcdef";
/// The test service account's key file (`tests/fixtures/google`).
const GOOGLE_KEY_FILE: &str = include_str!("../../fixtures/google/test-service-account.json");

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

/// Which calendar service an agent is on, and how to book an event in it.
#[derive(Clone, Copy, PartialEq)]
enum Service {
    Graph,
    Google,
}

struct Bench {
    graph: graph_sim::SimServer,
    google: google_sim::SimServer,
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
        let google =
            google_sim::SimServer::start(google_sim::Seed::default(), "127.0.0.1:0".parse()?)
                .await?;
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
            calendars: presence_autopilot::ports::CalendarApis {
                microsoft: Some(Arc::new(GraphClient::new(settings, clock.clone())?)),
                google: Some(Arc::new(GoogleClient::new(
                    google_settings(&google, &endpoint)?,
                    clock.clone(),
                )?)),
            },
            connections: connections.clone(),
            bus: Arc::new(EventBridgeBus::new(events, &bus, clock.clone())),
            key,
            clock,
            settings: SyncSettings::default(),
        };
        Ok(Self {
            graph,
            google,
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
        service: Service,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let base = match service {
            Service::Graph => self.graph.base_url(),
            Service::Google => self.google.base_url(),
        };
        let response = self
            .http
            .request(method, format!("{base}{path}"))
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        Ok(response.json().await.unwrap_or(Value::Null))
    }

    fn deadline() -> Deadline {
        Deadline::after(&SystemClock, Duration::from_secs(30))
    }

    /// Connects `count` new Graph or Google users as agents.
    async fn connect(&self, service: Service, count: usize) -> anyhow::Result<Vec<Agent>> {
        let mut agents = Vec::with_capacity(count);
        for n in 0..count {
            let (email, graph_id, provider) = match service {
                Service::Graph => {
                    let upn = format!("bench{n}@contoso.example");
                    let user = self
                        .control(
                            service,
                            reqwest::Method::POST,
                            "/sim/users",
                            json!({"user_principal_name": upn}),
                        )
                        .await?;
                    let id = user["id"].as_str().context("graph user id")?.to_owned();
                    (upn, id, Provider::Microsoft)
                }
                Service::Google => {
                    let email = format!("bench{n}@workspace.example");
                    self.control(
                        service,
                        reqwest::Method::POST,
                        "/sim/users",
                        json!({"email": email}),
                    )
                    .await?;
                    (email.clone(), email, Provider::Google)
                }
            };
            let agent = UserId::parse(&uuid::Uuid::new_v4().to_string())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            self.connections
                .put(&Connection::new(agent.clone(), email, graph_id.clone()).on(provider))
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

    /// Calls the calendar service was sent: its API and its token endpoint.
    fn calls(&self, service: Service) -> usize {
        match service {
            Service::Graph => self
                .graph
                .sim
                .lock()
                .requests
                .iter()
                .filter(|r| r.path.starts_with("/v1.0/") || r.path.contains("/oauth2/"))
                .count(),
            Service::Google => self
                .google
                .sim
                .lock()
                .requests
                .iter()
                .filter(|r| r.path.starts_with("/calendar/v3/") || r.path == "/token")
                .count(),
        }
    }

    /// A Google channel notification (headers only); returns the answer time.
    async fn post_google(
        &self,
        agent: &Agent,
        token: &str,
        number: usize,
    ) -> anyhow::Result<Duration> {
        let began = Instant::now();
        let response = self
            .http
            .post(format!("{}/google/notify", self.endpoint))
            .header("X-Goog-Channel-ID", &agent.subscription)
            .header("X-Goog-Channel-Token", token)
            .header("X-Goog-Resource-State", "exists")
            .header("X-Goog-Message-Number", number.to_string())
            .header("X-Goog-Resource-ID", "bench")
            .send()
            .await?;
        let status = response.status();
        response.bytes().await?;
        anyhow::ensure!(status.is_success(), "endpoint answered {status}");
        Ok(began.elapsed())
    }

    /// Calls to the calendar service for `changes` events booked and synced one by one (one
    /// agent each) or all at once (one agent).
    async fn calls_per_change(
        &self,
        service: Service,
        agents: &[Agent],
        burst: bool,
    ) -> anyhow::Result<(usize, usize)> {
        let changes = agents.len().min(10);
        let before = self.calls(service);
        if burst {
            for _ in 0..changes {
                book(self, service, &agents[0].graph_id).await?;
            }
            self.sync_changed(&agents[0]).await?;
        } else {
            for agent in agents.iter().take(changes) {
                book(self, service, &agent.graph_id).await?;
                self.sync_changed(agent).await?;
            }
        }
        Ok((self.calls(service) - before, changes))
    }

    async fn sync_changed(&self, agent: &Agent) -> anyhow::Result<()> {
        self.sync
            .sync(
                &SyncRequest {
                    user_id: agent.user.clone(),
                    reason: SyncReason::Changed,
                },
                Self::deadline(),
            )
            .await?;
        Ok(())
    }
}

/// The Google client's settings: the test key file, the simulator as token endpoint and API.
fn google_settings(
    google: &google_sim::SimServer,
    endpoint: &str,
) -> anyhow::Result<GoogleSettings> {
    let mut file: Value = serde_json::from_str(GOOGLE_KEY_FILE)?;
    file["token_uri"] = Value::String(format!("{}/token", google.base_url()));
    file["apiBaseUrl"] = Value::String(google.base_url());
    let doc = SecretDocument::parse("google", SecretString::from(file.to_string()))?;
    Ok(GoogleSettings::from_secret(&doc)?.with_notification_base(endpoint))
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
    let agents = bench.connect(Service::Graph, agents_count).await?;
    let google_agents = bench.connect(Service::Google, agents_count).await?;
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
    row("Graph validation handshake", handshakes);
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
    row("Graph change notification (1–5 items)", notifications);
    let mut pushes = Vec::with_capacity(requests);
    for n in 0..requests {
        let agent = &google_agents[n % google_agents.len()];
        let token = key.client_state(&agent.nonce);
        pushes.push(
            bench
                .post_google(agent, token.expose_secret(), n + 2)
                .await?,
        );
        if n % 10 == 9 {
            bench.drain().await?;
        }
    }
    row("Google channel notification (headers only)", pushes);
    row("of which: the subscription lookup (BatchGetItem)", lookups);

    println!();
    println!("| calls per changed event | calls | events | per event |");
    println!("|---|---|---|---|");
    for (service, name, group) in [
        (Service::Graph, "Graph", &agents),
        (Service::Google, "Google", &google_agents),
    ] {
        let (calls, changes) = bench.calls_per_change(service, group, false).await?;
        println!(
            "| {name}: one change, one sync ({changes} agents) | {calls} | {changes} | {:.2} |",
            calls as f64 / changes as f64
        );
        let (calls, changes) = bench.calls_per_change(service, group, true).await?;
        println!(
            "| {name}: {changes} changes, one sync (one agent) | {calls} | {changes} | {:.2} |",
            calls as f64 / changes as f64
        );
    }
    Ok(())
}

async fn book(bench: &Bench, service: Service, calendar: &str) -> anyhow::Result<()> {
    let start = chrono::Utc::now() + chrono::Duration::hours(1);
    let end = start + chrono::Duration::minutes(30);
    let (path, body) = match service {
        Service::Graph => (
            format!("/sim/users/{calendar}/events"),
            json!({"subject": "bench", "start": start.to_rfc3339(), "end": end.to_rfc3339()}),
        ),
        Service::Google => (
            format!("/sim/calendars/{calendar}/events"),
            json!({"summary": "bench", "start": start.to_rfc3339(), "end": end.to_rfc3339()}),
        ),
    };
    bench
        .control(service, reqwest::Method::POST, &path, body)
        .await?;
    Ok(())
}
