//! One agent's calendar sync on fakes: a calendar service with delta semantics, the
//! connections, the bus, a manual clock.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use super::*;
use crate::calendar::CalendarChange;
use crate::clock::ManualClock;
use crate::events::EventError;
use crate::fakes::calendar::{FakeBus, FakeCalendar, FakeConnections, meeting};
use crate::fakes::world::{ADA, ada};
use crate::ports::CalendarApis;

struct Sync {
    calendar: FakeCalendar,
    connections: FakeConnections,
    bus: FakeBus,
    clock: ManualClock,
    service: SyncService,
}

fn sync_on_fakes(page_size: usize) -> Sync {
    let start = DateTime::parse_from_rfc3339("2030-01-14T09:00:00Z").expect("valid");
    let clock = ManualClock::starting_at(start.to_utc());
    let calendar = FakeCalendar::new(page_size);
    let connections = FakeConnections::default();
    let bus = FakeBus::default();
    let key = ClientStateKey::new(SecretString::from("unit-client-state-key-0123456789abcdef"))
        .expect("key");
    let service = SyncService {
        calendars: CalendarApis {
            microsoft: Some(Arc::new(calendar.clone())),
            google: None,
        },
        connections: Arc::new(connections.clone()),
        bus: Arc::new(bus.clone()),
        key,
        clock: Arc::new(clock.clone()),
        // Subjects on the bus, as with a policy whose messages show them (the default keeps
        // them in the connector: `subjects_stay_in_the_connector_unless_a_message_shows_them`).
        settings: SyncSettings {
            subjects: true,
            ..SyncSettings::default()
        },
    };
    Sync {
        calendar,
        connections,
        bus,
        clock,
        service,
    }
}

/// A meeting of Ada's, `from`..`to` hours after 09:00 UTC on 2030-01-14.
fn event(id: &str, from: i64, to: i64, private: bool, version: &str) -> CalendarChange {
    let nine = DateTime::parse_from_rfc3339("2030-01-14T09:00:00Z")
        .expect("valid")
        .to_utc();
    let hours = |n: i64| nine + chrono::Duration::hours(n);
    let mut change = meeting(id, "Quarterly planning", hours(from), hours(to));
    change.private = private;
    change.version = Some(version.to_owned());
    change
}

impl Sync {
    async fn connect(&self) {
        let connection = Connection::new(ada(), "ada@example.com", "graph-ada");
        self.connections.put(&connection).await.expect("connected");
    }

    async fn sync(&self, reason: SyncReason) -> SyncReport {
        let request = SyncRequest {
            user_id: ada(),
            reason,
        };
        let deadline = Deadline::after(&self.clock, Duration::from_secs(60));
        self.service.sync(&request, deadline).await.expect("synced")
    }

