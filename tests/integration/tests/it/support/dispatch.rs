//! The `webhook-dispatch` function wired to moto (table, queue + DLQ, subscriber secret) exactly
//! as `main.rs` wires it, and a poller that plays the Lambda SQS event source mapping:
//! receive, invoke the handler, delete what the handler did not report failed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use chrono::Utc;
use lambda_runtime::{Context, LambdaEvent};
use presence_autopilot::aws::dynamo::DynamoStore;
use presence_autopilot::aws::sqs::SqsQueue;
use presence_autopilot::clock::SystemClock;
use presence_autopilot::compose::dispatch::{WebhookDispatchSettings, dispatcher};
use presence_autopilot::delivery::RetrySchedule;
use presence_autopilot::model::UserId;
use presence_autopilot::ports::{AuditQueries, NotificationQueue};
use presence_autopilot::service::dispatch::Dispatcher;
use presence_autopilot::state::{AuditRecord, Notification, NotificationKind};
use webhook_dispatch::handler;

use super::moto;

pub const ADA: &str = "9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f";
pub const BOB: &str = "1c7a8e4e-51a2-4a36-9f3c-2f4e0a6b7d11";
pub const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

#[derive(Debug, Clone)]
pub struct Options {
    pub allow_loopback_http: bool,
    pub max_receive_count: u32,
    pub steps: Vec<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            allow_loopback_http: true,
            max_receive_count: 5,
            steps: vec![1],
        }
    }
}

#[derive(Debug)]
pub struct Harness {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dlq_url: String,
    pub store: DynamoStore,
    pub dispatcher: Dispatcher,
}

impl Harness {
    /// Fresh table, queue (with a DLQ after `max_receive_count`) and subscriber secret.
    pub async fn start(options: Options, subscribers: serde_json::Value) -> Self {
        let (dynamo, table) = moto::new_table().await;
        let sqs = moto::sqs();
        let dlq_url = create_queue(&sqs, &moto::unique_name("dlq"), HashMap::new()).await;
        let dlq_arn = moto::queue_arn(&sqs, &dlq_url).await;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": options.max_receive_count,
        });
        let queue_url = create_queue(
            &sqs,
            &moto::unique_name("notifications"),
            HashMap::from([
                (QueueAttributeName::RedrivePolicy, redrive.to_string()),
                (QueueAttributeName::VisibilityTimeout, "30".to_owned()),
            ]),
        )
        .await;
        let secret_id = moto::unique_name("subscribers");
        moto::secrets_manager()
            .create_secret()
            .name(&secret_id)
            .secret_string(subscribers.to_string())
            .send()
            .await
            .expect("create secret");

        let config = WebhookDispatchSettings {
            table_name: table.clone(),
            queue_url: queue_url.clone(),
            subscribers_secret_id: secret_id.clone(),
            subscribers_cache: Duration::from_secs(300),
            allow_loopback_http: options.allow_loopback_http,
            delivery_timeout: Duration::from_secs(5),
            max_response_bytes: 64 * 1024,
            max_receive_count: options.max_receive_count,
            schedule: RetrySchedule::new(
                options
                    .steps
                    .iter()
                    .map(|s| Duration::from_secs(*s))
                    .collect(),
                0.0,
                Duration::from_secs(3600),
            ),
        };
        let dispatcher = dispatcher(&sdk_config(), &config).expect("dispatcher");
        Self {
            sqs,
            queue_url,
            dlq_url,
            store: DynamoStore::new(dynamo, table, Arc::new(SystemClock)),
            dispatcher,
        }
    }

    pub async fn enqueue(&self, notifications: &[Notification]) {
        let queue = SqsQueue::new(self.sqs.clone(), &self.queue_url, Arc::new(SystemClock));
        let sent = queue.send(notifications).await.expect("send");
        assert!(sent.iter().all(|o| o.is_sent()), "{sent:?}");
    }

    pub async fn enqueue_raw(&self, body: &str) -> String {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .expect("send raw")
            .message_id
            .expect("message id")
    }

    /// One receive (long-polling up to `wait`) and one invocation, as the event source mapping
    /// does it. Returns (received message ids, reported failures).
    pub async fn poll(&self, wait: Duration) -> (Vec<String>, Vec<String>) {
        let messages = receive(&self.sqs, &self.queue_url, wait).await;
        if messages.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let ids: Vec<String> = messages
            .iter()
            .filter_map(|m| m.message_id.clone())
            .collect();
        let handles: HashMap<String, String> = messages
            .iter()
            .filter_map(|m| Some((m.message_id.clone()?, m.receipt_handle.clone()?)))
            .collect();
        let mut event = SqsEvent::default();
        event.records = messages;
        let failures = self.invoke(event).await;
        for id in &ids {
            if !failures.contains(id) {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(&handles[id])
                    .send()
                    .await
                    .expect("delete");
            }
        }
        (ids, failures)
    }

    /// Invokes the handler with an event; returns the batch item failures.
    pub async fn invoke(&self, event: SqsEvent) -> Vec<String> {
        let mut context = Context::default();
        context.deadline =
            u64::try_from((Utc::now() + chrono::Duration::seconds(60)).timestamp_millis())
                .expect("positive");
        let response = handler::handle(&self.dispatcher, LambdaEvent::new(event, context))
            .await
            .expect("handler");
        response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect()
    }

    /// Polls until `done` says so or `timeout` passes; returns every received id in order.
    pub async fn poll_until(
        &self,
        timeout: Duration,
        mut done: impl AsyncFnMut() -> bool,
    ) -> Vec<String> {
        let started = Instant::now();
        let mut seen = Vec::new();
        while started.elapsed() < timeout {
            if done().await {
                return seen;
            }
            let (ids, _) = self.poll(Duration::from_secs(1)).await;
            seen.extend(ids);
        }
        assert!(done().await, "not done within {timeout:?}");
        seen
    }

    pub async fn queue_depth(&self, url: &str) -> usize {
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes");
        let read = |name: QueueAttributeName| {
            attrs
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
        };
        read(QueueAttributeName::ApproximateNumberOfMessages)
            + read(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
    }

    pub async fn audit(&self, user: &str) -> Vec<AuditRecord> {
        let user = UserId::parse(user).expect("user");
        let records = self
            .store
            .by_user(
                &user,
                Utc::now() - chrono::Duration::hours(1),
                Utc::now() + chrono::Duration::hours(1),
            )
            .await
            .expect("audit");
        let verified = self.store.verify_chain(&user).await.expect("verify");
        assert!(verified.is_ok(), "{verified:?}");
        records
    }
}

