//! The simulator over HTTP, with assertions signed by the fixture service-account key: the token
//! checks, paging and incremental sync, 410, and notification delivery (retries, drops,
//! expiry).

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use google_sim::seed::{AGENT1, SCOPE_EVENTS_READONLY, SERVICE_ACCOUNT};
use google_sim::{Seed, SimServer};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

const KEY_FILE: &str = include_str!("../../fixtures/google/test-service-account.json");
const FORGED_KEY: &str = include_str!("../../fixtures/google/unauthorized-key.pem");

struct Harness {
    server: SimServer,
    http: reqwest::Client,
}

impl Harness {
    async fn start() -> Self {
        let server = SimServer::start(Seed::default(), "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("simulator starts");
        Self {
            server,
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    fn now(&self) -> i64 {
        self.server.sim.lock().now().timestamp()
    }

    /// An assertion as google-auth builds it, with `change` applied to the claims.
    fn assertion(&self, key_pem: &str, change: impl FnOnce(&mut Value)) -> String {
        let now = self.now();
        let mut claims = json!({
            "iss": SERVICE_ACCOUNT, "scope": SCOPE_EVENTS_READONLY, "sub": AGENT1,
            "aud": "https://oauth2.googleapis.com/token", "iat": now, "exp": now + 3600,
        });
        change(&mut claims);
        let key = EncodingKey::from_rsa_pem(key_pem.as_bytes()).expect("an RSA key");
        encode(&Header::new(Algorithm::RS256), &claims, &key).expect("signed")
    }

    async fn exchange(&self, assertion: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url("/token"))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion),
            ])
            .send()
            .await
            .expect("token call");
        let status = response.status();
        (status, response.json().await.expect("JSON"))
    }

    async fn token(&self, sub: &str) -> String {
        let assertion = self.assertion(&private_key(), |c| c["sub"] = json!(sub));
        let (status, body) = self.exchange(&assertion).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().expect("a token").to_owned()
    }

    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("API call");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method, self.url(path))
            .json(&body)
            .send()
            .await
            .expect("control call");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    async fn create(&self, email: &str, body: Value) -> Value {
        let path = format!("/sim/calendars/{email}/events");
        self.control(reqwest::Method::POST, &path, body).await
    }
}

fn private_key() -> String {
    let file: Value = serde_json::from_str(KEY_FILE).expect("the key file is JSON");
    file["private_key"]
        .as_str()
        .expect("private_key")
        .to_owned()
}

fn reason(body: &Value) -> &str {
    body["error"]["errors"][0]["reason"]
        .as_str()
        .unwrap_or_default()
}

/// Assertions the endpoint must refuse: `(assertion, status, error, part of the description)`.
fn refused_assertions(sim: &Harness) -> Vec<(String, u16, &'static str, &'static str)> {
    let key = private_key();
    let signed = |change: &dyn Fn(&mut Value)| sim.assertion(&key, |c| change(c));
    let shift = |c: &Value, name: &str, by: i64| json!(c[name].as_i64().unwrap_or(0) + by);
    let bad_grant = "invalid_grant";
    vec![
        (
            sim.assertion(FORGED_KEY, |_| {}),
            400,
            bad_grant,
            "Invalid JWT Signature.",
        ),
        (
            signed(&|c| c["iss"] = json!("x@y.iam.gserviceaccount.com")),
            400,
            bad_grant,
            "Invalid JWT Signature.",
        ),
        (
            signed(&|c| c["aud"] = json!("https://example.com/token")),
            400,
            bad_grant,
            "audience",
        ),
        (
            signed(&|c| c["exp"] = shift(c, "iat", 3601)),
            400,
            bad_grant,
            "short-lived",
        ),
        (
            signed(&|c| c["iat"] = shift(c, "iat", 120)),
            400,
            bad_grant,
            "short-lived",
        ),
        (
            signed(&|c| c["scope"] = json!("https://www.googleapis.com/auth/calendar")),
            401,
            "unauthorized_client",
            "scopes requested",
        ),
        (
            signed(&|c| c["scope"] = json!("")),
            400,
            "invalid_scope",
            "Empty",
        ),
        (
            signed(&|c| c["sub"] = json!("nobody@example.com")),
            400,
            bad_grant,
            "Invalid email or User ID",
        ),
        ("not.a-jwt".to_owned(), 400, bad_grant, "Invalid JWT"),
    ]
}

#[tokio::test]
async fn the_token_endpoint_checks_signature_claims_scopes_and_subject() {
    let sim = Harness::start().await;
    let key = private_key();
    let (status, body) = sim.exchange(&sim.assertion(&key, |_| {})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&body["expires_in"], &body["token_type"]),
        (&json!(3599), &json!("Bearer"))
    );
    let own_aud = sim.assertion(&key, |c| c["aud"] = json!(sim.url("/token")));
    assert_eq!(sim.exchange(&own_aud).await.0, StatusCode::OK);

    for (assertion, status, error, description) in refused_assertions(&sim) {
        let (got, body) = sim.exchange(&assertion).await;
        assert_eq!(got.as_u16(), status, "{body}");
        assert_eq!(body["error"], error, "{body}");
        let text = body["error_description"].as_str().unwrap_or_default();
        assert!(text.contains(description), "{text}");
    }
    let grants = sim
        .control(reqwest::Method::GET, "/sim/tokens", Value::Null)
        .await;
    assert_eq!(grants["grants"][AGENT1], 2);
}

