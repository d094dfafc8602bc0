//! A webhook receiver that verifies Standard Webhooks signatures like a real consumer: HMAC-SHA256
//! over `{id}.{timestamp}.{body}` with any of its secrets, constant-time comparison, timestamps
//! more than 5 minutes off rejected. Written against the spec, independently of the signer in
//! `shared`, so a shared misreading cannot make both sides agree.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{Served, Shared};

/// The receiver's answer to one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(u16),
    /// 302 to this location.
    Redirect(String),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// Why the signature check failed, if it did (then the answer was 401).
    pub rejected: Option<String>,
    pub answered: u16,
}

impl Delivery {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Debug, Default)]
pub struct ReceiverState {
    pub deliveries: Vec<Delivery>,
    /// Answers for the next requests, in order; when empty, 200.
    pub script: VecDeque<Reply>,
    /// Answer this to everything once the script is used up (None = 200).
    pub otherwise: Option<Reply>,
}

#[derive(Debug)]
pub struct WebhookReceiver {
    pub served: Served,
    pub state: Arc<Shared<ReceiverState>>,
}

struct AppState {
    secrets: Vec<Vec<u8>>,
    state: Arc<Shared<ReceiverState>>,
}

impl WebhookReceiver {
    /// Starts with the `whsec_` secrets it accepts (any one verifying is enough).
    pub async fn start(secrets: &[&str]) -> anyhow::Result<Self> {
        let secrets = secrets
            .iter()
            .map(|s| {
                let encoded = s
                    .strip_prefix("whsec_")
                    .ok_or_else(|| anyhow::anyhow!("receiver secret needs whsec_"))?;
                Ok(STANDARD.decode(encoded)?)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let state = Shared::new(ReceiverState::default());
        let app = Arc::new(AppState {
            secrets,
            state: Arc::clone(&state),
        });
        let router = Router::new()
            .route("/hook", post(receive))
            .route("/hook/{*rest}", post(receive))
            .with_state(app);
        Ok(Self {
            served: Served::start(router).await?,
            state,
        })
    }

    /// The URL to configure: `http://127.0.0.1:<port>/hook`.
    pub fn url(&self) -> String {
        format!("{}hook", self.served.base_url())
    }

    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.update(|s| s.script.extend(replies));
    }

    pub fn answer_always(&self, reply: Reply) {
        self.state.update(|s| s.otherwise = Some(reply));
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.lock().deliveries.clone()
    }

    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Delivery> {
        self.state
            .wait_until(timeout, |s| s.deliveries.len() >= count)
            .await;
        self.deliveries()
    }
}

async fn receive(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let verdict = verify(
        &app.secrets,
        &headers,
        &body,
        chrono::Utc::now().timestamp(),
    );
    let reply = app.state.update(|s| {
        let reply = match &verdict {
            Err(_) => Reply::Status(401),
            Ok(()) => s
                .script
                .pop_front()
                .or_else(|| s.otherwise.clone())
                .unwrap_or(Reply::Status(200)),
        };
        s.deliveries.push(Delivery {
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body: body.to_vec(),
            rejected: verdict.clone().err(),
            answered: match &reply {
                Reply::Status(code) => *code,
                Reply::Redirect(_) => 302,
            },
        });
        reply
    });
    match reply {
        Reply::Status(code) => StatusCode::from_u16(code)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
        Reply::Redirect(location) => {
            let mut response = StatusCode::FOUND.into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert("location", value);
            }
            response
        }
    }
}

/// The receiver side of the spec.
pub fn verify(
    secrets: &[Vec<u8>],
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<(), String> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("missing {name}"))
    };
    let id = get("webhook-id")?;
    let timestamp = get("webhook-timestamp")?;
    let signatures = get("webhook-signature")?;
    let at: i64 = timestamp
        .parse()
        .map_err(|_| "webhook-timestamp is not an integer".to_owned())?;
    if (now - at).abs() > 300 {
        return Err(format!("timestamp {at} is more than 5 minutes from {now}"));
    }
    for signature in signatures.split(' ') {
        let Some(("v1", encoded)) = signature.split_once(',') else {
            continue;
        };
        let Ok(expected) = STANDARD.decode(encoded) else {
            continue;
        };
        for secret in secrets {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
                continue;
            };
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(body);
            if mac.verify_slice(&expected).is_ok() {
                return Ok(());
            }
        }
    }
    Err("no signature matches".to_owned())
}
