//! Retries through the queue itself, against moto: the visibility timeout carries the schedule,
//! `ApproximateReceiveCount` picks the step, the redrive policy ends in the DLQ.

use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use peers::slack::SlackStub;
use peers::webhook::{Reply, WebhookReceiver};
use presence_autopilot::state::{DecisionKind, NotificationKind};
use serde_json::json;

use crate::support::dispatch::{ADA, BOB, Harness, Options, SECRET, notification, receive};

#[tokio::test(flavor = "current_thread")]
async fn a_receiver_answering_503_twice_gets_it_on_the_third_receive_with_the_same_webhook_id() {
    let receiver = WebhookReceiver::start(&[SECRET]).await.expect("receiver");
    receiver.script([Reply::Status(503), Reply::Status(503)]);
    let harness = Harness::start(
        Options {
            steps: vec![1, 2],
            ..Options::default()
        },
        json!({"webhooks": [{"id": "ops", "url": receiver.url(), "secrets": [SECRET]}]}),
    )
    .await;
    let change = notification(ADA, 7, NotificationKind::PresenceApplied, None);
    harness.enqueue(std::slice::from_ref(&change)).await;

    let (first, failed) = harness.poll(Duration::from_secs(2)).await;
    assert_eq!(failed, first, "the 503 is reported as a batch item failure");
    let (hidden, _) = harness.poll(Duration::ZERO).await;
    assert!(hidden.is_empty(), "hidden for the schedule's first step");
    let received = harness
        .poll_until(Duration::from_secs(15), async || {
            receiver.deliveries().len() >= 3 && {
                harness.queue_depth(&harness.queue_url).await == 0
            }
        })
        .await;

    assert!(
        received.iter().all(|id| id == &first[0]),
        "one message throughout"
    );
    let deliveries = receiver.deliveries();
    let answers: Vec<u16> = deliveries.iter().map(|d| d.answered).collect();
    assert_eq!(answers, vec![503, 503, 200]);
    let ids: Vec<&str> = deliveries
        .iter()
        .filter_map(|d| d.header("webhook-id"))
        .collect();
    assert_eq!(ids, vec![change.notification_id.to_string().as_str(); 3]);
    assert!(deliveries.iter().all(|d| d.rejected.is_none()));
    let audit: Vec<(DecisionKind, u64, Option<String>)> = harness
        .audit(ADA)
        .await
        .into_iter()
        .map(|r| {
            (
                r.kind,
                r.details["receiveCount"].as_u64().unwrap_or(0),
                r.reason,
            )
        })
        .collect();
    assert_eq!(
        audit,
        vec![
            (
                DecisionKind::DeliveryRetryScheduled,
                1,
                Some("HTTP 503".to_owned())
            ),
            (
                DecisionKind::DeliveryRetryScheduled,
                2,
                Some("HTTP 503".to_owned())
            ),
            (
                DecisionKind::DeliveryDelivered,
                3,
                Some("delivered (HTTP 200)".to_owned())
            ),
        ]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_receiver_down_for_good_sends_its_messages_to_the_dlq_and_none_is_lost() {
    let down = WebhookReceiver::start(&[SECRET]).await.expect("receiver");
    down.answer_always(Reply::Status(503));
    let healthy = WebhookReceiver::start(&[SECRET]).await.expect("receiver");
    let harness = Harness::start(
        Options {
            max_receive_count: 3,
            steps: vec![1],
            ..Options::default()
        },
        json!({"webhooks": [
            {"id": "down", "url": down.url(), "secrets": [SECRET], "userFilter": ["bob@example.com"]},
            {"id": "healthy", "url": healthy.url(), "secrets": [SECRET], "userFilter": [ADA]}
        ]}),
    )
    .await;
    let changes = vec![
        notification(ADA, 1, NotificationKind::PresenceApplied, None),
        notification(BOB, 1, NotificationKind::PresenceApplied, None),
        notification(ADA, 2, NotificationKind::PresenceRestored, None),
        notification(BOB, 2, NotificationKind::PresenceRestored, None),
    ];
    harness.enqueue(&changes).await;

    harness
        .poll_until(Duration::from_secs(20), async || {
            harness.queue_depth(&harness.dlq_url).await == 2
                && harness.queue_depth(&harness.queue_url).await == 0
        })
        .await;

    // Count in = delivered + DLQ.
    let delivered = healthy.deliveries().len();
    let in_dlq = receive(&harness.sqs, &harness.dlq_url, Duration::from_secs(1)).await;
    assert_eq!(delivered + in_dlq.len(), changes.len());
    assert_eq!(delivered, 2);
    let dlq_ids: Vec<String> = in_dlq
        .iter()
        .filter_map(|m| m.body.as_deref())
        .filter_map(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .filter_map(|v| v["userId"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(dlq_ids, vec![BOB.to_owned(), BOB.to_owned()]);
    assert_eq!(
        down.deliveries().len(),
        6,
        "3 receives × 2 messages, then no more"
    );

    let bob = harness.audit(BOB).await;
    for change in &changes[1..] {
        if change.user_id.as_str() != BOB {
            continue;
        }
        let trail: Vec<(DecisionKind, String)> = bob
            .iter()
            .filter(|r| r.event_id.as_deref() == Some(change.notification_id.to_string().as_str()))
            .map(|r| (r.kind, r.reason.clone().unwrap_or_default()))
            .collect();
        assert_eq!(trail.len(), 3, "{trail:?}");
        assert_eq!(trail[0].0, DecisionKind::DeliveryRetryScheduled);
        assert_eq!(trail[2].0, DecisionKind::DeliveryParked);
        assert_eq!(
            trail[2].1,
            "retries exhausted after 3 receives, last: HTTP 503; the message goes to the DLQ"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_batch_of_ten_with_three_failing_reports_exactly_those_three() {
    let healthy = WebhookReceiver::start(&[SECRET]).await.expect("receiver");
    let failing = WebhookReceiver::start(&[SECRET]).await.expect("receiver");
    failing.answer_always(Reply::Status(500));
    let harness = Harness::start(
        Options::default(),
        json!({"webhooks": [
            {"id": "healthy", "url": healthy.url(), "secrets": [SECRET], "userFilter": [ADA]},
            {"id": "failing", "url": failing.url(), "secrets": [SECRET], "userFilter": [BOB]}
        ]}),
    )
    .await;
    let mut changes: Vec<_> = (1..=7)
        .map(|seq| notification(ADA, seq, NotificationKind::PresenceApplied, None))
        .collect();
    changes
        .extend((1..=3).map(|seq| notification(BOB, seq, NotificationKind::PresenceApplied, None)));
    harness.enqueue(&changes).await;
    let mut messages = Vec::new();
    while messages.len() < 10 {
        let more = receive(&harness.sqs, &harness.queue_url, Duration::from_secs(1)).await;
        assert!(!more.is_empty(), "all ten are on the queue");
        messages.extend(more);
    }
    let bob_messages: Vec<String> = messages
        .iter()
        .filter(|m| m.body.as_deref().is_some_and(|b| b.contains(BOB)))
        .filter_map(|m| m.message_id.clone())
        .collect();
    let mut event = SqsEvent::default();
    event.records = messages;

    let mut failures = harness.invoke(event).await;

    failures.sort();
    let mut expected = bob_messages;
    expected.sort();
    assert_eq!(expected.len(), 3);
    assert_eq!(failures, expected);
    assert_eq!(healthy.deliveries().len(), 7);
}

#[tokio::test(flavor = "current_thread")]
async fn slack_rate_limiting_is_retried_no_sooner_than_retry_after() {
    let slack = SlackStub::start(&[("xoxp-ada", "U0ADA")])
        .await
        .expect("slack");
    slack.state.update(|s| s.rate_limit.push_back(3));
    let harness = Harness::start(
        Options {
            steps: vec![1],
            ..Options::default()
        },
        json!({"slack": {"tokens": {ADA: "xoxp-ada"}, "apiBaseUrl": slack.api_base()}}),
    )
    .await;
    harness
        .enqueue(&[notification(
            ADA,
            1,
            NotificationKind::PresenceApplied,
            None,
        )])
        .await;

    let (first, failed) = harness.poll(Duration::from_secs(2)).await;
    assert_eq!(failed, first);
    // The schedule says 1 s, Retry-After says 3 s: still hidden after 1 s of long polling.
    let (early, _) = harness.poll(Duration::from_secs(1)).await;
    assert!(early.is_empty(), "Retry-After honoured");
    harness
        .poll_until(Duration::from_secs(10), async || {
            slack.accepted().len() == 1
        })
        .await;

    let audit = harness.audit(ADA).await;
    assert_eq!(audit[0].kind, DecisionKind::DeliveryRetryScheduled);
    assert_eq!(audit[0].reason.as_deref(), Some("slack: HTTP 429"));
    assert_eq!(audit[0].details["retryAfterSeconds"], 3);
    assert_eq!(audit[1].kind, DecisionKind::DeliveryDelivered);
    assert_eq!(slack.errors(), vec!["http_429".to_owned()]);
}
