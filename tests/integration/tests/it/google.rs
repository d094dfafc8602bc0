//! The Google Workspace side of the calendar connector against the Google simulator: the
//! service-account token per agent, `events.watch` channels and their header-only
//! notifications through the real endpoint, incremental sync with sync tokens, 410, paging,
//! recurring occurrences, channel replacement and rate limits.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use presence_autopilot::calendar::{CalendarError, SyncReason};
use presence_autopilot::clock::{Clock, Deadline, ManualClock};
use presence_autopilot::model::UserId;
use presence_autopilot::ports::{CalendarApis, ConnectionStore};
use presence_autopilot::service::calendar_notify::EndpointRequest;
use presence_autopilot::service::calendar_sync::{SyncError, SyncService, SyncSettings};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::connector::{Connector, google_client};

const AGENT: &str = "agent.one@example.com";

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Connector {
    /// Creates an event in `email`'s Google calendar, `from_now_min` minutes ahead; returns it.
    async fn book_google(
        &self,
        email: &str,
        body: Value,
        from_now_min: i64,
        minutes: i64,
    ) -> Value {
        let start = Utc::now() + chrono::Duration::minutes(from_now_min);
        let end = start + chrono::Duration::minutes(minutes);
        let mut body = body;
        body["start"] = json!(rfc3339(start));
        body["end"] = json!(rfc3339(end));
        self.google_control(
            Method::POST,
            &format!("/sim/calendars/{email}/events"),
            body,
        )
        .await
    }

    async fn channels(&self) -> Vec<Value> {
        self.google_control(Method::GET, "/sim/channels", Value::Null)
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A connected Google agent with a live channel, after its first (full) round.
    async fn watched_agent(&self, email: &str) -> (UserId, Value) {
        let user = self.connect_google(email).await;
        let report = self
            .sync(&user, SyncReason::Upkeep)
            .await
            .expect("first round");
        assert_eq!(report.subscription, Some("created"));
        assert_eq!(report.provider, Some("google"));
        let channel = self
            .channels()
            .await
            .into_iter()
            .find(|c| c["calendar"] == email && c["stopped"] == false)
            .expect("a live channel");
        (user, channel)
    }
}

#[tokio::test]
async fn a_focus_block_reaches_the_bus_through_the_channel_and_an_incremental_round() {
    let connector = Connector::start().await;
    let (user, channel) = connector.watched_agent(AGENT).await;
    assert!(
        channel["address"]
            .as_str()
            .is_some_and(|a| a.starts_with(&connector.endpoint) && a.ends_with("/google/notify")),
        "{channel}"
    );
    let stored = connector.connection(&user).await;
    let subscription = stored.subscription.expect("stored channel");
    assert_eq!(subscription.id, channel["id"].as_str().expect("id"));
    assert_eq!(
        subscription.resource_id.as_deref(),
        channel["resourceId"].as_str()
    );
    assert!(stored.delta_link.expect("link").contains("syncToken="));

    // Google's `sync` message is acknowledged and queues nothing.
    let first = connector.google_deliveries(1).await;
    assert_eq!(first[0]["state"], "sync");
    assert_eq!(first[0]["status"], 200);
    assert!(connector.queued_requests(Duration::ZERO).await.is_empty());

    let focus = connector
        .book_google(
            AGENT,
            json!({"summary": "Deep work", "eventType": "focusTime"}),
            30,
            60,
        )
        .await;
    let delivered = connector.google_deliveries(2).await;
    assert_eq!(delivered[1]["state"], "exists");
    assert_eq!(delivered[1]["status"], 200);
    assert!(delivered[1]["message_number"].as_u64() > delivered[0]["message_number"].as_u64());
    let queued = connector.queued_requests(Duration::from_secs(2)).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(
        (&queued[0].user_id, queued[0].reason),
        (&user, SyncReason::Changed)
    );

    let report = connector
        .sync(&user, SyncReason::Changed)
        .await
        .expect("round");
    assert_eq!((report.upserted, report.full, report.pages), (1, false, 1));
    let events = connector.bus_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let (detail_type, detail) = &events[0];
    assert_eq!(detail_type, "Calendar Event Upserted");
    assert_eq!(detail["kind"], "focus");
    assert_eq!(detail["userId"], user.as_str());
    assert_eq!(detail["calendarEventId"], focus["id"]);
    assert!(
        detail.get("subject").is_none(),
        "the default policy's messages show no subject: {detail}"
    );

    connector
        .google_control(
            Method::POST,
            &format!(
                "/sim/calendars/{AGENT}/events/{}/cancel",
                focus["id"].as_str().expect("id")
            ),
            Value::Null,
        )
        .await;
    connector.google_deliveries(3).await;
    assert_eq!(
        connector
            .queued_requests(Duration::from_secs(2))
            .await
            .len(),
        1
    );
    let report = connector
        .sync(&user, SyncReason::Changed)
        .await
        .expect("round");
    assert_eq!(report.deleted, 1);
    let events = connector.bus_events().await;
    assert_eq!(events[0].0, "Calendar Event Deleted");
    assert_eq!(events[0].1["calendarEventId"], focus["id"]);
}

/// The headers of a Google `exists` notification.
fn exists<'a>(id: &'a str, token: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("X-Goog-Channel-ID", id),
        ("X-Goog-Channel-Token", token),
        ("X-Goog-Resource-State", "exists"),
        ("X-Goog-Message-Number", "7"),
    ]
}

