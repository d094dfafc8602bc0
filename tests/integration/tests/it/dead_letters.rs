//! Dead-letter replay against moto: messages really redriven by SQS are listed, shown and sent
//! back to their source; failed re-sends leave them in the DLQ, visible; bus events go back
//! through PutEvents and a rule.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use presence_autopilot::aws::dead_letters::SqsDeadLetters;
use presence_autopilot::clock::SystemClock;
use presence_autopilot::operator::dead_letters::{
    DeadLetterKind, DeadLetterService, KnownQueue, ReplayOptions, ReplayOutcome, find,
};
use presence_autopilot::ports::ReplayTarget;
use serde_json::{Value, json};

use crate::support::moto;

fn service() -> DeadLetterService {
    // moto answers a short poll with every visible message: no need to wait.
    let adapter = SqsDeadLetters::new(moto::sqs(), moto::eventbridge()).with_wait(Duration::ZERO);
    DeadLetterService {
        queues: Arc::new(adapter),
        clock: Arc::new(SystemClock),
    }
}

fn options(max_messages: usize) -> ReplayOptions {
    ReplayOptions {
        max_messages,
        per_second: NonZeroU32::new(50).expect("non-zero"),
    }
}

/// Creates a queue; returns (url, arn).
async fn create(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> (String, String) {
    let url = sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes.iter().cloned().collect()))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");
    let arn = moto::queue_arn(sqs, &url).await;
    (url, arn)
}

/// A source queue redriving to `dlq_arn` after one receive.
async fn source_of(sqs: &aws_sdk_sqs::Client, name: &str, dlq_arn: &str) -> String {
    let policy = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}).to_string();
    create(sqs, name, &[(QueueAttributeName::RedrivePolicy, policy)])
        .await
        .0
}