#[tokio::test]
async fn tokens_expire_on_the_sim_clock_and_read_only_their_own_calendar() {
    let sim = Harness::start().await;
    let token = sim.token(AGENT1).await;
    assert_eq!(
        sim.get(&token, "/calendar/v3/calendars/primary/events")
            .await
            .0,
        StatusCode::OK
    );
    let other = sim
        .get(
            &token,
            "/calendar/v3/calendars/agent.two@example.com/events",
        )
        .await;
    assert_eq!(
        (other.0, reason(&other.1)),
        (StatusCode::NOT_FOUND, "notFound")
    );
    let (status, body) = sim
        .get("ya29.unknown", "/calendar/v3/calendars/primary/events")
        .await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::UNAUTHORIZED, "authError")
    );
    assert_eq!(body["error"]["message"], "Invalid Credentials");
    sim.control(
        reqwest::Method::POST,
        "/sim/clock",
        json!({"advanceSeconds": 3600}),
    )
    .await;
    let expired = sim
        .get(&token, "/calendar/v3/calendars/primary/events")
        .await;
    assert_eq!(expired.0, StatusCode::UNAUTHORIZED);
}

const LIST: &str = "/calendar/v3/calendars/primary/events";

/// Five half-hour events on 2030-01-15, 09:00 to 13:00; their ids.
async fn five_events(sim: &Harness) -> Vec<String> {
    let mut ids = Vec::new();
    for hour in 9..14 {
        let start = format!("2030-01-15T{hour:02}:00:00Z");
        let end = format!("2030-01-15T{hour:02}:30:00Z");
        let event = sim
            .create(AGENT1, json!({"summary": "e", "start": start, "end": end}))
            .await;
        ids.push(event["id"].as_str().unwrap_or_default().to_owned());
    }
    ids
}

/// The sync token at the end of a full sync.
async fn full_sync(sim: &Harness, token: &str) -> String {
    let (_, page) = sim.get(token, LIST).await;
    page["nextSyncToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn pages_repeat_their_query_and_only_the_last_has_a_sync_token() {
    let sim = Harness::start().await;
    let token = sim.token(AGENT1).await;
    five_events(&sim).await;
    let (_, first) = sim.get(&token, &format!("{LIST}?maxResults=3")).await;
    assert_eq!(first["items"].as_array().map(Vec::len), Some(3));
    assert!(first.get("nextSyncToken").is_none());
    let page = first["nextPageToken"].as_str().unwrap_or_default();
    let other_query = format!("{LIST}?maxResults=3&pageToken={page}&singleEvents=true");
    let (status, wrong) = sim.get(&token, &other_query).await;
    assert_eq!(
        (status, reason(&wrong)),
        (StatusCode::BAD_REQUEST, "invalid")
    );
    let (_, last) = sim.get(&token, &format!("{LIST}?pageToken={page}")).await;
    assert_eq!(last["items"].as_array().map(Vec::len), Some(2));
    assert!(last.get("nextPageToken").is_none());
    assert!(last["nextSyncToken"].is_string());
}

#[tokio::test]
async fn incremental_sync_returns_changes_in_order_until_the_token_expires() {
    let sim = Harness::start().await;
    let token = sim.token(AGENT1).await;
    let ids = five_events(&sim).await;
    let sync = full_sync(&sim, &token).await;
    let event = |id: &str, action: &str| format!("/sim/calendars/{AGENT1}/events/{id}{action}");
    sim.control(
        reqwest::Method::PATCH,
        &event(&ids[0], ""),
        json!({"summary": "renamed"}),
    )
    .await;
    sim.control(
        reqwest::Method::POST,
        &event(&ids[1], "/decline"),
        Value::Null,
    )
    .await;
    sim.control(
        reqwest::Method::POST,
        &event(&ids[2], "/cancel"),
        Value::Null,
    )
    .await;

    let (_, changes) = sim.get(&token, &format!("{LIST}?syncToken={sync}")).await;
    let items = changes["items"].as_array().cloned().unwrap_or_default();
    let seen: Vec<&str> = items.iter().filter_map(|i| i["id"].as_str()).collect();
    assert_eq!(seen, ids[..3], "in change order");
    assert_eq!(items[0]["summary"], "renamed");
    assert_eq!(items[1]["attendees"][0]["responseStatus"], "declined");
    assert_eq!(
        items[2].as_object().map(|o| o.len()),
        Some(4),
        "{}",
        items[2]
    );

    let shown = format!("{LIST}?syncToken={sync}&showDeleted=false");
    let (status, body) = sim.get(&token, &shown).await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::BAD_REQUEST, "invalid")
    );
    let expire = json!({"email": AGENT1});
    sim.control(reqwest::Method::POST, "/sim/sync-tokens/expire", expire)
        .await;
    let (status, body) = sim.get(&token, &format!("{LIST}?syncToken={sync}")).await;
    assert_eq!(
        (status, reason(&body)),
        (StatusCode::GONE, "fullSyncRequired")
    );
}