#[tokio::test]
async fn forged_stale_and_malformed_google_notifications_do_no_work() {
    let connector = Connector::start().await;
    let (_, channel) = connector.watched_agent(AGENT).await;
    let id = channel["id"].as_str().expect("id");
    let token = channel["token"].as_str().expect("token");
    connector.google_deliveries(1).await;
    connector.queued_requests(Duration::ZERO).await;

    // Answered 200 (Google would retry anything else) and acted on not at all.
    assert_eq!(connector.post_google(&exists(id, "forged")).await, 200);
    assert_eq!(
        connector.post_google(&exists("stale-channel", token)).await,
        200
    );
    assert_eq!(
        connector
            .post_google(&[
                ("X-Goog-Channel-ID", id),
                ("X-Goog-Resource-State", "exists")
            ])
            .await,
        200
    );
    let long = "c".repeat(65);
    assert_eq!(
        connector
            .post_google(&[
                ("X-Goog-Channel-ID", &long),
                ("X-Goog-Resource-State", "exists")
            ])
            .await,
        400
    );
    assert_eq!(
        connector
            .post_google(&[("X-Goog-Resource-State", "exists")])
            .await,
        400
    );
    assert_eq!(
        connector
            .post_google(&[
                ("X-Goog-Channel-ID", id),
                ("X-Goog-Resource-State", "deleted")
            ])
            .await,
        400
    );
    assert!(connector.queued_requests(Duration::ZERO).await.is_empty());

    let request = |headers: Vec<(&str, &str)>| EndpointRequest {
        method: "POST".to_owned(),
        path: "/google/notify".to_owned(),
        raw_query: String::new(),
        headers: headers
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .collect(),
        body: Vec::new(),
    };
    let forged = connector
        .notify
        .handle(&request(exists(id, "forged")))
        .await
        .expect("handled");
    assert_eq!((forged.report.forged, forged.report.enqueued), (1, 0));
    let stale = connector
        .notify
        .handle(&request(exists("stale-channel", token)))
        .await
        .expect("handled");
    assert_eq!((stale.report.unknown, stale.report.enqueued), (1, 0));
    let good = connector
        .notify
        .handle(&request(exists(id, token)))
        .await
        .expect("handled");
    assert_eq!((good.report.accepted, good.report.enqueued), (1, 1));
    assert_eq!(
        connector
            .queued_requests(Duration::from_secs(2))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn an_expired_sync_token_is_answered_with_a_full_round_within_the_request() {
    let connector = Connector::start().await;
    let (user, _) = connector.watched_agent(AGENT).await;
    let first = connector
        .book_google(AGENT, json!({"summary": "One"}), 30, 30)
        .await;
    let report = connector
        .sync(&user, SyncReason::Changed)
        .await
        .expect("round");
    assert_eq!(report.upserted, 1);
    let link_before = connector.connection(&user).await.delta_link;
    connector.bus_events().await;

    connector
        .google_control(
            Method::POST,
            "/sim/sync-tokens/expire",
            json!({"email": AGENT}),
        )
        .await;
    let second = connector
        .book_google(AGENT, json!({"summary": "Two"}), 90, 30)
        .await;
    let report = connector
        .sync(&user, SyncReason::Changed)
        .await
        .expect("410 is not a failure");
    assert!(report.full, "{report:?}");
    assert_eq!((report.upserted, report.unchanged), (1, 1), "{report:?}");
    let events = connector.bus_events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1["calendarEventId"], second["id"]);
    assert_ne!(first["id"], second["id"]);
    let link_after = connector.connection(&user).await.delta_link;
    assert!(link_after.is_some() && link_after != link_before);
}

#[tokio::test]
async fn recurring_meetings_arrive_as_occurrences_over_several_pages() {
    let connector =
        Connector::start_with(graph_sim::Seed::default(), SyncSettings::default(), 2).await;
    let user = connector.connect_google(AGENT).await;
    let tomorrow = (Utc::now() + chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(10, 0, 0)
        .expect("time")
        .and_utc();
    let series = connector
        .google_control(
            Method::POST,
            &format!("/sim/calendars/{AGENT}/events"),
            json!({
                "summary": "Stand-up",
                "start": rfc3339(tomorrow),
                "end": rfc3339(tomorrow + chrono::Duration::minutes(15)),
                "recurrence": {"freq": "DAILY", "count": 4}
            }),
        )
        .await;
    let report = connector
        .sync(&user, SyncReason::Upkeep)
        .await
        .expect("round");
    assert_eq!(report.upserted, 4, "{report:?}");
    assert!(report.pages >= 2, "{report:?}");
    let events = connector.bus_events().await;
    let series_id = series["id"].as_str().expect("id");
    let occurrence = |day: i64| {
        format!(
            "{series_id}_{}",
            (tomorrow + chrono::Duration::days(day)).format("%Y%m%dT%H%M%SZ")
        )
    };
    let mut ids: Vec<String> = events
        .iter()
        .map(|(_, d)| d["calendarEventId"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, (0..4).map(occurrence).collect::<Vec<_>>());

    // One occurrence moved, another cancelled: only those two change.
    let moved = tomorrow + chrono::Duration::days(1) + chrono::Duration::hours(2);
    connector
        .google_control(
            Method::PATCH,
            &format!("/sim/calendars/{AGENT}/events/{}", occurrence(1)),
            json!({"start": rfc3339(moved), "end": rfc3339(moved + chrono::Duration::minutes(15))}),
        )
        .await;
    connector
        .google_control(
            Method::POST,
            &format!("/sim/calendars/{AGENT}/events/{}/cancel", occurrence(2)),
            Value::Null,
        )
        .await;
    let report = connector
        .sync(&user, SyncReason::Changed)
        .await
        .expect("round");
    assert_eq!(
        (report.upserted, report.deleted, report.full),
        (1, 1, false)
    );
    let events = connector.bus_events().await;
    let upserted = events
        .iter()
        .find(|(kind, _)| kind == "Calendar Event Upserted")
        .expect("moved");
    assert_eq!(upserted.1["calendarEventId"], occurrence(1).as_str());
    assert_eq!(upserted.1["start"], rfc3339(moved).as_str());
    let deleted = events
        .iter()
        .find(|(kind, _)| kind == "Calendar Event Deleted")
        .expect("cancelled");
    assert_eq!(deleted.1["calendarEventId"], occurrence(2).as_str());
}

#[tokio::test]
async fn two_workers_on_one_google_agent_run_one_round_each_and_never_regress_the_sync_token() {
    let connector = Connector::start().await;
    let (user, _) = connector.watched_agent(AGENT).await;
    connector
        .book_google(AGENT, json!({"summary": "Raced"}), 30, 30)
        .await;
    // The first worker's events.list is held, so the second finds the lease taken.
    connector
        .google_control(
            Method::POST,
            "/sim/faults",
            json!({"pathContains": "/events", "method": "GET", "delayMs": 1500, "count": 1}),
        )
        .await;
    let (first, second) = tokio::join!(connector.sync(&user, SyncReason::Changed), async {
        // The signal: the first worker's lease is stored.
        while connector.connection(&user).await.lease.is_none() {
            tokio::task::yield_now().await;
        }
        connector.sync(&user, SyncReason::Changed).await
    });
    let (first, second) = (first.expect("first"), second.expect("second"));
    let mut outcomes = [first.outcome, second.outcome];
    outcomes.sort_unstable();
    assert_eq!(outcomes, ["handed to the running worker", "synced"]);
    assert_eq!(
        first.rounds + second.rounds,
        2,
        "the holder ran the asked-for round"
    );
    let connection = connector.connection(&user).await;
    assert!(connection.lease.is_none() && !connection.pending);
    let upserted = connector
        .bus_events()
        .await
        .into_iter()
        .filter(|(kind, _)| kind == "Calendar Event Upserted")
        .count();
    assert_eq!(upserted, 1, "the event is told once");

    // A writer holding an older version cannot put its sync token over the newer one.
    let mut stale = connection.clone();
    stale.version -= 1;
    stale.delta_link = Some(format!(
        "{}/calendar/v3/calendars/{AGENT}/events?syncToken=old",
        connector.google.base_url()
    ));
    assert!(matches!(
        connector.connections.put(&stale).await,
        Err(presence_autopilot::ports::StoreError::Conflict(_))
    ));
    assert_eq!(
        connector.connection(&user).await.delta_link,
        connection.delta_link
    );
}

#[tokio::test]
async fn concurrent_calls_for_one_agent_share_one_token_request() {
    let connector = Connector::start().await;
    let google = connector.sync.calendars.google.clone().expect("google");
    let deadline = connector.deadline(10);
    let lookups = (0..8).map(|_| google.calendar_user_id(AGENT, deadline));
    for found in futures::future::join_all(lookups).await {
        assert_eq!(found.expect("lookup").as_deref(), Some(AGENT));
    }
    let tokens = connector
        .google_control(Method::GET, "/sim/tokens", Value::Null)
        .await;
    assert_eq!(tokens["grants"][AGENT], 1, "{tokens}");
    // Another agent is another token (its own `sub`); an unknown one is not matched.
    google
        .calendar_user_id("agent.two@example.com", deadline)
        .await
        .expect("lookup");
    assert_eq!(
        google
            .calendar_user_id("nobody@example.com", deadline)
            .await
            .expect("refused as unmatched"),
        None
    );
    let tokens = connector
        .google_control(Method::GET, "/sim/tokens", Value::Null)
        .await;
    assert_eq!(tokens["grants"]["agent.two@example.com"], 1, "{tokens}");
}

#[tokio::test]
async fn out_of_office_and_declined_events_reach_the_bus_as_such() {
    let connector = Connector::start().await;
    let (user, _) = connector.watched_agent(AGENT).await;
    let away = connector
        .book_google(
            AGENT,
            json!({"summary": "Away", "eventType": "outOfOffice"}),
            120,
            480,
        )
        .await;
    let invite = connector
        .book_google(
            AGENT,
            json!({"summary": "Optional sync", "organizer": "boss@example.com",
                   "attendees": ["boss@example.com"], "responseStatus": "declined"}),
            60,
            30,
        )
        .await;
    let report = connector
        .sync(&user, SyncReason::Changed)
        .await
        .expect("round");
    assert_eq!(report.upserted, 2, "{report:?}");
    let events = connector.bus_events().await;
    let detail = |id: &Value| {
        events
            .iter()
            .find(|(_, d)| &d["calendarEventId"] == id)
            .map(|(_, d)| d.clone())
            .expect("on the bus")
    };
    assert_eq!(detail(&away["id"])["showAs"], "oof");
    let declined = detail(&invite["id"]);
    assert_eq!(declined["responseStatus"], "declined");
    assert_eq!(declined["kind"], "meeting");
}

#[tokio::test]
async fn a_channel_is_replaced_before_it_expires_and_the_old_one_stopped() {
    let connector = Connector::start().await;
    let (user, old) = connector.watched_agent(AGENT).await;
    // As if six of its seven days had passed: a third of its life is no longer left.
    let mut connection = connector.connection(&user).await;
    let now = Utc::now();
    if let Some(subscription) = connection.subscription.as_mut() {
        subscription.created_at = now - chrono::Duration::days(6);
        subscription.expires_at = now + chrono::Duration::days(1);
    }
    connector.connections.put(&connection).await.expect("aged");
    let report = connector
        .sync(&user, SyncReason::Upkeep)
        .await
        .expect("round");
    assert_eq!(report.subscription, Some("replaced"));
    let channels = connector.channels().await;
    let old_now = channels
        .iter()
        .find(|c| c["id"] == old["id"])
        .expect("old channel");
    assert_eq!(old_now["stopped"], true, "the old channel is stopped");
    let live: Vec<&Value> = channels.iter().filter(|c| c["stopped"] == false).collect();
    assert_eq!(live.len(), 1);
    let stored = connector
        .connection(&user)
        .await
        .subscription
        .expect("stored");
    assert_eq!(stored.id, live[0]["id"].as_str().expect("id"));
    assert_eq!(
        stored.resource_id.as_deref(),
        live[0]["resourceId"].as_str()
    );
    assert!(stored.expires_at > now + chrono::Duration::days(2));

    // A push on the replaced channel (even with its own right token) is stale now.
    let stale = exists(
        old["id"].as_str().expect("id"),
        old["token"].as_str().expect("token"),
    );
    let handled = connector
        .notify
        .handle(&EndpointRequest {
            method: "POST".to_owned(),
            path: "/google/notify".to_owned(),
            raw_query: String::new(),
            headers: stale
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
                .collect(),
            body: Vec::new(),
        })
        .await
        .expect("handled");
    assert_eq!((handled.report.unknown, handled.report.enqueued), (1, 0));
}

#[tokio::test]
async fn rate_limits_are_waited_out_within_the_deadline_else_back_to_the_queue() {
    let connector = Connector::start().await;
    let user = connector.connect_google(AGENT).await;
    let clock = ManualClock::starting_at(Utc::now());
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let sync = SyncService {
        calendars: CalendarApis {
            microsoft: None,
            google: Some(Arc::new(google_client(
                &connector.google,
                &connector.endpoint,
                50,
                shared.clone(),
            ))),
        },
        connections: connector.connections.clone(),
        bus: connector.sync.bus.clone(),
        key: connector.sync.key.clone(),
        clock: shared.clone(),
        settings: SyncSettings::default(),
    };
    connector
        .google_control(
            Method::POST,
            "/sim/faults",
            json!({"pathContains": "/events", "status": 403, "reason": "rateLimitExceeded", "count": 2}),
        )
        .await;
    let request = presence_autopilot::calendar::SyncRequest {
        user_id: user.clone(),
        reason: SyncReason::Resync,
    };
    sync.sync(
        &request,
        Deadline::after(shared.as_ref(), Duration::from_secs(60)),
    )
    .await
    .expect("waited out");
    let waits = clock.sleeps();
    assert_eq!(waits.len(), 2, "{waits:?}");
    assert!(
        waits[0] >= Duration::from_secs(1) && waits[1] >= Duration::from_secs(2),
        "{waits:?}"
    );

    connector
        .google_control(
            Method::POST,
            "/sim/faults",
            json!({"pathContains": "/events", "status": 429, "reason": "rateLimitExceeded", "count": 10}),
        )
        .await;
    let error = sync
        .sync(
            &request,
            Deadline::after(shared.as_ref(), Duration::from_secs(5)),
        )
        .await
        .expect_err("does not fit in 5 s");
    assert!(
        matches!(error, SyncError::Calendar(CalendarError::Throttled { .. })),
        "{error}"
    );
    assert!(error.is_retryable());
    let connection = connector.connection(&user).await;
    assert!(connection.lease.is_none());
    assert!(
        connection
            .last_error
            .expect("recorded")
            .contains("throttled")
    );
}
