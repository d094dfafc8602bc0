//! Helpers shared by the graph-sim tests: an in-process simulator with a token, a reqwest
//! client, and a tiny axum "webhook" that answers validation handshakes (correctly, wrongly or
//! slowly, by path) and captures every notification it receives.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use graph_sim::{Seed, SimServer, seed};
use reqwest::Method;
use serde_json::{Value, json};

pub const WINDOW_START: &str = "2026-03-16T00:00:00Z";
pub const WINDOW_END: &str = "2026-03-23T00:00:00Z";

#[derive(Debug)]
pub struct Env {
    pub server: SimServer,
    pub http: reqwest::Client,
    pub base: String,
    pub bearer: String,
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a Graph error with this status and code; returns its message.
    pub fn graph_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["error"]["code"], code, "{}", self.body);
        let request_id = self.header("request-id").expect("a request-id header");
        assert_eq!(self.body["error"]["innerError"]["request-id"], request_id);
        assert!(self.header("client-request-id").is_some());
        self.body["error"]["message"]
            .as_str()
            .expect("a message")
            .to_owned()
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client")
}

pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn start() -> Env {
    start_with(Seed::default()).await
}

pub async fn start_with(seed: Seed) -> Env {
    let server = SimServer::start(seed, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start the simulator");
    let http = http();
    let base = server.base_url();
    let mut env = Env {
        server,
        http,
        base,
        bearer: String::new(),
    };
    env.bearer = format!("Bearer {}", env.token().await);
    env
}

impl Env {
    pub async fn token_reply(&self, tenant: &str, form: &[(&str, &str)]) -> Reply {
        let url = format!("{}/{tenant}/oauth2/v2.0/token", self.base);
        reply(
            self.http
                .post(url)
                .form(form)
                .send()
                .await
                .expect("token call"),
        )
        .await
    }

    pub async fn token(&self) -> String {
        let reply = self
            .token_reply(
                seed::TENANT_ID,
                &[
                    ("client_id", seed::CLIENT_ID),
                    ("client_secret", seed::CLIENT_SECRET),
                    ("scope", seed::GRAPH_SCOPE),
                    ("grant_type", "client_credentials"),
                ],
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// A Graph call with the bearer; `path_or_url` is a path or a full nextLink/deltaLink.
    pub async fn graph(
        &self,
        method: Method,
        path_or_url: &str,
        prefer: &[&str],
        body: Option<Value>,
    ) -> Reply {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.base)
        };
        let mut request = self
            .http
            .request(method, url)
            .header("authorization", &self.bearer);
        for value in prefer {
            request = request.header("prefer", *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        reply(request.send().await.expect("graph call")).await
    }

    pub async fn get(&self, path_or_url: &str) -> Reply {
        self.graph(Method::GET, path_or_url, &[], None).await
    }

    /// A control call (no token).
    pub async fn control(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        reply(request.send().await.expect("control call")).await
    }

    /// Creates an event through control; returns its id.
    pub async fn create_event(&self, user: &str, subject: &str, start: &str, end: &str) -> String {
        let reply = self
            .control(
                Method::POST,
                &format!("/sim/users/{user}/events"),
                Some(json!({"subject": subject, "start": start, "end": end})),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.body["id"].as_str().expect("an id").to_owned()
    }

    pub fn delta_path(&self, user: &str) -> String {
        format!(
            "/v1.0/users/{user}/calendarView/delta?startDateTime={WINDOW_START}&endDateTime={WINDOW_END}"
        )
    }

    /// Follows nextLinks to the deltaLink: (entries, deltaLink, page count).
    pub async fn delta_round(&self, first: &str, prefer: &[&str]) -> (Vec<Value>, String, usize) {
        let mut url = first.to_owned();
        let mut entries = Vec::new();
        let mut pages = 0;
        loop {
            let reply = self.graph(Method::GET, &url, prefer, None).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            pages += 1;
            entries.extend(reply.body["value"].as_array().expect("value").clone());
            if let Some(next) = reply.body["@odata.nextLink"].as_str() {
                url = next.to_owned();
                continue;
            }
            let delta = reply.body["@odata.deltaLink"]
                .as_str()
                .expect("a deltaLink");
            return (entries, delta.to_owned(), pages);
        }
    }

    pub async fn wait_deliveries(&self, count: usize, timeout_ms: u64) -> Reply {
        self.control(
            Method::POST,
            "/sim/deliveries/wait",
            Some(json!({"count": count, "timeout_ms": timeout_ms})),
        )
        .await
    }

    /// `POST /v1.0/subscriptions` for `user`'s events to `url`.
    pub async fn subscribe(&self, user: &str, url: &str, minutes: i64) -> Reply {
        let expiration = chrono::Utc::now() + chrono::Duration::minutes(minutes);
        self.graph(
            Method::POST,
            "/v1.0/subscriptions",
            &[],
            Some(json!({
                "changeType": "created,updated,deleted",
                "notificationUrl": url,
                "resource": format!("users/{user}/events"),
                "expirationDateTime": expiration.to_rfc3339(),
                "clientState": "secret-client-state",
            })),
        )
        .await
    }
}

/// One request the webhook received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub query: Option<String>,
    pub content_type: String,
    pub body: String,
    /// The decoded `validationToken`, for a handshake.
    pub validation_token: Option<String>,
}

/// A local webhook: `/ok` echoes handshakes correctly and answers notifications 202, `/wrong`
/// echoes the token in quotes, `/slow` echoes after 1 s, `/fail` answers notifications 500.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Webhook {
    pub async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .fallback(webhook)
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the webhook");
        let addr = listener.local_addr().expect("webhook addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, seen }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("webhook log").clone()
    }
}

async fn webhook(
    State(seen): State<Arc<Mutex<Vec<Seen>>>>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let token = uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "validationToken")
            .map(|(_, v)| v.into_owned())
    });
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    seen.lock().expect("webhook log").push(Seen {
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        content_type,
        body,
        validation_token: token.clone(),
    });
    let plain = [("content-type", "text/plain")];
    match (uri.path(), token) {
        ("/wrong", Some(token)) => (StatusCode::OK, plain, format!("\"{token}\"")).into_response(),
        ("/slow", Some(token)) => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            (StatusCode::OK, plain, token).into_response()
        }
        (_, Some(token)) => (StatusCode::OK, plain, token).into_response(),
        ("/fail", None) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        (_, None) => StatusCode::ACCEPTED.into_response(),
    }
}
