//! Starts the Genesys simulator in-process on a free loopback port and drives its control
//! surface over HTTP, as the demo and the SDK contract test do.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use genesys_sim::seed::{AUTOPILOT_PERMISSIONS, ClientSeed};
use genesys_sim::{Seed, SimServer};
use presence_autopilot::clock::{Clock, Deadline, ManualClock};
use presence_autopilot::genesys::{
    ClientCredentials, GenesysClient, GenesysConfig, GenesysHosts, StaticCredentials,
};
use serde_json::{Value, json};

/// A client whose tokens live 300 s (the shortest Genesys allows), for expiry tests.
pub const SHORT_TOKEN_CLIENT: (&str, &str) = ("short-token-client", "short-token-secret");

pub struct TestSim {
    pub server: SimServer,
    http: reqwest::Client,
}

impl TestSim {
    pub async fn start() -> Self {
        Self::start_with(Seed::default()).await
    }

    pub async fn start_with(mut seed: Seed) -> Self {
        seed.clients.push(ClientSeed {
            client_id: SHORT_TOKEN_CLIENT.0.to_owned(),
            client_secret: SHORT_TOKEN_CLIENT.1.to_owned(),
            grant_type: "client_credentials".to_owned(),
            token_lifetime_seconds: 300,
            permissions: AUTOPILOT_PERMISSIONS
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
        });
        let server = SimServer::start(seed, "127.0.0.1:0".parse().expect("literal address"))
            .await
            .expect("simulator starts");
        Self {
            server,
            http: reqwest::Client::new(),
        }
    }

    /// A Genesys client for `(client_id, secret)` on a manual clock starting now.
    pub fn client(&self, credentials: (&str, &str)) -> (GenesysClient, ManualClock) {
        let clock = ManualClock::starting_at(Utc::now());
        (self.client_on(credentials, Arc::new(clock.clone())), clock)
    }

    /// A Genesys client for `(client_id, secret)` on `clock`.
    pub fn client_on(&self, credentials: (&str, &str), clock: Arc<dyn Clock>) -> GenesysClient {
        let hosts = GenesysHosts::single_base(&self.server.base_url()).expect("valid base url");
        GenesysClient::new(
            GenesysConfig::new(hosts),
            Arc::new(StaticCredentials(ClientCredentials::new(
                credentials.0,
                credentials.1,
            ))),
            clock,
        )
        .expect("client builds")
    }

    /// A manual clock starting now whose waits also move the simulator's clock (and so its
    /// rate windows), which otherwise stands still: a client that waits for a window to reset
    /// finds it reset, at once, and real time spent does not reset any.
    pub fn linked_clock(&self) -> (Arc<dyn Clock>, ManualClock) {
        let manual = ManualClock::starting_at(Utc::now());
        self.server.sim.lock().frozen_at = Some(manual.now());
        let linked = LinkedClock {
            manual: manual.clone(),
            sim: self.server.sim.clone(),
        };
        (Arc::new(linked), manual)
    }

    pub async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method, format!("{}{path}", self.server.base_url()))
            .json(&body)
            .send()
            .await
            .expect("control surface answers");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "control {path} failed: {status} {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub async fn inject_fault(&self, fault: Value) {
        self.control(reqwest::Method::POST, "/sim/faults", fault)
            .await;
    }

    pub async fn set_presence_as(&self, user: &str, presence: &str, by: &str) -> Value {
        self.control(
            reqwest::Method::PUT,
            &format!("/sim/users/{user}/presence"),
            json!({"presence": presence, "by": by}),
        )
        .await
    }

    pub async fn advance_clock(&self, seconds: i64) {
        self.control(
            reqwest::Method::POST,
            "/sim/clock/advance",
            json!({"seconds": seconds}),
        )
        .await;
    }

    /// Requests the simulator served for this method and exact path.
    pub fn count_requests(&self, method: &str, path: &str) -> usize {
        self.server
            .sim
            .lock()
            .requests
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    }

    /// How many requests the simulator has served so far.
    pub fn served(&self) -> usize {
        self.server.sim.lock().requests.len()
    }

    /// Requests served after the first `from`, as "METHOD /path" with user ids as `{id}`.
    pub fn served_since(&self, from: usize) -> Vec<String> {
        let ids = ids_as_placeholders();
        self.server.sim.lock().requests[from..]
            .iter()
            .map(|r| format!("{} {}", r.method, ids(&r.path)))
            .collect()
    }

    pub fn count_token_requests(&self) -> usize {
        self.count_requests("POST", "/oauth/token")
    }
}

pub fn deadline(clock: &dyn Clock, seconds: u64) -> Deadline {
    Deadline::after(clock, Duration::from_secs(seconds))
}

/// Replaces each UUID path segment with `{id}`.
fn ids_as_placeholders() -> impl Fn(&str) -> String {
    |path: &str| {
        path.split('/')
            .map(|segment| {
                if uuid::Uuid::parse_str(segment).is_ok() {
                    "{id}"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

#[derive(Debug)]
struct LinkedClock {
    manual: ManualClock,
    sim: Arc<genesys_sim::Sim>,
}

#[async_trait::async_trait]
impl Clock for LinkedClock {
    fn now(&self) -> chrono::DateTime<Utc> {
        self.manual.now()
    }

    async fn sleep(&self, duration: std::time::Duration) {
        self.manual.sleep(duration).await;
        let step = chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
        self.sim.lock().clock_offset += step;
    }
}