pub fn sdk_config() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto::endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
            aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "moto"),
        ))
        .build()
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> String {
    sqs.create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url")
}

/// Up to 10 messages as the Lambda SQS event carries them.
pub async fn receive(sqs: &aws_sdk_sqs::Client, url: &str, wait: Duration) -> Vec<SqsMessage> {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(i32::try_from(wait.as_secs()).unwrap_or(1))
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .expect("receive");
    out.messages()
        .iter()
        .map(|m| {
            let mut message = SqsMessage::default();
            message.message_id = m.message_id.clone();
            message.receipt_handle = m.receipt_handle.clone();
            message.body = m.body.clone();
            message.attributes = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            message
        })
        .collect()
}

/// A notification as `transition` would send it.
pub fn notification(
    user: &str,
    sequence: u64,
    kind: NotificationKind,
    until: Option<chrono::DateTime<Utc>>,
) -> Notification {
    let payload = serde_json::json!({
        "email": if user == ADA { "ada@example.com" } else { "bob@example.com" },
        "presence": {
            "definitionId": "bbdff279-7ae1-48ea-bade-7831d7234c64",
            "systemPresence": if kind == NotificationKind::PresenceRestored { "Available" } else { "Meeting" },
            "message": if kind == NotificationKind::PresenceRestored { "" } else { "In a meeting until 14:30 UTC" }
        },
        "previous": {"definitionId": "6a3af858-942f-489d-9700-5f9bcdcdae9b", "systemPresence": "Available", "message": ""},
        "triggerKind": "meeting",
        "triggerId": "AAMkAGI2TG93AAA=",
        "until": until,
        "reason": null
    });
    Notification::for_change(
        UserId::parse(user).expect("user"),
        Utc::now(),
        sequence,
        kind,
        payload,
    )
}

/// Captures every log line of this test process: one global subscriber, installed on first
/// use. (A thread-scoped one misses events whose callsite another test thread registered first
/// while no subscriber was interested.)
#[derive(Debug, Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

static LOGS: std::sync::OnceLock<LogCapture> = std::sync::OnceLock::new();

impl LogCapture {
    pub fn global() -> &'static LogCapture {
        LOGS.get_or_init(|| {
            let capture = LogCapture::default();
            let writer = capture.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            // Fails only if something else installed one first; then nothing is captured and
            // the test that checks for its own log line says so.
            let _ = tracing::subscriber::set_global_default(subscriber);
            capture
        })
    }

    pub fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