    /// What reached the bus since last asked, as (detail-type, event id, subject).
    fn told(&self, since: usize) -> Vec<(&'static str, String, Option<String>)> {
        self.bus.published()[since..]
            .iter()
            .map(|entry| {
                (
                    entry.detail_type,
                    entry.detail["calendarEventId"]
                        .as_str()
                        .unwrap_or("?")
                        .to_owned(),
                    entry.detail["subject"].as_str().map(str::to_owned),
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn a_first_round_tells_every_event_then_only_what_changed() {
    let s = sync_on_fakes(2);
    s.connect().await;
    s.calendar.put_event(event("e-1", 1, 2, false, "v1"));
    s.calendar.put_event(event("e-2", 3, 4, true, "v1"));
    s.calendar.put_event(event("e-3", 5, 6, false, "v1"));

    let first = s.sync(SyncReason::Upkeep).await;

    assert!(
        first.full,
        "a connection without a link starts with the window: {first:?}"
    );
    assert_eq!((first.upserted, first.pages), (3, 2), "{first:?}");
    let upserted = "Calendar Event Upserted";
    let subject = Some("Quarterly planning".to_owned());
    assert_eq!(
        s.told(0),
        [
            (upserted, "e-1".to_owned(), subject.clone()),
            (upserted, "e-2".to_owned(), None),
            (upserted, "e-3".to_owned(), subject.clone())
        ],
        "a private event reaches the bus without its subject"
    );
    let detail = &s.bus.published()[0].detail;
    assert_eq!(detail["userId"], ADA);
    assert!(
        detail.get("body").is_none(),
        "only the fields the planner reads"
    );
    assert_eq!(
        s.service
            .connections
            .mirror(&ada())
            .await
            .expect("mirror")
            .len(),
        3
    );

    // A change notification: the delta link answers only what changed since.
    s.calendar.put_event(event("e-1", 1, 3, false, "v2"));
    s.calendar.put_event(event("e-3", 5, 6, false, "v1"));
    s.calendar.remove_event("e-2");
    let second = s.sync(SyncReason::Changed).await;

    assert!(!second.full, "{second:?}");
    assert_eq!(
        (second.upserted, second.deleted, second.unchanged),
        (1, 1, 1),
        "{second:?}"
    );
    assert_eq!(
        s.told(3),
        [
            (upserted, "e-1".to_owned(), subject),
            ("Calendar Event Deleted", "e-2".to_owned(), None)
        ]
    );
}

#[tokio::test]
async fn an_expired_delta_link_starts_a_new_window_and_throttling_waits_its_retry_after() {
    let s = sync_on_fakes(10);
    s.connect().await;
    s.calendar.put_event(event("e-1", 1, 2, false, "v1"));
    s.sync(SyncReason::Upkeep).await;
    s.calendar.fail_next(CalendarError::Throttled {
        operation: "delta",
        retry_after: Duration::from_secs(7),
    });
    s.calendar
        .fail_next(CalendarError::SyncStateGone { operation: "delta" });

    let report = s.sync(SyncReason::Changed).await;

    assert!(
        report.full,
        "a gone link falls back to a full round: {report:?}"
    );
    assert_eq!(report.unchanged, 1, "the known event is not told again");
    assert_eq!(
        s.clock.sleeps(),
        [Duration::from_secs(7)],
        "waited exactly Retry-After"
    );
}

#[tokio::test]
async fn a_failed_publish_commits_no_link_so_the_next_round_tells_it_again() {
    let s = sync_on_fakes(10);
    s.connect().await;
    s.calendar.put_event(event("e-1", 1, 2, false, "v1"));
    s.bus.fail_next(crate::ports::MessagingError::Throttled {
        operation: "PutEvents",
    });

    let request = SyncRequest {
        user_id: ada(),
        reason: SyncReason::Upkeep,
    };
    let deadline = Deadline::after(&s.clock, Duration::from_secs(60));
    let failed = s.service.sync(&request, deadline).await;
    assert!(failed.is_err(), "{failed:?}");
    let connection = s
        .connections
        .get(&ada())
        .await
        .expect("read")
        .expect("kept");
    assert!(
        connection.delta_link.is_none(),
        "no link moved past what the bus never got"
    );
    assert!(connection.lease.is_none(), "the lease is given back");

    s.sync(SyncReason::Upkeep).await;
    assert_eq!(s.told(0).len(), 1, "told on the next round");
}

#[tokio::test]
async fn an_event_the_adapter_cannot_read_reaches_the_planner_as_a_refusal_naming_the_field() {
    let s = sync_on_fakes(10);
    s.connect().await;
    s.calendar.put_unreadable(
        "e-odd",
        EventError {
            field: "detail.start.timeZone".to_owned(),
            reason: "unknown time zone \"Atlantis\"".to_owned(),
        },
    );

    s.sync(SyncReason::Upkeep).await;

    let published = s.bus.published();
    assert_eq!(published.len(), 1);
    let event = serde_json::json!({
        "id": "from-the-bus",
        "detail-type": published[0].detail_type,
        "detail": published[0].detail,
    });
    let refusal = crate::events::parse_value(event).expect_err("refused");
    assert_eq!(refusal.field, "detail.start.timeZone");
    assert!(
        s.service
            .connections
            .mirror(&ada())
            .await
            .expect("mirror")
            .is_empty()
    );
}

#[tokio::test]
async fn subjects_stay_in_the_connector_unless_a_message_shows_them() {
    let mut s = sync_on_fakes(10);
    s.service.settings.subjects = false;
    s.connect().await;
    s.calendar.put_event(event("e-1", 1, 2, false, "v1"));

    s.sync(SyncReason::Upkeep).await;

    let told = s.told(0);
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].2, None, "the subject did not leave the connector");
    let published = serde_json::to_string(&s.bus.published()[0].detail).expect("json");
    assert!(!published.contains("Quarterly planning"), "{published}");
}
