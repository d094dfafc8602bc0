//! The Microsoft 365 connector end to end on loopback: Graph simulator ⇄ notification endpoint
//! ⇄ sync queue ⇄ sync worker ⇄ bus, on the local AWS stand-in.

use std::time::Duration;

use graph_sim::seed::{AGENT1, AGENT2, AGENT3, AGENT4, AGENT5, OUTSIDER};
use presence_autopilot::calendar::{CalendarError, SyncReason};
use presence_autopilot::events::{self, CALENDAR_EVENT_DELETED, CALENDAR_EVENT_UPSERTED};
use presence_autopilot::ports::ConnectionStore;
use presence_autopilot::service::calendar_notify::EndpointRequest;
use presence_autopilot::service::calendar_sync::{SyncError, SyncSettings};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::connector::Connector;

fn ids_of(events: &[(String, Value)], detail_type: &str) -> Vec<String> {
    let mut ids: Vec<String> = events
        .iter()
        .filter(|(kind, _)| kind == detail_type)
        .map(|(_, detail)| detail["calendarEventId"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

/// Every bus event must be one the planner accepts.
fn assert_planner_reads(events: &[(String, Value)]) {
    for (detail_type, detail) in events {
        let envelope = json!({"id": "e", "detail-type": detail_type, "detail": detail});
        events::parse_value(envelope).expect("the planner reads what the connector sends");
    }
}

#[tokio::test]
async fn handshake_answers_the_decoded_token_as_plain_text() {
    let connector = Connector::start().await;
    let token = "Validation: <script>alert(1)</script> & 100% + more";
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("validationToken", token)
        .finish();
    for path in ["/graph/notify", "/graph/lifecycle"] {
        let (status, content_type, body) = connector.post(&format!("{path}?{query}"), "").await;
        assert_eq!(status, 200);
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        assert_eq!(body, token);
    }
    // Graph's own handshake, with that token, on creating the subscription.
    connector
        .control(
            Method::POST,
            "/sim/validation-token",
            json!({"token": token}),
        )
        .await;
    let user = connector.connect(AGENT1).await;
    let report = connector
        .sync(&user, SyncReason::Upkeep)
        .await
        .expect("sync");
    assert_eq!(report.subscription, Some("created"));
    let connection = connector.connection(&user).await;
    assert!(connection.subscription.is_some() && connection.lease.is_none());
    let validations = connector
        .control(Method::GET, "/sim/deliveries", Value::Null)
        .await;
    let passed = validations
        .as_array()
        .expect("deliveries")
        .iter()
        .filter(|d| d["kind"] == "validation" && d["status"] == 200)
        .count();
    assert_eq!(
        passed, 2,
        "notification and lifecycle URLs validated: {validations}"
    );
}

#[tokio::test]
async fn an_oversized_or_malformed_body_is_refused_without_work() {
    let connector = Connector::start().await;
    let (status, _, _) = connector.post("/graph/notify", "not json").await;
    assert_eq!(status, 400);
    let huge = format!("{{\"value\":[\"{}\"]}}", "x".repeat(300 * 1024));
    let (status, _, _) = connector.post("/graph/notify", &huge).await;
    assert_eq!(status, 413);
    let (status, _, _) = connector.post("/elsewhere", "{}").await;
    assert_eq!(status, 404);
    assert!(connector.queued_requests(Duration::ZERO).await.is_empty());
}

/// A subject no test or log line would say by chance: planted, then searched for.
const PLANTED: &str = "Planted-7f3a9c salary review";

#[tokio::test]
async fn a_calendar_change_reaches_the_bus_through_notification_and_delta() {
    let logs = crate::support::dispatch::LogCapture::global();
    let connector = Connector::start().await;
    let user = connector.connect(AGENT2).await;
    connector
        .sync(&user, SyncReason::Upkeep)
        .await
        .expect("first sync");
    assert!(
        connector.bus_events().await.is_empty(),
        "an empty calendar says nothing"
    );
    connector
        .control(Method::DELETE, "/sim/deliveries", Value::Null)
        .await;

    let event_id = connector.book(AGENT2, PLANTED, 10, 30).await;

    let deliveries = connector.deliveries(1).await;
    assert_eq!(deliveries[0]["kind"], "notification");
    assert_eq!(deliveries[0]["status"], 202, "{deliveries:?}");
    let queued = connector.queued_requests(Duration::from_secs(1)).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(
        (&queued[0].user_id, queued[0].reason),
        (&user, SyncReason::Changed)
    );
    let report = connector
        .sync(&user, SyncReason::Changed)
        .await
        .expect("sync");
    assert_eq!((report.upserted, report.full), (1, false));
    let events = connector.bus_events().await;
    assert_eq!(ids_of(&events, CALENDAR_EVENT_UPSERTED), vec![event_id]);
    assert_eq!(events[0].1["userId"], user.as_str());
    assert_planner_reads(&events);
    // The default policy's messages show no subject: it never leaves the connector.
    assert!(events[0].1.get("subject").is_none(), "{:?}", events[0]);
    let on_the_bus = serde_json::to_string(&events).expect("json");
    assert!(!on_the_bus.contains(PLANTED), "the bus: {on_the_bus}");
    let stored = scan(&connector.table).await;
    assert!(
        !stored.is_empty(),
        "the connection and its mirror are stored"
    );
    assert!(!stored.contains(PLANTED), "the table: {stored}");
    assert!(!logs.text().contains(PLANTED), "the logs");

    // The same state again tells the bus nothing new.
    let again = connector
        .sync(&user, SyncReason::Changed)
        .await
        .expect("sync");
    assert_eq!(again.upserted, 0);
    assert!(connector.bus_events().await.is_empty());
}

#[tokio::test]
async fn forged_and_unknown_notifications_are_counted_and_not_acted_on() {
    let connector = Connector::start().await;
    let user = connector.connect(AGENT3).await;
    connector
        .sync(&user, SyncReason::Upkeep)
        .await
        .expect("sync");
    let subscription = connector
        .connection(&user)
        .await
        .subscription
        .expect("subscribed");
    let body = json!({"value": [
        {"subscriptionId": subscription.id, "clientState": "forged", "changeType": "updated"},
        {"subscriptionId": subscription.id, "changeType": "updated"},
        {"subscriptionId": "00000000-0000-0000-0000-000000000000", "clientState": "x", "changeType": "updated"},
        {"no": "subscription"},
    ]});
    let request = EndpointRequest {
        method: "POST".to_owned(),
        path: "/graph/notify".to_owned(),
        raw_query: String::new(),
        headers: Vec::new(),
        body: body.to_string().into_bytes(),
    };
    let handled = connector.notify.handle(&request).await.expect("handled");
    assert_eq!(handled.response.status, 202);
    let report = handled.report;
    assert_eq!((report.forged, report.unknown, report.accepted), (2, 2, 0));
    let (status, _, _) = connector.post("/graph/notify", &body.to_string()).await;
    assert_eq!(status, 202, "answered so Graph does not retry forgeries");
    assert!(connector.queued_requests(Duration::ZERO).await.is_empty());
}

#[tokio::test]
async fn lifecycle_events_renew_recreate_and_resync() {
    let connector = Connector::start().await;
    let user = connector.connect(AGENT4).await;
    connector
        .sync(&user, SyncReason::Upkeep)
        .await
        .expect("sync");
    let first = connector
        .connection(&user)
        .await
        .subscription
        .expect("subscribed");

    for (event, reason) in [
        ("reauthorizationRequired", SyncReason::Reauthorize),
        ("missed", SyncReason::Resync),
        ("subscriptionRemoved", SyncReason::Recreate),
    ] {
        connector
            .control(Method::DELETE, "/sim/deliveries", Value::Null)
            .await;
        connector
            .control(
                Method::POST,
                &format!("/sim/subscriptions/{}/lifecycle", first.id),
                json!({"event": event}),
            )
            .await;
        let delivered = connector.deliveries(1).await;
        assert_eq!(delivered[0]["kind"], "lifecycle");
        assert_eq!(delivered[0]["status"], 202);
        let queued = connector.queued_requests(Duration::from_secs(1)).await;
        assert_eq!(
            queued.iter().map(|r| r.reason).collect::<Vec<_>>(),
            vec![reason],
            "{event}"
        );
        let report = connector.sync(&user, reason).await.expect("sync");
        match reason {
            SyncReason::Reauthorize => assert_eq!(report.subscription, Some("renewed")),
            SyncReason::Resync => assert!(report.full),
            _ => assert_eq!((report.subscription, report.full), (Some("created"), true)),
        }
    }
    let last = connector
        .connection(&user)
        .await
        .subscription
        .expect("subscribed");
    assert_ne!(last.id, first.id, "a removed subscription is replaced");
}

#[tokio::test]
async fn a_busy_agents_subscription_is_renewed_on_their_own_notifications() {
    let connector = Connector::start().await;
    let user = connector.connect(AGENT3).await;
    connector
        .sync(&user, SyncReason::Upkeep)
        .await
        .expect("sync");
    // Two of its three days gone: due for renewal, whatever brings the worker.
    let mut connection = connector.connection(&user).await;
    let subscription = connection.subscription.as_mut().expect("subscribed");
    subscription.created_at = chrono::Utc::now() - chrono::Duration::days(2);
    subscription.expires_at = chrono::Utc::now() + chrono::Duration::hours(20);
    connector.connections.put(&connection).await.expect("aged");
    let report = connector
        .sync(&user, SyncReason::Changed)
        .await
        .expect("sync");
    assert_eq!(report.subscription, Some("renewed"));
    let renewed = connector
        .connection(&user)
        .await
        .subscription
        .expect("subscribed");
    assert!(
        renewed.expires_at > chrono::Utc::now() + chrono::Duration::days(2),
        "{renewed:?}"
    );
}

#[tokio::test]
async fn delta_pages_and_a_full_resync_after_invalid_delta_state() {
    let connector =
        Connector::start_with(graph_sim::Seed::default(), SyncSettings::default(), 2).await;
    let user = connector.connect(AGENT5).await;
    let mut booked = Vec::new();
    for n in 0..5 {
        booked.push(
            connector
                .book(AGENT5, &format!("m{n}"), 60 + n * 60, 30)
                .await,
        );
    }
    let report = connector
        .sync(&user, SyncReason::Upkeep)
        .await
        .expect("sync");
    assert!(report.pages >= 3, "5 events at 2 a page: {report:?}");
    assert_eq!(report.upserted, 5);
    connector.bus_events().await;

    connector
        .control(
            Method::POST,
            &format!("/sim/users/{AGENT5}/delta/expire"),
            Value::Null,
        )
        .await;
    let gone = connector.book(AGENT5, "to be deleted", 600, 30).await;
    let new = connector.book(AGENT5, "new", 700, 30).await;
    connector
        .control(
            Method::DELETE,
            &format!("/sim/users/{AGENT5}/events/{gone}"),
            Value::Null,
        )
        .await;
    let report = connector
        .sync(&user, SyncReason::Changed)
        .await
        .expect("sync");
    assert!(report.full, "410 → a full round: {report:?}");
    assert_eq!((report.upserted, report.unchanged), (1, 5), "{report:?}");
    let events = connector.bus_events().await;
    assert_eq!(ids_of(&events, CALENDAR_EVENT_UPSERTED), vec![new]);
    assert!(
        ids_of(&events, CALENDAR_EVENT_DELETED).is_empty(),
        "never told, never untold"
    );
}

#[tokio::test]
async fn moved_deleted_and_recurring_exceptions_change_only_their_occurrence() {
    let connector = Connector::start().await;
    let user = connector.connect(AGENT1).await;
    let series = connector
        .control(
            Method::POST,
            &format!("/sim/users/{AGENT1}/series"),
            json!({"subject": "Daily", "start": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
                   "end": (chrono::Utc::now() + chrono::Duration::minutes(90)).to_rfc3339(),
                   "count": 3, "interval_days": 1}),
        )
        .await;
    let occurrences: Vec<String> = series["occurrences"]
        .as_array()
        .expect("occurrences")
        .iter()
        .map(|o| o["id"].as_str().expect("id").to_owned())
        .collect();
    let single = connector.book(AGENT1, "One-off", 30, 30).await;
    let report = connector
        .sync(&user, SyncReason::Upkeep)
        .await
        .expect("sync");
    assert_eq!(report.upserted, 4);
    connector.bus_events().await;

    let later = chrono::Utc::now() + chrono::Duration::hours(30);
    connector
        .control(
            Method::PATCH,
            &format!("/sim/users/{AGENT1}/events/{}", occurrences[1]),
            json!({"start": later.to_rfc3339(), "end": (later + chrono::Duration::minutes(15)).to_rfc3339()}),
        )
        .await;
    connector
        .control(
            Method::POST,
            &format!("/sim/users/{AGENT1}/events/{}/cancel", occurrences[2]),
            Value::Null,
        )
        .await;
    connector
        .control(
            Method::DELETE,
            &format!("/sim/users/{AGENT1}/events/{single}"),
            Value::Null,
        )
        .await;
    connector
        .sync(&user, SyncReason::Changed)
        .await
        .expect("sync");
    let events = connector.bus_events().await;
    assert_eq!(
        ids_of(&events, CALENDAR_EVENT_UPSERTED),
        vec![occurrences[1].clone()]
    );
    let mut removed = vec![occurrences[2].clone(), single];
    removed.sort();
    assert_eq!(ids_of(&events, CALENDAR_EVENT_DELETED), removed);
    let moved = events
        .iter()
        .find(|(kind, _)| kind == CALENDAR_EVENT_UPSERTED)
        .expect("moved");
    let start = chrono::DateTime::parse_from_rfc3339(moved.1["start"].as_str().expect("start"))
        .expect("rfc3339");
    assert_eq!(start.timestamp(), later.timestamp());
    assert_planner_reads(&events);
}

#[tokio::test]
async fn throttling_waits_retry_after_within_the_deadline_else_goes_back_to_the_queue() {
    let connector = Connector::start().await;
    let user = connector.connect(AGENT2).await;
    connector.book(AGENT2, "m", 30, 30).await;
    connector
        .control(
            Method::POST,
            "/sim/faults",
            json!({"path_contains": "calendarView", "status": 429, "retry_after": 1, "count": 1}),
        )
        .await;
    let report = connector
        .sync(&user, SyncReason::Upkeep)
        .await
        .expect("waited and synced");
    assert_eq!(report.upserted, 1);

    connector
        .control(
            Method::POST,
            "/sim/faults",
            json!({"path_contains": "calendarView", "status": 429, "retry_after": 30, "count": 1}),
        )
        .await;
    let request = presence_autopilot::calendar::SyncRequest {
        user_id: user.clone(),
        reason: SyncReason::Resync,
    };
    let error = connector
        .sync
        .sync(&request, connector.deadline(5))
        .await
        .expect_err("30 s does not fit in 5");
    assert!(
        matches!(error, SyncError::Calendar(CalendarError::Throttled { .. })),
        "{error}"
    );
    assert!(error.is_retryable());
    let connection = connector.connection(&user).await;
    assert!(
        connection.lease.is_none(),
        "the lease is let go for the retry"
    );
    assert!(
        connection
            .last_error
            .expect("recorded")
            .contains("throttled")
    );
}

#[tokio::test]
async fn a_mailbox_outside_the_apps_scope_is_recorded_not_retried() {
    let connector = Connector::start().await;
    let user = connector.connect(OUTSIDER).await;
    let error = connector
        .sync(&user, SyncReason::Upkeep)
        .await
        .expect_err("denied");
    assert!(
        matches!(
            error,
            SyncError::Calendar(CalendarError::AccessDenied { .. })
        ),
        "{error}"
    );
    assert!(!error.is_retryable());
    let last_error = connector
        .connection(&user)
        .await
        .last_error
        .expect("recorded");
    assert!(last_error.contains("ErrorAccessDenied"), "{last_error}");
}

#[tokio::test]
async fn concurrent_workers_on_one_agent_sync_once_each_round_and_never_regress_the_link() {
    let connector = Connector::start().await;
    let user = connector.connect(AGENT3).await;
    connector
        .sync(&user, SyncReason::Upkeep)
        .await
        .expect("baseline");
    connector.book(AGENT3, "m", 30, 30).await;
    // Hold the first delta call long enough for the second worker to arrive.
    connector
        .control(
            Method::POST,
            "/sim/faults",
            json!({"path_contains": "calendarView", "delay_ms": 2000, "count": 1}),
        )
        .await;
    let (first, second) = tokio::join!(connector.sync(&user, SyncReason::Changed), async {
        // The signal: the first worker's lease is stored (its delta call is then held).
        while connector.connection(&user).await.lease.is_none() {
            tokio::task::yield_now().await;
        }
        connector.sync(&user, SyncReason::Changed).await
    });
    let (first, second) = (first.expect("first"), second.expect("second"));
    let mut outcomes = [first.outcome, second.outcome];
    outcomes.sort_unstable();
    assert_eq!(outcomes, ["handed to the running worker", "synced"]);
    let holder = if first.outcome == "synced" {
        first
    } else {
        second
    };
    assert_eq!(
        holder.rounds, 2,
        "the holder ran the round it was asked for"
    );
    let connection = connector.connection(&user).await;
    assert!(connection.lease.is_none() && !connection.pending);
    assert_eq!(
        ids_of(&connector.bus_events().await, CALENDAR_EVENT_UPSERTED).len(),
        1
    );

    // A writer holding an old version can never store its link over a newer one.
    let mut stale = connection.clone();
    stale.version -= 1;
    stale.delta_link = Some("https://graph.microsoft.com/v1.0/old".to_owned());
    let refused = connector.connections.put(&stale).await;
    assert!(
        matches!(
            refused,
            Err(presence_autopilot::ports::StoreError::Conflict(_))
        ),
        "{refused:?}"
    );
}

mod upkeep {
    use std::sync::Arc;

    use genesys_sim::seed::{DEMO_AGENTS, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, ROSTER_GROUP};
    use presence_autopilot::aws::sync_queue::SqsSyncQueue;
    use presence_autopilot::calendar::{Connection, Provider, ProviderRouting, SyncReason};
    use presence_autopilot::clock::SystemClock;
    use presence_autopilot::genesys::GroupRoster;
    use presence_autopilot::model::UserId;
    use presence_autopilot::policy::{DEFAULT_POLICY, Policy};
    use presence_autopilot::ports::ConnectionStore;
    use presence_autopilot::service::calendar_upkeep::UpkeepService;
    use reqwest::Method;
    use serde_json::{Value, json};

    use crate::support::connector::Connector;
    use crate::support::sim::TestSim;

    fn upkeep(
        connector: &Connector,
        genesys: &TestSim,
        opt_out: &str,
        budget: usize,
    ) -> UpkeepService {
        upkeep_routed(
            connector,
            genesys,
            opt_out,
            budget,
            ProviderRouting::default(),
        )
    }

    fn upkeep_routed(
        connector: &Connector,
        genesys: &TestSim,
        opt_out: &str,
        budget: usize,
        routing: ProviderRouting,
    ) -> UpkeepService {
        let (client, _) = genesys.client((DEMO_CLIENT_ID, DEMO_CLIENT_SECRET));
        let policy = DEFAULT_POLICY.replace("opt_out = []", &format!("opt_out = [\"{opt_out}\"]"));
        UpkeepService {
            roster: Arc::new(GroupRoster::new(client, ROSTER_GROUP)),
            calendars: connector.sync.calendars.clone(),
            routing,
            connections: connector.connections.clone(),
            queue: Arc::new(SqsSyncQueue::new(
                connector.sqs.clone(),
                &connector.sync_queue,
            )),
            policy: Arc::new(Policy::from_toml(&policy).expect("policy")),
            clock: Arc::new(SystemClock),
            budget,
        }
    }

    #[tokio::test]
    async fn the_roster_group_connects_members_and_disconnects_leavers() {
        let connector = Connector::start().await;
        let genesys = TestSim::start().await;
        // Microsoft 365 knows the first three demo agents by their e-mail; the fourth opts out.
        for (_, name, email) in &DEMO_AGENTS[..3] {
            connector
                .control(
                    Method::POST,
                    "/sim/users",
                    json!({"user_principal_name": email, "mail": email, "display_name": name}),
                )
                .await;
        }
        let service = upkeep(&connector, &genesys, DEMO_AGENTS[3].2, 100);
        let report = service.run(connector.deadline(20)).await.expect("upkeep");
        assert_eq!(
            (
                report.members,
                report.opted_out,
                report.connected,
                report.unmatched
            ),
            (4, 1, 3, 0),
            "{report:?}"
        );
        let queued = connector
            .queued_requests(std::time::Duration::from_secs(1))
            .await;
        assert_eq!(queued.len(), 3);
        for request in &queued {
            assert_eq!(request.reason, SyncReason::Upkeep);
            connector
                .sync(&request.user_id, request.reason)
                .await
                .expect("sync");
        }
        let leaver = UserId::parse(DEMO_AGENTS[0].0).expect("id");
        let subscription = connector
            .connection(&leaver)
            .await
            .subscription
            .expect("subscribed");

        let stay: Vec<&str> = DEMO_AGENTS[1..].iter().map(|(id, _, _)| *id).collect();
        genesys
            .control(
                Method::PUT,
                &format!("/sim/groups/{ROSTER_GROUP}/members"),
                json!({"memberIds": stay}),
            )
            .await;
        let report = service.run(connector.deadline(20)).await.expect("upkeep");
        assert_eq!(
            (report.disconnected, report.connected),
            (1, 0),
            "{report:?}"
        );
        assert!(
            connector
                .connections
                .get(&leaver)
                .await
                .expect("read")
                .is_none()
        );
        let sim_view = connector
            .control(Method::GET, "/sim/subscriptions", Value::Null)
            .await;
        let still_there = sim_view
            .as_array()
            .expect("subscriptions")
            .iter()
            .any(|s| s["id"] == subscription.id.as_str() && s["expired"] != true);
        assert!(
            !still_there,
            "the leaver's subscription is deleted: {sim_view}"
        );
    }

    #[tokio::test]
    async fn a_workspace_domains_agents_are_connected_to_google_and_their_channel_stopped_on_leaving()
     {
        const GWEN: (&str, &str) = (
            "6f1d2c3b-4a5e-4f60-9a7b-8c9d0e1f2a3b",
            "gwen@workspace.example.org",
        );
        // In the roster, but no such Workspace user: the token endpoint refuses to act as them.
        const HAL: (&str, &str) = (
            "7a2e3d4c-5b6f-4a71-8b8c-9d0e1f2a3b4c",
            "hal@workspace.example.org",
        );
        let connector = Connector::start().await;
        let genesys = TestSim::start().await;
        for (_, name, email) in &DEMO_AGENTS[..3] {
            connector
                .control(
                    Method::POST,
                    "/sim/users",
                    json!({"user_principal_name": email, "mail": email, "display_name": name}),
                )
                .await;
        }
        connector
            .google_control(Method::POST, "/sim/users", json!({"email": GWEN.1}))
            .await;
        for (id, email) in [GWEN, HAL] {
            genesys
                .control(
                    Method::POST,
                    "/sim/users",
                    json!({"id": id, "name": "Workspace Agent", "email": email}),
                )
                .await;
        }
        let mut members: Vec<&str> = DEMO_AGENTS.iter().map(|(id, _, _)| *id).collect();
        members.push(HAL.0);
        members.push(GWEN.0);
        genesys
            .control(
                Method::PUT,
                &format!("/sim/groups/{ROSTER_GROUP}/members"),
                json!({"memberIds": members}),
            )
            .await;
        let routing = ProviderRouting {
            google_domains: vec!["workspace.example.org".to_owned()],
            default: Provider::Microsoft,
        };
        let service = upkeep_routed(&connector, &genesys, DEMO_AGENTS[3].2, 100, routing);
        let report = service.run(connector.deadline(20)).await.expect("upkeep");
        assert_eq!(
            (report.members, report.connected, report.unmatched),
            (6, 4, 1),
            "{report:?}"
        );
        let gwen = UserId::parse(GWEN.0).expect("id");
        let connection = connector.connection(&gwen).await;
        assert_eq!(
            (connection.provider, connection.calendar_user_id.as_str()),
            (Provider::Google, GWEN.1)
        );
        let ada = connector
            .connection(&UserId::parse(DEMO_AGENTS[0].0).expect("id"))
            .await;
        assert_eq!(ada.provider, Provider::Microsoft);
        connector
            .sync(&gwen, SyncReason::Upkeep)
            .await
            .expect("sync");
        let channel = connector
            .connection(&gwen)
            .await
            .subscription
            .expect("watched");
        connector.google_deliveries(1).await;
        connector.queued_requests(std::time::Duration::ZERO).await;

        // Google drops a push (it says some are lost): the next upkeep's safety round finds it.
        connector
            .google_control(Method::POST, "/sim/notifications/drop", json!({"count": 1}))
            .await;
        let start = chrono::Utc::now() + chrono::Duration::hours(1);
        let booked = connector
            .google_control(
                Method::POST,
                &format!("/sim/calendars/{}/events", GWEN.1),
                json!({"summary": "Coaching", "start": start.to_rfc3339(),
                       "end": (start + chrono::Duration::minutes(30)).to_rfc3339()}),
            )
            .await;
        let pushed = connector.google_deliveries(2).await;
        assert_eq!(pushed[1]["dropped"], true, "{pushed:?}");
        assert!(
            connector
                .queued_requests(std::time::Duration::ZERO)
                .await
                .is_empty()
        );
        service.run(connector.deadline(20)).await.expect("upkeep");
        let queued = connector
            .queued_requests(std::time::Duration::from_secs(1))
            .await;
        assert!(
            queued
                .iter()
                .any(|r| r.user_id == gwen && r.reason == SyncReason::Upkeep),
            "{queued:?}"
        );
        let report = connector
            .sync(&gwen, SyncReason::Upkeep)
            .await
            .expect("safety round");
        assert_eq!(report.upserted, 1);
        let recovered = connector.bus_events().await;
        assert!(
            recovered
                .iter()
                .any(|(_, detail)| detail["calendarEventId"] == booked["id"]),
            "{recovered:?}"
        );

        members.pop();
        genesys
            .control(
                Method::PUT,
                &format!("/sim/groups/{ROSTER_GROUP}/members"),
                json!({"memberIds": members}),
            )
            .await;
        let report = service.run(connector.deadline(20)).await.expect("upkeep");
        assert_eq!(report.disconnected, 1, "{report:?}");
        let channels = connector
            .google_control(Method::GET, "/sim/channels", Value::Null)
            .await;
        let stopped = channels
            .as_array()
            .expect("channels")
            .iter()
            .any(|c| c["id"] == channel.id.as_str() && c["stopped"] == true);
        assert!(stopped, "the leaver's channel is stopped: {channels}");
    }

    #[tokio::test]
    async fn five_hundred_agents_upkeep_is_bounded_per_run_oldest_first() {
        let connector = Connector::start().await;
        let genesys = TestSim::start().await;
        let mut ids = Vec::new();
        for n in 0..500 {
            let id = uuid::Uuid::new_v4().to_string();
            genesys
                .control(Method::POST, "/sim/users", json!({"id": id, "name": format!("Agent {n}"), "email": format!("a{n}@example.com")}))
                .await;
            let user = UserId::parse(&id).expect("id");
            let mut connection =
                Connection::new(user, format!("a{n}@example.com"), format!("graph-{n}"));
            connection.last_sync_at = Some(chrono::Utc::now() - chrono::Duration::minutes(n));
            connector
                .connections
                .put(&connection)
                .await
                .expect("connect");
            ids.push(id);
        }
        genesys
            .control(
                Method::PUT,
                &format!("/sim/groups/{ROSTER_GROUP}/members"),
                json!({"memberIds": ids}),
            )
            .await;
        let service = upkeep(&connector, &genesys, "nobody@example.com", 100);
        let report = service.run(connector.deadline(60)).await.expect("upkeep");
        assert_eq!(
            (
                report.members,
                report.connected,
                report.disconnected,
                report.queued
            ),
            (500, 0, 0, 100),
            "{report:?}"
        );
        assert_eq!(
            genesys.count_requests("GET", &format!("/api/v2/groups/{ROSTER_GROUP}/members")),
            5,
            "100 a page"
        );
        let mut queued = Vec::new();
        while queued.len() < 100 {
            let batch = connector
                .queued_requests(std::time::Duration::from_secs(1))
                .await;
            assert!(!batch.is_empty(), "only {} queued", queued.len());
            queued.extend(batch);
        }
        // The oldest-synced hundred: agents 400..500 synced longest ago.
        let oldest: std::collections::HashSet<&str> =
            ids[400..].iter().map(String::as_str).collect();
        assert!(queued.iter().all(|r| oldest.contains(r.user_id.as_str())));
    }
}

/// Every item of `table`, as text.
async fn scan(table: &str) -> String {
    let items = crate::support::moto::dynamodb()
        .scan()
        .table_name(table)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    format!("{items:?}")
}
