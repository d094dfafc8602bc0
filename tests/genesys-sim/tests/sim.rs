//! What the official-SDK contract test (tests/contract) cannot reach, because the SDK always
//! sends a well-formed JSON request with a live token: body validation (415, 413, empty body),
//! token expiry, a missing bearer, and the EventBridge-shaped presence event.
//!
//! Plain HTTP/1.1 over `std::net::TcpStream`, so the crate needs no HTTP client dependency.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use genesys_sim::{Seed, SimServer, seed};
use serde_json::{Value, json};

const ADA: &str = "9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f";

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    /// The Genesys `ErrorBody` with this status and code; returns its message.
    fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        let body = self.json();
        assert_eq!(body["status"], status, "{body}");
        assert_eq!(body["code"], code, "{body}");
        assert!(self.header("inin-correlation-id").is_some());
        body["message"].as_str().expect("a message").to_owned()
    }
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).expect("connect to the simulator");
        stream.write_all(request.as_bytes()).expect("send head");
        stream.write_all(&body).expect("send body");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read the reply");
        parse(&raw)
    })
    .await
    .expect("the request task")
}

fn parse(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP reply");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

async fn token(addr: SocketAddr, id: &str, secret: &str) -> String {
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let reply = send(
        addr,
        "POST",
        "/oauth/token",
        &[
            ("Authorization", &format!("Basic {basic}")),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"grant_type=client_credentials".to_vec(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

async fn start() -> (SimServer, String) {
    let server = SimServer::start(Seed::default(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start the simulator");
    let bearer = format!(
        "Bearer {}",
        token(server.addr, seed::DEMO_CLIENT_ID, seed::DEMO_CLIENT_SECRET).await
    );
    (server, bearer)
}

fn presence_path() -> String {
    format!("/api/v2/users/{ADA}/presences/purecloud")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_body_validation_answers_error_bodies() {
    let (server, bearer) = start().await;
    let body = json!({"presenceDefinition": {"id": seed::BUSY}}).to_string();
    let auth = ("Authorization", bearer.as_str());

    let reply = send(
        server.addr,
        "PATCH",
        &presence_path(),
        &[auth, ("Content-Type", "text/plain")],
        body.clone().into_bytes(),
    )
    .await;
    reply.error(415, "unsupported.media.type");

    let reply = send(
        server.addr,
        "PATCH",
        &presence_path(),
        &[auth, ("Content-Type", "application/json")],
        Vec::new(),
    )
    .await;
    assert!(reply.error(400, "bad.request").contains("required"));

    let reply = send(
        server.addr,
        "PATCH",
        &presence_path(),
        &[auth, ("Content-Type", "application/json")],
        b"{}".to_vec(),
    )
    .await;
    reply.error(400, "bad.request");

    let mut huge = format!(r#"{{"message":"{}"}}"#, "x".repeat(512_000)).into_bytes();
    huge.truncate(512_001);
    let reply = send(
        server.addr,
        "PATCH",
        &presence_path(),
        &[auth, ("Content-Type", "application/json")],
        huge,
    )
    .await;
    assert!(
        reply
            .error(413, "request.entity.too.large")
            .contains("512000")
    );

    // Nothing above changed the presence.
    assert!(server.sim.lock().mutations.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_expired_tokens_are_401() {
    let (server, bearer) = start().await;
    let reply = send(server.addr, "GET", &presence_path(), &[], Vec::new()).await;
    reply.error(401, "authentication.required");

    let ok = send(
        server.addr,
        "GET",
        &presence_path(),
        &[("Authorization", &bearer)],
        Vec::new(),
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("inin-ratelimit-allowed"), Some("300"));

    // The demo client's token lives 86400 s; move the simulator clock past it.
    server.sim.lock().clock_offset += chrono::Duration::seconds(86_401);
    let reply = send(
        server.addr,
        "GET",
        &presence_path(),
        &[("Authorization", &bearer)],
        Vec::new(),
    )
    .await;
    reply.error(401, "bad.credentials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_change_emits_the_eventbridge_event() {
    let (server, bearer) = start().await;
    let reply = send(
        server.addr,
        "PATCH",
        &presence_path(),
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        json!({"presenceDefinition": {"id": seed::ON_QUEUE}, "message": "on"})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let patched = reply.json();
    assert_eq!(patched["presenceDefinition"]["systemPresence"], "On Queue");

    let events = server.sim.lock().events.clone();
    let event = events.last().expect("one presence event");
    assert_eq!(event["detail-type"], "v2.users.{id}.presence");
    let detail = &event["detail"];
    assert_eq!(detail["topicName"], format!("v2.users.{ADA}.presence"));
    assert_eq!(
        detail["eventBody"]["presenceDefinition"]["id"],
        seed::ON_QUEUE
    );
    assert_eq!(
        detail["eventBody"]["presenceDefinition"]["systemPresence"],
        "ON_QUEUE"
    );
    assert_eq!(detail["eventBody"]["modifiedDate"], patched["modifiedDate"]);
    assert_eq!(
        detail["metadata"]["CorrelationId"],
        reply.header("inin-correlation-id").expect("correlation id")
    );
}
