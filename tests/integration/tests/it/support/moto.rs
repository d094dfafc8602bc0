//! One local AWS stand-in per test binary: `tests/local/aws_standin.py`, moto's application
//! served one request at a time so each request is atomic as in DynamoDB (docs/local-aws.md).
//! Started on first use on a free loopback port; it exits by itself once this process is gone
//! (statics are never dropped, so no Drop could stop it).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};

static MOTO: OnceLock<String> = OnceLock::new();
static NAMES: AtomicU32 = AtomicU32::new(0);

/// The endpoint URL of the shared stand-in, starting it if needed.
pub fn endpoint() -> &'static str {
    MOTO.get_or_init(start)
}

fn workspace_root() -> PathBuf {
    // tests/integration -> workspace root
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("STANDIN_PYTHON") {
        return PathBuf::from(path);
    }
    workspace_root().join(".venv/bin/python")
}

fn start() -> String {
    let python = python();
    assert!(
        python.exists(),
        "{} not found: run `make setup`",
        python.display()
    );
    let mut child = Command::new(&python)
        .arg(workspace_root().join("tests/local/aws_standin.py"))
        .args(["--host", "127.0.0.1", "--port", "0", "--parent-pid"])
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the AWS stand-in");
    // Its first line is its URL, printed once it listens.
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the stand-in's URL");
    let url = line.trim().to_owned();
    assert!(
        url.starts_with("http://"),
        "the AWS stand-in did not print its URL (got {url:?})"
    );
    // Reap it if it ends (it exits when this process does) so it never lingers as a zombie.
    std::thread::spawn(move || child.wait());
    url
}

/// Arms a fault on the stand-in's control endpoint (docs/local-aws.md): the next `count`
/// requests whose `X-Amz-Target` is `target` and whose body contains `scope` get error `code`
/// (`when` = "before": not run; "after": run, then the answer is lost).
pub async fn inject_fault(
    target: &str,
    code: &str,
    status: u16,
    count: u32,
    when: &str,
    scope: &str,
) {
    let fault = serde_json::json!({
        "target": target,
        "code": code,
        "status": status,
        "count": count,
        "when": when,
        "body_contains": scope,
        "message": format!("injected {code}"),
    });
    arm_fault(fault).await;
}

/// `inject_fault` for the requests of `scope` whose body also holds `step` (an item key that
/// only one step of the test writes, such as the audit chain head of a commit).
pub async fn inject_fault_at(
    target: &str,
    code: &str,
    status: u16,
    count: u32,
    scope: &str,
    step: &str,
) {
    let fault = serde_json::json!({
        "target": target,
        "code": code,
        "status": status,
        "count": count,
        "when": "before",
        "body_contains": scope,
        "also_contains": step,
        "message": format!("injected {code}"),
    });
    arm_fault(fault).await;
}

async fn arm_fault(fault: serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/_standin/faults", endpoint()))
        .json(&fault)
        .send()
        .await
        .expect("stand-in control endpoint");
    assert!(
        response.status().is_success(),
        "arming a fault failed: {}",
        response.status()
    );
}

/// Disarms every fault whose scope is `scope` (tests share one stand-in, so each clears only
/// its own).
pub async fn clear_faults(scope: &str) {
    let response = reqwest::Client::new()
        .delete(format!("{}/_standin/faults", endpoint()))
        .query(&[("body_contains", scope)])
        .send()
        .await
        .expect("stand-in control endpoint");
    assert!(
        response.status().is_success(),
        "clearing faults failed: {}",
        response.status()
    );
}

/// Counts, by operation (`X-Amz-Target`), the stand-in requests whose body contains `scope`
/// (a test's own table name or queue URL), from now until `take`.
pub struct CallCounter {
    id: String,
}

impl CallCounter {
    pub async fn start(scope: &str) -> Self {
        let response = reqwest::Client::new()
            .post(format!("{}/_standin/calls", endpoint()))
            .json(&serde_json::json!({"body_contains": scope}))
            .send()
            .await
            .expect("stand-in calls endpoint");
        assert!(response.status().is_success(), "{}", response.status());
        let body: serde_json::Value = response.json().await.expect("json");
        Self {
            id: body["id"].as_str().expect("counter id").to_owned(),
        }
    }

    /// The counts so far, by operation name without its service prefix; stops counting.
    pub async fn take(self) -> std::collections::BTreeMap<String, usize> {
        let response = reqwest::Client::new()
            .delete(format!("{}/_standin/calls/{}", endpoint(), self.id))
            .send()
            .await
            .expect("stand-in calls endpoint");
        assert!(response.status().is_success(), "{}", response.status());
        let body: serde_json::Value = response.json().await.expect("json");
        body["calls"]
            .as_object()
            .expect("calls")
            .iter()
            .map(|(target, n)| {
                let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
                (operation, n.as_u64().expect("count") as usize)
            })
            .collect()
    }
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

pub fn dynamodb_streams() -> aws_sdk_dynamodbstreams::Client {
    let config = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(aws_sdk_dynamodbstreams::config::Region::new("us-east-1"))
        .credentials_provider(credentials())
        .build();
    aws_sdk_dynamodbstreams::Client::from_conf(config)
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

pub fn eventbridge() -> aws_sdk_eventbridge::Client {
    let config = aws_sdk_eventbridge::Config::builder()
        .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(aws_sdk_eventbridge::config::Region::new("us-east-1"))
        .credentials_provider(credentials())
        .build();
    aws_sdk_eventbridge::Client::from_conf(config)
}

/// A queue's ARN (for redrive policies and rule targets).
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    let queue_arn = aws_sdk_sqs::types::QueueAttributeName::QueueArn;
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(queue_arn.clone())
        .send()
        .await
        .expect("queue attributes")
        .attributes()
        .and_then(|a| a.get(&queue_arn).cloned())
        .expect("queue arn")
}

/// A new bus with one rule copying the events `pattern` matches to a new queue; returns
/// (bus name, queue url).
pub async fn bus_to_queue(
    sqs: &aws_sdk_sqs::Client,
    pattern: serde_json::Value,
) -> (String, String) {
    let events = eventbridge();
    let bus = unique_name("bus");
    events
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("create bus");
    let url = sqs
        .create_queue()
        .queue_name(unique_name("bus-copy"))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");
    let arn = queue_arn(sqs, &url).await;
    events
        .put_rule()
        .name("copy")
        .event_bus_name(&bus)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .expect("put rule");
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("copy")
        .arn(arn)
        .build()
        .expect("target");
    events
        .put_targets()
        .rule("copy")
        .event_bus_name(&bus)
        .targets(target)
        .send()
        .await
        .expect("put targets");
    (bus, url)
}

/// A fresh table with the production key design, indexes and TTL.
pub async fn new_table() -> (aws_sdk_dynamodb::Client, String) {
    let client = dynamodb();
    let table = unique_name("state");
    presence_autopilot::aws::dynamo::DynamoStore::create_table(&client, &table)
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
