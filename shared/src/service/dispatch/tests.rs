//! The dispatch use case on fakes: the channels, the markers, the audit log and the queue's
//! visibility in memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::DateTime;

use super::*;
use crate::clock::ManualClock;
use crate::fakes::delivery::{FakeChannel, FakeEndpoints, FakeVisibility};
use crate::fakes::{FakeSecrets, InMemoryStore};
use crate::ports::AttemptOutcome;
use crate::state::Notification;

const SUBSCRIBERS: &str = r#"{
  "webhooks": [{"id": "ops", "url": "https://hooks.example.com/presence",
                "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}],
  "slack": {"tokens": {"ada@example.com": "xoxp-test"}}
}"#;

struct World {
    dispatcher: Dispatcher,
    webhooks: Arc<FakeChannel<WebhookMessage>>,
    slack: Arc<FakeChannel<SlackMessage>>,
    store: Arc<InMemoryStore>,
    visibility: Arc<FakeVisibility>,
    clock: ManualClock,
}

fn world() -> World {
    world_with(SUBSCRIBERS)
}

fn world_with(subscribers: &str) -> World {
    let start = DateTime::parse_from_rfc3339("2026-03-19T14:00:01Z").expect("valid");
    let clock = ManualClock::starting_at(start.to_utc());
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let secrets = FakeSecrets::default();
    secrets.set("subscribers", subscribers);
    let store = Arc::new(InMemoryStore::new(shared.clone()));
    let webhooks = Arc::new(FakeChannel::default());
    let slack = Arc::new(FakeChannel::default());
    let visibility = Arc::new(FakeVisibility::default());
    let dispatcher = Dispatcher {
        secrets: Arc::new(secrets),
        subscribers_secret: "subscribers".to_owned(),
        webhooks: webhooks.clone(),
        slack: slack.clone(),
        teams: Arc::new(FakeChannel::default()),
        audit: store.clone(),
        markers: store.clone(),
        endpoints: Arc::new(FakeEndpoints::default()),
        visibility: visibility.clone(),
        clock: shared,
        settings: DispatchSettings::default(),
        rng: Mutex::new(fastrand::Rng::with_seed(7)),
    };
    World {
        dispatcher,
        webhooks,
        slack,
        store,
        visibility,
        clock,
    }
}

fn record(receive_count: u32) -> InboundRecord {
    InboundRecord {
        message_id: "m-1".to_owned(),
        receipt_handle: Some(format!("handle-{receive_count}")),
        body: Some(include_str!("../../../../tests/fixtures/notification-applied.json").to_owned()),
        receive_count,
    }
}

impl World {
    async fn dispatch(&self, receive_count: u32) -> RecordVerdict {
        let deadline = Deadline::after(&self.clock, Duration::from_secs(60));
        let report = self
            .dispatcher
            .dispatch_batch(vec![record(receive_count)], deadline)
            .await
            .expect("the subscriber document reads");
        report.records[0].1.clone()
    }

    fn kinds(&self) -> Vec<DecisionKind> {
        let ada = UserId::parse("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f").expect("valid");
        let records = self.store.audit_records(&ada);
        records.into_iter().map(|record| record.kind).collect()
    }
}

#[tokio::test]
async fn each_subscriber_gets_its_own_message_once_and_only_the_failed_one_is_retried() {
    let world = world();
    world
        .webhooks
        .answer_next(AttemptOutcome::retryable("HTTP 503"));

    let first = world.dispatch(1).await;

    assert!(matches!(first, RecordVerdict::Retry { .. }), "{first:?}");
    let slack = world.slack.sent();
    assert_eq!(slack.len(), 1);
    let crate::delivery::messages::SlackCall::Status(status) = &slack[0].call else {
        panic!("a status: {:?}", slack[0].call)
    };
    assert_eq!(status.emoji, ":calendar:");
    assert_eq!(status.text, "In a meeting until 14:30 UTC");
    assert_eq!(world.webhooks.sent()[0].subscriber.id.as_str(), "ops");
    assert_eq!(
        world.visibility.changes().len(),
        1,
        "hidden until the retry"
    );

    // The next receive: Slack has it already (its marker says so); only the webhook is tried.
    world.clock.advance(Duration::from_secs(30));
    let second = world.dispatch(2).await;

    assert_eq!(second, RecordVerdict::Done);
    assert_eq!(world.slack.sent().len(), 1, "not sent to Slack twice");
    assert_eq!(world.webhooks.sent().len(), 2);
    let mut kinds = world.kinds();
    kinds.sort_by_key(|kind| format!("{kind:?}"));
    assert_eq!(
        kinds,
        [
            DecisionKind::DeliveryDelivered,
            DecisionKind::DeliveryDelivered,
            DecisionKind::DeliveryRetryScheduled
        ]
    );
}

#[tokio::test]
async fn a_permanent_refusal_parks_the_record_for_the_dead_letter_queue() {
    let world = world();
    world
        .webhooks
        .answer_next(AttemptOutcome::permanent("HTTP 400"));

    let verdict = world.dispatch(1).await;

    assert!(
        matches!(&verdict, RecordVerdict::Parked { reason } if reason.contains("HTTP 400")),
        "{verdict:?}"
    );
    // Visible again at once, so the queue's redrive moves it to the DLQ after its receives.
    assert_eq!(
        world.visibility.changes(),
        [("handle-1".to_owned(), Duration::ZERO)]
    );
    assert!(world.kinds().contains(&DecisionKind::DeliveryParked));
}

/// A team's look-ahead goes only to the webhooks that list the team (or `*`), not to one that
/// asked for nothing, and as a post in the team's Slack channel (never as a user's status);
/// once per subscriber on a redelivery.
#[tokio::test]
async fn a_teams_look_ahead_reaches_only_the_webhooks_that_ask_for_the_team() {
    let world = world_with(
        r#"{
  "webhooks": [
    {"id": "ops", "url": "https://hooks.example.com/presence", "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]},
    {"id": "floor", "url": "https://hooks.example.com/floor", "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], "teams": ["tier-1"]},
    {"id": "leads", "url": "https://hooks.example.com/leads", "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], "teams": ["leads"]},
    {"id": "planning", "url": "https://hooks.example.com/wfm", "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], "teams": ["*"]}
  ],
  "slack": {"tokens": {"ada@example.com": "xoxp-test"}, "botToken": "xoxb-test",
            "teamChannels": {"tier-1": "C0FLOOR", "leads": "C0LEADS"}}
}"#,
    );
    let day = DateTime::parse_from_rfc3339("2026-03-20T00:00:00Z")
        .expect("valid")
        .to_utc();
    let notification = Notification {
        notification_id: crate::state::NotificationId::for_team(
            "tier-1",
            day,
            crate::state::NotificationKind::Lookahead,
        ),
        user_id: UserId::unattributed(),
        changed_at: day,
        sequence: 0,
        kind: crate::state::NotificationKind::Lookahead,
        payload: json!({"team": "tier-1", "date": "2026-03-20", "timeZone": "Europe/Paris",
                        "policy": "p1", "members": 4, "intervals": [
                            {"start": "2026-03-20T09:00:00Z", "end": "2026-03-20T09:15:00Z",
                             "onQueue": 2, "offQueue": 2, "cap": 1, "meetings": [
                                {"agent": "ada@example.com", "calendarEventId": "sync",
                                 "start": "2026-03-20T09:00:00Z", "end": "2026-03-20T09:30:00Z",
                                 "presence": "Meeting"},
                                {"agent": "ben@example.com", "calendarEventId": "review",
                                 "start": "2026-03-20T09:00:00Z", "end": "2026-03-20T10:00:00Z",
                                 "presence": "Meeting"}]}]}),
    };
    let record = |n: u32| InboundRecord {
        message_id: "m-1".to_owned(),
        receipt_handle: Some(format!("handle-{n}")),
        body: Some(serde_json::to_string(&notification).expect("json")),
        receive_count: n,
    };
    let deadline = Deadline::after(&world.clock, Duration::from_secs(60));
    for n in 1..=2 {
        let report = world
            .dispatcher
            .dispatch_batch(vec![record(n)], deadline)
            .await
            .expect("subscribers");
        assert_eq!(report.records[0].1, RecordVerdict::Done);
    }
    let reached: Vec<String> = world
        .webhooks
        .sent()
        .iter()
        .map(|m| m.subscriber.id.as_str().to_owned())
        .collect();
    assert_eq!(reached.len(), 2, "{reached:?}");
    assert!(reached.contains(&"floor".to_owned()) && reached.contains(&"planning".to_owned()));
    let posted = world.slack.sent();
    assert_eq!(posted.len(), 1, "one post, not repeated on the redelivery");
    let crate::delivery::messages::SlackCall::Post(post) = &posted[0].call else {
        panic!("a post: {:?}", posted[0].call)
    };
    assert_eq!(post.channel, "C0FLOOR");
    assert!(
        post.text.contains("team *tier-1*")
            && post.text.contains("10:00–10:15: 2 off queue for meetings (cap 1, 2 on queue): ada@example.com, ben@example.com"),
        "times in the team's zone (Paris): {}",
        post.text
    );
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&posted[0].token),
        "xoxb-test"
    );
}

/// Team channels need the bot token that posts in them: refused, naming the field.
#[tokio::test]
async fn team_channels_without_a_bot_token_are_refused() {
    let world = world_with(r#"{"slack": {"teamChannels": {"tier-1": "C0FLOOR"}}}"#);
    let deadline = Deadline::after(&world.clock, Duration::from_secs(60));
    let error = world
        .dispatcher
        .dispatch_batch(vec![record(1)], deadline)
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("slack.botToken"), "{error}");
}