/// A webhook answering the statuses in `plan` in turn (then 200), recording the headers.
async fn receiver(plan: Vec<u16>) -> (String, Arc<Mutex<Vec<HeaderMap>>>) {
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let plan = Arc::new(Mutex::new(plan.into_iter()));
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap| {
            let record = record.clone();
            let plan = plan.clone();
            async move {
                record.lock().expect("lock").push(headers);
                let status = plan.lock().expect("lock").next().unwrap_or(200);
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

impl Harness {
    async fn post(&self, path: &str, body: Value) -> Value {
        self.control(reqwest::Method::POST, path, body).await
    }

    /// `POST /sim/deliveries/wait`: the status (200 or 408) and the attempts logged.
    async fn wait(&self, count: usize, timeout_ms: u64) -> (StatusCode, Value) {
        let body = json!({"count": count, "timeoutMs": timeout_ms});
        let response = self
            .http
            .post(self.url("/sim/deliveries/wait"))
            .json(&body)
            .send()
            .await
            .expect("wait");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A channel on the user's primary calendar, living `ttl` seconds; waits for its `sync`.
    async fn watch(&self, token: &str, address: &str, ttl: u64) {
        let body = json!({"id": "c-1", "type": "web_hook", "address": address,
                          "params": {"ttl": ttl}});
        let response = self
            .http
            .post(self.url("/calendar/v3/calendars/primary/events/watch"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("watch");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(self.wait(1, 5000).await.0, StatusCode::OK);
    }

    async fn change_calendar(&self) {
        let event = json!({"start": "2030-01-15T09:00:00Z", "end": "2030-01-15T10:00:00Z"});
        self.create(AGENT1, event).await;
    }
}

/// `(state, status, attempt, message number)` of each logged attempt.
fn attempts(log: &Value) -> Vec<(String, Option<u64>, u64, u64)> {
    let field = |d: &Value, name: &str| d[name].as_u64().unwrap_or(0);
    log.as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let state = d["state"].as_str().unwrap_or_default().to_owned();
            let number = field(d, "message_number");
            (state, d["status"].as_u64(), field(d, "attempt"), number)
        })
        .collect()
}

#[tokio::test]
async fn notifications_retry_after_5xx_but_not_after_4xx() {
    let sim = Harness::start().await;
    let token = sim.token(AGENT1).await;
    sim.post("/sim/settings", json!({"deliveryRetryMs": [10, 10]}))
        .await;
    let (url, seen) = receiver(vec![200, 503, 200, 404]).await;
    sim.watch(&token, &url, 600).await;
    sim.change_calendar().await;
    sim.wait(3, 5000).await; // exists: 503, then 200
    sim.change_calendar().await;
    let (_, log) = sim.wait(4, 5000).await; // exists: 404, not retried
    let log = attempts(&log);
    let outcome: Vec<(&str, Option<u64>, u64)> = log
        .iter()
        .map(|(s, status, a, _)| (s.as_str(), *status, *a))
        .collect();
    let expected = [("sync", Some(200), 1), ("exists", Some(503), 1)];
    assert_eq!(outcome[..2], expected);
    assert_eq!(
        outcome[2..],
        [("exists", Some(200), 2), ("exists", Some(404), 1)]
    );
    assert_eq!(log[0].3, 1);
    assert_eq!(log[1].3, log[2].3, "a retry repeats the message number");
    assert!(log[3].3 > log[2].3);
    let headers = seen.lock().expect("lock")[0].clone();
    assert_eq!(headers["x-goog-resource-state"], "sync");
    assert_eq!(headers["content-length"], "0");
}

#[tokio::test]
async fn dropped_notifications_are_logged_not_sent_and_expired_channels_are_silent() {
    let sim = Harness::start().await;
    let token = sim.token(AGENT1).await;
    let (url, seen) = receiver(Vec::new()).await;
    sim.watch(&token, &url, 600).await;
    sim.post("/sim/notifications/drop", json!({"count": 1}))
        .await;
    sim.change_calendar().await;
    sim.change_calendar().await;
    let (_, log) = sim.wait(3, 5000).await;
    let dropped: Vec<bool> = log
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| d["dropped"] == true)
        .collect();
    assert_eq!(dropped, [false, true, false]);
    let numbers: Vec<u64> = attempts(&log).iter().map(|a| a.3).collect();
    assert!(numbers[2] > numbers[1], "the dropped message took a number");
    assert_eq!(
        seen.lock().expect("lock").len(),
        2,
        "nothing sent when dropped"
    );

    sim.post("/sim/clock", json!({"advanceSeconds": 601})).await;
    sim.change_calendar().await;
    let (status, _) = sim.wait(4, 300).await;
    assert_eq!(
        status,
        StatusCode::REQUEST_TIMEOUT,
        "an expired channel is not notified"
    );
}
