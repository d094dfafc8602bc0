//! A change reaches a webhook, Slack and Teams with exactly the requests those services expect;
//! a redelivered notification reaches nobody twice; a 410 disables the endpoint; no secret
//! shows up in logs or audit records.

use std::time::Duration;

use chrono::{DurationRound, Utc};
use peers::slack::SlackStub;
use peers::teams::TeamsStub;
use peers::webhook::{Reply, WebhookReceiver};
use presence_autopilot::delivery::subscribers::SubscriberId;
use presence_autopilot::state::{DecisionKind, NotificationKind};
use serde_json::json;

use crate::support::dispatch::{ADA, BOB, Harness, LogCapture, Options, SECRET, notification};

const SLACK_TOKEN: &str = "xoxp-1234-5678-s3cr3t-slack";
const GRAPH_SECRET: &str = "graph~client~s3cr3t";
const ROTATED_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::test(flavor = "current_thread")]
async fn a_change_reaches_webhook_slack_and_teams_with_exact_request_shapes() {
    let logs = LogCapture::global();
    let receiver = WebhookReceiver::start(&[SECRET]).await.expect("receiver");
    let slack = SlackStub::start(&[(SLACK_TOKEN, "U0ADA")])
        .await
        .expect("slack");
    let teams = TeamsStub::start("tenant-1", "app-client-1", GRAPH_SECRET, &["aad-ada"])
        .await
        .expect("teams");
    let harness = Harness::start(
        Options::default(),
        json!({
            "webhooks": [{"id": "ops", "url": receiver.url(), "secrets": [ROTATED_SECRET, SECRET]}],
            "slack": {"tokens": {"ADA@example.com": SLACK_TOKEN}, "apiBaseUrl": slack.api_base()},
            "teams": {"tenantId": "tenant-1", "clientId": "app-client-1", "clientSecret": GRAPH_SECRET,
                      "users": {"ada@example.com": "aad-ada"},
                      "graphBaseUrl": teams.graph_base(), "loginBaseUrl": teams.login_base()}
        }),
    )
    .await;
    let until = (Utc::now() + chrono::Duration::minutes(30))
        .duration_trunc(chrono::Duration::seconds(1))
        .expect("trunc");
    let applied = notification(ADA, 3, NotificationKind::PresenceApplied, Some(until));
    let restored = notification(ADA, 4, NotificationKind::PresenceRestored, None);

    harness.enqueue(std::slice::from_ref(&applied)).await;
    let (received, failed) = harness.poll(Duration::from_secs(2)).await;

    assert_eq!((received.len(), failed.len()), (1, 0));
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 1);
    let delivery = &deliveries[0];
    assert_eq!(
        delivery.rejected, None,
        "the receiver verified the signature"
    );
    assert_eq!(
        delivery.header("webhook-id"),
        Some(applied.notification_id.to_string().as_str())
    );
    assert_eq!(delivery.header("content-type"), Some("application/json"));
    assert_eq!(
        delivery
            .header("webhook-signature")
            .map(|s| s.split(' ').count()),
        Some(2),
        "one signature per configured secret"
    );
    assert_eq!(
        delivery.json(),
        serde_json::to_value(&applied).expect("json")
    );

    let profile = slack.accepted();
    assert_eq!(profile.len(), 1, "{:?}", slack.errors());
    assert_eq!(profile[0].user, "U0ADA");
    assert_eq!(
        profile[0].body,
        json!({"profile": {
            "status_text": "In a meeting until 14:30 UTC",
            "status_emoji": ":calendar:",
            "status_expiration": until.timestamp()
        }})
    );

    let calls = teams.accepted();
    assert_eq!(teams.errors(), vec![]);
    let shapes: Vec<(&str, &str, serde_json::Value)> = calls
        .iter()
        .map(|c| (c.action.as_str(), c.user.as_str(), c.body.clone()))
        .collect();
    assert_eq!(
        shapes,
        vec![
            (
                "setPresence",
                "aad-ada",
                json!({
                    "sessionId": "app-client-1", "availability": "Busy",
                    "activity": "InAConferenceCall", "expirationDuration": "PT30M"
                })
            ),
            (
                "setStatusMessage",
                "aad-ada",
                json!({"statusMessage": {
                    "message": {"content": "In a meeting until 14:30 UTC", "contentType": "text"},
                    "expiryDateTime": {
                        "dateTime": until.format("%Y-%m-%dT%H:%M:%S").to_string(),
                        "timeZone": "UTC"
                    }
                }})
            ),
        ]
    );

    // The restore clears what we set; the Graph token is reused.
    harness.enqueue(std::slice::from_ref(&restored)).await;
    let (_, failed) = harness.poll(Duration::from_secs(2)).await;
    assert!(failed.is_empty());
    assert_eq!(
        slack.accepted()[1].body,
        json!({"profile": {"status_text": "", "status_emoji": "", "status_expiration": 0}})
    );
    let calls = teams.accepted();
    assert_eq!(calls[2].action, "clearPresence");
    assert_eq!(calls[2].body, json!({"sessionId": "app-client-1"}));
    assert_eq!(calls[3].body["statusMessage"]["message"]["content"], "");
    assert_eq!(teams.state.lock().token_requests, 1, "token cached");

    // A retried transition sends the same notification again: nobody hears it twice.
    harness.enqueue(std::slice::from_ref(&applied)).await;
    let (received, failed) = harness.poll(Duration::from_secs(2)).await;
    assert_eq!((received.len(), failed.len()), (1, 0));
    assert_eq!(receiver.deliveries().len(), 2);
    assert_eq!(slack.accepted().len(), 2);
    assert_eq!(teams.accepted().len(), 4);
    assert_eq!(harness.queue_depth(&harness.queue_url).await, 0);

    let audit = harness.audit(ADA).await;
    let delivered: Vec<(String, String)> = audit
        .iter()
        .filter(|r| r.kind == DecisionKind::DeliveryDelivered)
        .map(|r| {
            (
                r.event_id.clone().unwrap_or_default(),
                r.details["subscriber"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        delivered.len(),
        6,
        "3 subscribers × 2 notifications: {delivered:?}"
    );
    assert!(
        audit
            .iter()
            .all(|r| r.kind == DecisionKind::DeliveryDelivered)
    );

    // No secret anywhere we write text: audit records, logs.
    let shown = format!("{audit:?} {}", logs.text());
    let own_line = format!("dispatching notification_id={}", applied.notification_id);
    assert!(logs.text().contains(&own_line), "logs were captured");
    for secret in [
        SLACK_TOKEN,
        GRAPH_SECRET,
        "C2FVsBQIhrscChlQIMV",
        "MfKQ9r8GKYqrTwjUPD8",
        "graph-token-1",
    ] {
        assert!(!shown.contains(secret), "{secret} leaked");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_410_disables_the_endpoint_and_later_changes_are_not_sent_to_it() {
    let gone = WebhookReceiver::start(&[SECRET]).await.expect("receiver");
    gone.answer_always(Reply::Status(410));
    let healthy = WebhookReceiver::start(&[SECRET]).await.expect("receiver");
    let harness = Harness::start(
        Options::default(),
        json!({"webhooks": [
            {"id": "gone", "url": gone.url(), "secrets": [SECRET]},
            {"id": "healthy", "url": healthy.url(), "secrets": [SECRET]}
        ]}),
    )
    .await;

    harness
        .enqueue(&[notification(
            BOB,
            1,
            NotificationKind::PresenceApplied,
            None,
        )])
        .await;
    let (_, failed) = harness.poll(Duration::from_secs(2)).await;
    harness
        .enqueue(&[notification(
            BOB,
            2,
            NotificationKind::PresenceRestored,
            None,
        )])
        .await;
    let (_, failed_later) = harness.poll(Duration::from_secs(2)).await;

    assert!(
        failed.is_empty() && failed_later.is_empty(),
        "a disabled endpoint is not a failure"
    );
    assert_eq!(gone.deliveries().len(), 1, "not called after its 410");
    assert_eq!(healthy.deliveries().len(), 2);
    let disabled = harness
        .dispatcher
        .endpoints
        .disabled(&SubscriberId::parse("gone").expect("id"))
        .await
        .expect("read")
        .expect("recorded");
    assert!(disabled.reason.contains("410"), "{disabled:?}");
    let kinds: Vec<(DecisionKind, String)> = harness
        .audit(BOB)
        .await
        .into_iter()
        .filter(|r| r.details["subscriber"] == "gone")
        .map(|r| (r.kind, r.reason.unwrap_or_default()))
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert_eq!(
        kinds[0],
        (
            DecisionKind::DeliveryDisabled,
            "HTTP 410 Gone: endpoint disabled".to_owned()
        )
    );
    assert_eq!(kinds[1].0, DecisionKind::DeliveryDisabled);
    assert!(kinds[1].1.contains("not attempted"), "{}", kinds[1].1);
}

/// A team's daily look-ahead through the real dispatcher: a signed webhook to the endpoint that
/// lists the team (verified by the receiver), one `chat.postMessage` in the team's Slack channel
/// with the bot token, nothing to an endpoint that did not ask, no user status touched; a
/// redelivery sends nothing twice.
#[tokio::test(flavor = "current_thread")]
async fn a_teams_look_ahead_reaches_its_webhook_and_its_slack_channel() {
    use presence_autopilot::model::UserId;
    use presence_autopilot::state::{Notification, NotificationId};
    const BOT_TOKEN: &str = "xoxb-1234-5678-s3cr3t-bot";
    let floor = WebhookReceiver::start(&[SECRET]).await.expect("receiver");
    let others = WebhookReceiver::start(&[SECRET]).await.expect("receiver");
    let slack = SlackStub::start(&[(SLACK_TOKEN, "U0ADA"), (BOT_TOKEN, "B0BOT")])
        .await
        .expect("slack");
    slack.add_channel("C0FLOOR");
    let harness = Harness::start(
        Options::default(),
        json!({
            "webhooks": [{"id": "floor", "url": floor.url(), "secrets": [SECRET], "teams": ["tier-1"]},
                         {"id": "ops", "url": others.url(), "secrets": [SECRET]}],
            "slack": {"tokens": {"ada@example.com": SLACK_TOKEN}, "botToken": BOT_TOKEN,
                      "teamChannels": {"tier-1": "C0FLOOR"}, "apiBaseUrl": slack.api_base()}
        }),
    )
    .await;
    let day = chrono::DateTime::parse_from_rfc3339("2026-12-08T00:00:00Z")
        .expect("day")
        .to_utc();
    let notice = Notification {
        notification_id: NotificationId::for_team("tier-1", day, NotificationKind::Lookahead),
        user_id: UserId::unattributed(),
        changed_at: day,
        sequence: 0,
        kind: NotificationKind::Lookahead,
        payload: json!({"team": "tier-1", "date": "2026-12-08", "timeZone": "UTC", "policy": "p1",
                        "members": 2, "intervals": [
            {"start": "2026-12-08T10:00:00Z", "end": "2026-12-08T10:15:00Z", "onQueue": 0,
             "offQueue": 2, "cap": 1, "meetings": [
                {"agent": "ada@example.com", "calendarEventId": "plan", "start": "2026-12-08T10:00:00Z",
                 "end": "2026-12-08T10:30:00Z", "presence": "Meeting"},
                {"agent": "ben@example.com", "calendarEventId": "plan", "start": "2026-12-08T10:00:00Z",
                 "end": "2026-12-08T10:30:00Z", "presence": "Meeting"}]}]}),
    };
    for _ in 0..2 {
        harness.enqueue(std::slice::from_ref(&notice)).await;
        let (received, failed) = harness.poll(Duration::from_secs(2)).await;
        assert_eq!((received.len(), failed.len()), (1, 0));
    }

    let deliveries = floor.deliveries();
    assert_eq!(
        deliveries.len(),
        1,
        "one delivery, the redelivery deduplicated"
    );
    assert_eq!(
        deliveries[0].rejected, None,
        "the receiver verified the signature"
    );
    assert_eq!(deliveries[0].json()["kind"], "lookahead");
    assert!(
        others.deliveries().is_empty(),
        "an endpoint without `teams` gets no notice"
    );
    let posted = slack.posted();
    assert_eq!(posted.len(), 1, "{:?}", slack.errors());
    assert_eq!(posted[0].channel, "C0FLOOR");
    assert!(
        posted[0].text.contains("10:00–10:15: 2 off queue for meetings (cap 1, 0 on queue): ada@example.com, ben@example.com"),
        "{}",
        posted[0].text
    );
    assert!(
        slack.accepted().is_empty(),
        "no user status for a team notice"
    );
}