/// (visible, in flight).
pub(crate) async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    let answer = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes");
    let count = |name| {
        answer
            .attributes()
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse().ok())
            .expect("count")
    };
    (
        count(QueueAttributeName::ApproximateNumberOfMessages),
        count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

async fn send(sqs: &aws_sdk_sqs::Client, url: &str, body: &str, user: Option<&str>) {
    let mut request = sqs.send_message().queue_url(url).message_body(body);
    if let Some(user) = user {
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(user)
            .build()
            .expect("attribute");
        request = request.message_attributes("userId", attribute);
    }
    request.send().await.expect("send");
}

/// Everything visible: (body, userId attribute); deletes nothing.
pub(crate) async fn bodies(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<(String, Option<String>)> {
    let answer = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .expect("receive");
    let mut found: Vec<(String, Option<String>)> = answer
        .messages()
        .iter()
        .map(|m| {
            let user = m
                .message_attributes()
                .and_then(|a| a.get("userId"))
                .and_then(|v| v.string_value())
                .map(str::to_owned);
            (m.body().unwrap_or_default().to_owned(), user)
        })
        .collect();
    found.sort();
    found
}

/// Receives twice without deleting: SQS moves every message to the DLQ (maxReceiveCount 1).
async fn fail_twice(sqs: &aws_sdk_sqs::Client, source: &str) {
    for _ in 0..2 {
        sqs.receive_message()
            .queue_url(source)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .expect("receive");
    }
}

/// A BurstDLQ holding `bodies` really dead-lettered from its source; (prefix, source, dlq).
pub(crate) async fn burst_dlq_with(
    sqs: &aws_sdk_sqs::Client,
    bodies: &[&str],
) -> (String, String, String) {
    let prefix = moto::unique_name("dlq");
    let (dlq, dlq_arn) = create(sqs, &format!("{prefix}-BurstDLQ-A1"), &[]).await;
    let source = source_of(sqs, &format!("{prefix}-BurstQueue-B2"), &dlq_arn).await;
    for (i, body) in bodies.iter().enumerate() {
        send(sqs, &source, body, Some(&format!("user-{i}"))).await;
    }
    fail_twice(sqs, &source).await;
    assert_eq!(
        depth(sqs, &dlq).await,
        (bodies.len() as u64, 0),
        "dead-lettered"
    );
    assert_eq!(depth(sqs, &source).await, (0, 0));
    (prefix, source, dlq)
}

#[tokio::test]
async fn redriven_messages_are_listed_shown_and_replayed_to_their_source_with_attributes() {
    let sqs = moto::sqs();
    let originals = ["trigger one", "trigger two", "trigger three"];
    let (prefix, source, dlq_url) = burst_dlq_with(&sqs, &originals).await;
    let service = service();

    let queues = service.list(&prefix).await.expect("list");
    let listed: Vec<(DeadLetterKind, u64, Vec<String>)> = queues
        .iter()
        .map(|q| (q.kind, q.queue.depth, q.queue.sources.clone()))
        .collect();
    assert_eq!(
        listed,
        vec![(DeadLetterKind::Burst, 3, vec![source.clone()])],
        "only the DLQ, with its depth and source"
    );
    let dlq = find(&queues, "BurstDLQ").expect("found");
    assert_eq!(dlq.queue.url, dlq_url);

    let shown = service.show(&dlq.queue, 10).await.expect("show");
    assert_eq!(shown.len(), 3);
    assert!(
        shown
            .iter()
            .all(|l| l.receive_count >= 2 && l.first_sent.is_some())
    );
    assert!(
        shown
            .iter()
            .all(|l| l.attributes["userId"].value.starts_with("user-"))
    );
    assert_eq!(
        depth(&sqs, &dlq_url).await,
        (3, 0),
        "show leaves them visible"
    );

    let report = service
        .replay(&queues, dlq, None, &options(10))
        .await
        .expect("replay");

    assert_eq!(report.replayed(), 3, "{report:?}");
    assert_eq!(
        report.target,
        ReplayTarget::Queue {
            url: source.clone()
        }
    );
    assert_eq!(depth(&sqs, &dlq_url).await, (0, 0), "the DLQ is empty");
    let mut expected: Vec<(String, Option<String>)> = originals
        .iter()
        .enumerate()
        .map(|(i, b)| ((*b).to_owned(), Some(format!("user-{i}"))))
        .collect();
    expected.sort();
    assert_eq!(bodies(&sqs, &source).await, expected);
}

#[tokio::test]
async fn a_target_that_fails_leaves_every_message_in_the_dlq_and_visible() {
    let sqs = moto::sqs();
    let (prefix, source, dlq_url) = burst_dlq_with(&sqs, &["a", "b"]).await;
    let service = service();
    let queues = service.list(&prefix).await.expect("list");
    let dlq = find(&queues, "BurstDLQ").expect("found").clone();
    sqs.delete_queue()
        .queue_url(&source)
        .send()
        .await
        .expect("delete source");

    let gone = ReplayTarget::Queue { url: source };
    let report = service
        .replay_to(&dlq.queue, &gone, &options(10))
        .await
        .expect("replay");

    assert_eq!(report.not_sent(), 2, "{report:?}");
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(
        depth(&sqs, &dlq_url).await,
        (2, 0),
        "kept, and visible at once"
    );

    // Listed again, the DLQ has no source any more: replay refuses before receiving anything.
    let queues = service.list(&prefix).await.expect("list");
    let dlq = find(&queues, "BurstDLQ").expect("found");
    let refused = service
        .replay(&queues, dlq, None, &options(10))
        .await
        .expect_err("no source");
    assert!(refused.to_string().contains("source queue of"), "{refused}");
    assert_eq!(depth(&sqs, &dlq_url).await, (2, 0));
}

/// A bus with one rule copying `detail_type` events to a new queue; (bus, queue url).
async fn bus_to_queue(sqs: &aws_sdk_sqs::Client, detail_type: &str) -> (String, String) {
    moto::bus_to_queue(sqs, json!({"detail-type": [detail_type]})).await
}

#[tokio::test]
async fn an_events_dlq_body_is_put_on_the_bus_again_and_reaches_the_rule_target() {
    let sqs = moto::sqs();
    let (bus, copy) = bus_to_queue(&sqs, "Calendar Event Started").await;
    let prefix = moto::unique_name("dlq");
    let (dlq_url, _) = create(&sqs, &format!("{prefix}-EventsDLQ-C3"), &[]).await;
    let detail =
        json!({"calendarEventId": "AAMk-1", "userId": "u-1", "start": "2026-02-02T09:00:00Z"});
    let event = json!({
        "version": "0", "id": "6f1c8f0e-0000-4000-8000-000000000001",
        "source": "presence-autopilot.calendar", "detail-type": "Calendar Event Started",
        "account": "123456789012", "time": "2026-02-02T09:00:00Z", "region": "us-east-1",
        "resources": [], "detail": detail,
    });
    send(&sqs, &dlq_url, &event.to_string(), None).await;
    let broken = json!({"source": "presence-autopilot.calendar", "detail": {}});
    send(&sqs, &dlq_url, &broken.to_string(), None).await;
    let service = service();
    let queues = service.list(&prefix).await.expect("list");
    let dlq = find(&queues, "EventsDLQ").expect("found");

    let without_bus = service.replay(&queues, dlq, None, &options(10)).await;
    assert!(without_bus.is_err_and(|e| e.to_string().contains("EVENT_BUS_NAME")));
    let report = service
        .replay(&queues, dlq, Some(&bus), &options(10))
        .await
        .expect("replay");

    assert_eq!((report.replayed(), report.not_sent()), (1, 1), "{report:?}");
    let not_sent = report.outcomes.iter().find_map(|o| match o {
        ReplayOutcome::NotSent { error, .. } => Some(error.clone()),
        _ => None,
    });
    assert!(not_sent.is_some_and(|e| e.contains("`detail-type`: missing")));
    let arrived = bodies(&sqs, &copy).await;
    assert_eq!(arrived.len(), 1, "{arrived:?}");
    let arrived: Value = serde_json::from_str(&arrived[0].0).expect("an event");
    assert_eq!(arrived["detail-type"], "Calendar Event Started");
    assert_eq!(arrived["source"], "presence-autopilot.calendar");
    assert_eq!(arrived["detail"], detail);
    let kept = bodies(&sqs, &dlq_url).await;
    assert_eq!(
        kept,
        vec![(broken.to_string(), None)],
        "the broken one stays"
    );
}

#[tokio::test]
async fn a_bus_that_does_not_exist_sends_nothing_and_keeps_the_events() {
    let sqs = moto::sqs();
    let prefix = moto::unique_name("dlq");
    let (dlq_url, _) = create(&sqs, &format!("{prefix}-ScheduleCheckAsyncDLQ-D4"), &[]).await;
    let event = json!({"source": "presence-autopilot.calendar",
        "detail-type": "Calendar Event Upserted", "detail": {"calendarEventId": "c"}});
    send(&sqs, &dlq_url, &event.to_string(), None).await;
    let service = service();
    let queues = service.list(&prefix).await.expect("list");
    let dlq = find(&queues, "ScheduleCheckAsyncDLQ").expect("found");

    let report = service
        .replay(
            &queues,
            dlq,
            Some(&moto::unique_name("no-bus")),
            &options(10),
        )
        .await
        .expect("replay");

    assert_eq!(report.not_sent(), 1, "{report:?}");
    assert_eq!(depth(&sqs, &dlq_url).await, (1, 0));
}

#[tokio::test]
async fn scheduler_letters_go_to_the_burst_queue_found_through_the_burst_dlq() {
    let sqs = moto::sqs();
    let (prefix, burst, _) = burst_dlq_with(&sqs, &[]).await;
    let (scheduler_url, _) = create(&sqs, &format!("{prefix}-SchedulerDLQ-E5"), &[]).await;
    let planned =
        json!({"source": "presence-autopilot.schedule", "detail-type": "Calendar Event Started",
        "id": "planned-1", "detail": {"calendarEventId": "c"}})
        .to_string();
    send(&sqs, &scheduler_url, &planned, None).await;
    let service = service();
    let queues: Vec<KnownQueue> = service.list(&prefix).await.expect("list");
    let scheduler = find(&queues, "SchedulerDLQ").expect("found");

    let report = service
        .replay(&queues, scheduler, None, &options(10))
        .await
        .expect("replay");

    assert_eq!(report.replayed(), 1, "{report:?}");
    assert_eq!(bodies(&sqs, &burst).await, vec![(planned, None)]);
    assert_eq!(depth(&sqs, &scheduler_url).await, (0, 0));
}
