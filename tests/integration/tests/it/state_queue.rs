//! `SqsQueue` against moto: batches of ten, every notification arrives once with its id.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use presence_autopilot::aws::sqs::SqsQueue;
use presence_autopilot::clock::SystemClock;
use presence_autopilot::model::UserId;
use presence_autopilot::ports::{NotificationQueue, SendOutcome};
use presence_autopilot::state::{Notification, NotificationKind};

use crate::support::moto;

#[tokio::test]
async fn twenty_five_notifications_arrive_as_twenty_five_messages_with_their_ids() {
    let client = moto::sqs();
    let queue_url = client
        .create_queue()
        .queue_name(moto::unique_name("notifications"))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("url");
    let queue = SqsQueue::new(client.clone(), queue_url.clone(), Arc::new(SystemClock));
    let user = UserId::parse("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f").expect("id");
    let changed_at = DateTime::<Utc>::from_timestamp(1_770_000_000, 0).expect("time");
    let notifications: Vec<Notification> = (1..=25)
        .map(|sequence| {
            Notification::for_change(
                user.clone(),
                changed_at,
                sequence,
                NotificationKind::PresenceApplied,
                serde_json::json!({ "sequence": sequence }),
            )
        })
        .collect();

    let outcomes = queue.send(&notifications).await.expect("send");

    let sent: BTreeMap<String, String> = outcomes
        .iter()
        .map(|o| match o {
            SendOutcome::Sent {
                notification_id,
                message_id,
            } => (notification_id.to_string(), message_id.clone()),
            SendOutcome::Failed { code, .. } => panic!("not sent: {code}"),
        })
        .collect();
    let ids: BTreeSet<String> = notifications
        .iter()
        .map(|n| n.notification_id.to_string())
        .collect();
    assert_eq!(
        sent.keys().cloned().collect::<BTreeSet<_>>(),
        ids,
        "25 distinct ids, in order of input"
    );
    assert_eq!(
        outcomes
            .iter()
            .map(SendOutcome::notification_id)
            .collect::<Vec<_>>(),
        notifications
            .iter()
            .map(|n| n.notification_id)
            .collect::<Vec<_>>()
    );

    let mut received: BTreeMap<String, (String, Notification)> = BTreeMap::new();
    let started = Instant::now();
    while received.len() < 25 && started.elapsed() < Duration::from_secs(20) {
        let out = client
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive");
        for message in out.messages() {
            let body: Notification =
                serde_json::from_str(message.body().expect("body")).expect("a Notification");
            let attrs = message.message_attributes().expect("attributes");
            let attr = |name: &str| {
                attrs
                    .get(name)
                    .and_then(|a| a.string_value())
                    .map(str::to_owned)
            };
            assert_eq!(
                attr("notificationId"),
                Some(body.notification_id.to_string())
            );
            assert_eq!(attr("notificationKind").as_deref(), Some("presenceApplied"));
            assert_eq!(attr("userId"), Some(user.to_string()));
            let message_id = message.message_id().expect("message id").to_owned();
            let previous = received.insert(body.notification_id.to_string(), (message_id, body));
            assert!(previous.is_none(), "a notification arrived twice");
            client
                .delete_message()
                .queue_url(&queue_url)
                .receipt_handle(message.receipt_handle().expect("handle"))
                .send()
                .await
                .expect("delete");
        }
    }

    assert_eq!(received.len(), 25);
    for notification in &notifications {
        let (message_id, body) = &received[&notification.notification_id.to_string()];
        assert_eq!(body, notification);
        assert_eq!(message_id, &sent[&notification.notification_id.to_string()]);
    }
}
