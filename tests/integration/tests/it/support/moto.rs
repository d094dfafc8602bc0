//! One moto server per test binary: started on first use on a free loopback port, killed by a
//! shell watchdog when this process exits (statics are never dropped, so no Drop can do it).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};

static MOTO: OnceLock<String> = OnceLock::new();
static NAMES: AtomicU32 = AtomicU32::new(0);

/// The endpoint URL of the shared moto server, starting it if needed.
pub fn endpoint() -> &'static str {
    MOTO.get_or_init(start)
}

fn moto_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    // tests/integration -> workspace root
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server")
}

fn start() -> String {
    let binary = moto_binary();
    assert!(
        binary.exists(),
        "{} not found: run `make setup`",
        binary.display()
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port();
    // The watchdog polls for this test process and kills moto once it is gone.
    let script = format!(
        "\"$0\" -H 127.0.0.1 -p {port} & child=$!; \
         while kill -0 {parent} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 1; done; \
         kill $child 2>/dev/null",
        parent = std::process::id(),
    );
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&binary)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn moto_server");
    // Reap the watchdog if it ends early (moto crashed) so it does not linger as a zombie.
    std::thread::spawn(move || watchdog.wait());
    wait_until_answering(port);
    format!("http://127.0.0.1:{port}")
}

fn wait_until_answering(port: u16) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let request = "GET /moto-api/ HTTP/1.0\r\nHost: localhost\r\n\r\n";
            let mut status = [0u8; 12];
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_exact(&mut status).is_ok()
                && status.starts_with(b"HTTP/1")
            {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto_server did not answer on port {port} within 30 s");
}

/// A name no other test (in this or a concurrent run) uses: table, queue, secret.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        NAMES.fetch_add(1, Ordering::Relaxed),
        chrono::Utc::now().timestamp_micros()
    )
}

fn credentials() -> Credentials {
    Credentials::new("test", "test", None, None, "moto")
}

pub fn dynamodb() -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

pub fn secrets_manager() -> aws_sdk_secretsmanager::Client {
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
        .credentials_provider(credentials())
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

pub fn sqs() -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(credentials())
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// A fresh table with the production key design, indexes and TTL.
pub async fn new_table() -> (aws_sdk_dynamodb::Client, String) {
    let client = dynamodb();
    let table = unique_name("state");
    shared::aws::dynamo::DynamoStore::create_table(&client, &table)
        .await
        .expect("create table");
    (client, table)
}

pub fn scheduler() -> aws_sdk_scheduler::Client {
    let config = aws_sdk_scheduler::Config::builder()
        .behavior_version(aws_sdk_scheduler::config::BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(aws_sdk_scheduler::config::Region::new("us-east-1"))
        .credentials_provider(credentials())
        .build();
    aws_sdk_scheduler::Client::from_conf(config)
}
