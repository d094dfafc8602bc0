//! Contract tests of the ports: the same checks run against a fake here (unit tests) and against
//! the real adapter on the stand-ins (`tests/integration`, `contracts.rs`), so a fake cannot
//! drift from what it stands for. Each exercises the port through its own methods only, and
//! panics naming what broke.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::calendar::{Connection, DeltaCursor, DeltaItem, Subscription, SyncWindow};
use crate::clock::{Clock, Deadline};
use crate::model::SystemPresence;
use crate::model::UserId;
use crate::policy::{DEFAULT_POLICY, Policy};
use crate::ports::{
    BusEntry, CalendarApi, CasOutcome, ConnectionStore, EventBus, MirroredEvent, PlannedSchedule,
    PresenceApi, PresenceCatalog, RoutingStatuses, Schedules, StoreError, UserDirectory,
};
use crate::state::PresenceRef;

fn at(raw: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(raw).expect("valid").to_utc()
}

/// One-time schedules: an upsert creates or moves (one schedule per name), a delete says
/// whether there was one.
pub async fn schedules(schedules: &dyn Schedules, name: &str) {
    let planned = |when: &str| PlannedSchedule {
        name: name.to_owned(),
        at: at(when),
        input: json!({"id": "contract", "detail-type": "Calendar Event Started", "detail": {}})
            .to_string(),
    };
    schedules
        .upsert(&planned("2030-01-14T10:00:00Z"))
        .await
        .expect("created");
    schedules
        .upsert(&planned("2030-01-14T10:30:00Z"))
        .await
        .expect("moved: an upsert of an existing name is not an error");
    assert!(
        schedules.delete(name).await.expect("deleted"),
        "a planned schedule is there to delete"
    );
    assert!(
        !schedules.delete(name).await.expect("answered"),
        "moving made no second schedule, and a deleted one is gone"
    );
    assert!(
        !schedules
            .delete(&format!("{name}-never"))
            .await
            .expect("answered"),
        "an unknown name is no error"
    );
}

/// The bus takes more entries than one `PutEvents` call carries (10); returns what it was
/// given, for the caller to compare with what it observes arriving.
pub async fn event_bus(bus: &dyn EventBus, clock: &dyn Clock) -> Vec<BusEntry> {
    let entries: Vec<BusEntry> = (0..23)
        .map(|n| BusEntry {
            detail_type: "Calendar Event Upserted",
            detail: json!({"calendarEventId": format!("contract-{n}")}),
        })
        .collect();
    let deadline = Deadline::after(clock, Duration::from_secs(30));
    bus.publish(&entries, deadline)
        .await
        .expect("every entry published");
    bus.publish(&[], deadline)
        .await
        .expect("nothing to publish is no error");
    entries
}

fn mirrored(id: &str) -> MirroredEvent {
    MirroredEvent {
        event_id: id.to_owned(),
        fingerprint: format!("{id}-v1"),
        end: at("2030-01-14T11:00:00Z"),
        detail: json!({"calendarEventId": id}),
    }
}

fn is_conflict(result: &Result<impl std::fmt::Debug, StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict(_)))
}

/// Connections: conditional by version, the subscription index in step, the mirror.
pub async fn connection_store(store: &dyn ConnectionStore, user: UserId) {
    assert!(store.get(&user).await.expect("read").is_none(), "fresh");
    let fresh = Connection::new(user.clone(), "contract@example.com", "graph-contract");
    let stored = store.put(&fresh).await.expect("created");
    assert_eq!(stored.version, 1);
    assert!(
        is_conflict(&store.put(&fresh).await),
        "a write on a stale version is refused"
    );

    let mut subscribed = stored.clone();
    subscribed.subscription = Some(Subscription {
        id: format!("sub-{user}"),
        expires_at: at("2030-01-17T10:00:00Z"),
        created_at: at("2030-01-14T10:00:00Z"),
        nonce: "nonce-1".to_owned(),
        resource_id: None,
    });
    let subscribed = store.put(&subscribed).await.expect("subscribed");
    assert_eq!(subscribed.version, 2);
    assert_eq!(
        store.get(&user).await.expect("read"),
        Some(subscribed.clone())
    );
    let sub = format!("sub-{user}");
    let owners = store
        .subscription_owners(&[sub.clone(), "sub-unknown".to_owned()])
        .await
        .expect("owners");
    assert_eq!(owners.len(), 1, "unknown ids are left out: {owners:?}");
    assert_eq!(owners[&sub].user_id, user);
    assert_eq!(owners[&sub].nonce, "nonce-1");
    store.forget_subscription(&sub).await.expect("forgotten");
    assert!(
        store
            .subscription_owners(std::slice::from_ref(&sub))
            .await
            .expect("owners")
            .is_empty(),
        "a forgotten subscription has no owner"
    );

    store
        .update_mirror(&user, &[mirrored("e-1"), mirrored("e-2")], &[])
        .await
        .expect("mirrored");
    store
        .update_mirror(&user, &[], &["e-1".to_owned()])
        .await
        .expect("removed");
    let mirror = store.mirror(&user).await.expect("mirror");
    assert_eq!(mirror.keys().collect::<Vec<_>>(), ["e-2"]);
    assert_eq!(mirror["e-2"], mirrored("e-2"));
    let listed = store.list().await.expect("listed");
    assert!(listed.iter().any(|c| c.user_id == user), "{listed:?}");

    assert!(
        is_conflict(&store.delete(&stored).await),
        "a delete on a stale version is refused"
    );
    store.delete(&subscribed).await.expect("deleted");
    assert!(store.get(&user).await.expect("read").is_none());
    assert!(store.mirror(&user).await.expect("mirror").is_empty());
}

/// How a contract books and deletes events on the calendar behind a `CalendarApi` (the
/// simulator's control surface, or the fake's own methods).
#[async_trait::async_trait]
pub trait CalendarDesk: Send + Sync {
    /// Books a meeting `from`..`to`; returns the service's id of it.
    async fn book(&self, subject: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> String;
    async fn delete(&self, id: &str);
}

/// Every page of a round from `cursor`: the items and the delta link it ends with.
async fn round(
    api: &dyn CalendarApi,
    owner: &UserId,
    mut cursor: DeltaCursor,
    deadline: Deadline,
) -> (Vec<DeltaItem>, String) {
    let mut items = Vec::new();
    for _ in 0..50 {
        let page = api
            .delta_page(owner, &cursor, deadline)
            .await
            .expect("a page");
        items.extend(page.items);
        match (page.next_link, page.delta_link) {
            (Some(next), _) => cursor = DeltaCursor::Link(next),
            (None, Some(delta)) => return (items, delta),
            (None, None) => panic!("a page carries a next or a delta link"),
        }
    }
    panic!("no delta link after 50 pages");
}

fn changed_ids(items: &[DeltaItem]) -> Vec<String> {
    let mut ids: Vec<String> = items
        .iter()
        .filter_map(|item| match item {
            DeltaItem::Changed(change) => Some(change.entry.trigger_id.as_str().to_owned()),
            DeltaItem::Unreadable { .. } | DeltaItem::Removed { .. } => None,
        })
        .collect();
    ids.sort();
    ids
}

/// A calendar's delta rounds: a window round answers every event in it (over several pages), a
/// delta link answers what changed since it was handed out, a deleted event comes back
/// removed; a user nobody has is `None`.
pub async fn calendar_api(
    api: &dyn CalendarApi,
    desk: &dyn CalendarDesk,
    calendar_user_id: &str,
    clock: &dyn Clock,
) {
    let owner = UserId::parse("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f").expect("valid");
    let now = clock.now();
    let deadline = Deadline::after(clock, Duration::from_secs(60));
    let hour = chrono::Duration::hours(1);
    let mut booked = Vec::new();
    for n in 0..3 {
        let from = now + hour * (n + 1);
        booked.push(desk.book(&format!("contract {n}"), from, from + hour).await);
    }
    booked.sort();
    let window = SyncWindow {
        start: now - hour,
        end: now + hour * 24,
        baselined_at: now,
    };
    let cursor = DeltaCursor::Window {
        calendar_user_id: calendar_user_id.to_owned(),
        window,
    };
    let (items, link) = round(api, &owner, cursor, deadline).await;
    assert_eq!(
        changed_ids(&items),
        booked,
        "the window round answers every event"
    );
    for item in &items {
        let DeltaItem::Changed(change) = item else {
            panic!("{item:?}");
        };
        assert_eq!(
            change.entry.user.user_id.as_ref(),
            Some(&owner),
            "read as the owner's"
        );
        assert!(
            change
                .entry
                .subject
                .as_deref()
                .is_some_and(|s| s.starts_with("contract"))
        );
    }

    let (quiet, link) = round(api, &owner, DeltaCursor::Link(link), deadline).await;
    assert!(quiet.is_empty(), "nothing changed: {quiet:?}");

    let later = now + hour * 5;
    let added = desk.book("contract added", later, later + hour).await;
    desk.delete(&booked[0]).await;
    let (changes, _) = round(api, &owner, DeltaCursor::Link(link), deadline).await;
    assert_eq!(changed_ids(&changes), [added], "only what changed");
    assert!(
        changes
            .iter()
            .any(|item| matches!(item, DeltaItem::Removed { id } if *id == booked[0])),
        "a deleted event comes back removed: {changes:?}"
    );
    let nobody = api
        .calendar_user_id("nobody-at-all@example.com", deadline)
        .await
        .expect("answered");
    assert_eq!(nobody, None);
}

/// The Genesys platform, by concern, as one client serves it all.
#[derive(Debug)]
pub struct Platform<'a> {
    pub presence: &'a dyn PresenceApi,
    pub routing: &'a dyn RoutingStatuses,
    pub users: &'a dyn UserDirectory,
    pub catalog: &'a dyn PresenceCatalog,
}

/// The platform: the default policy resolves against the org's definitions; users are found by
/// e-mail; a compare-and-set writes only on the tag it was given, and a stale tag is refused
/// with what is there now; bulk reads and writes leave unknown users out.
pub async fn platform(platform: &Platform<'_>, user: &UserId, email: &str, clock: &dyn Clock) {
    let deadline = Deadline::after(clock, Duration::from_secs(30));
    let definitions = platform
        .catalog
        .presence_definitions(deadline)
        .await
        .expect("definitions");
    let policy = Policy::from_toml(DEFAULT_POLICY).expect("the default policy");
    let targets = policy
        .resolve(&definitions)
        .expect("the default policy's presences exist");
    let meeting_target = targets.get(&policy.meeting.presence).expect("resolved");
    assert_eq!(meeting_target.system_presence, SystemPresence::Meeting);

    let found = platform.users.user_by_email(email, deadline).await;
    assert_eq!(found.expect("answered").as_ref(), Some(user));
    let nobody = platform
        .users
        .user_by_email("nobody-at-all@example.com", deadline)
        .await;
    assert_eq!(nobody.expect("answered"), None);

    let before = platform
        .presence
        .presence(user, deadline)
        .await
        .expect("read");
    let meeting = PresenceRef {
        definition_id: meeting_target.definition_id.clone(),
        message: "In a meeting (contract)".to_owned(),
    };
    let written = platform
        .presence
        .compare_and_set(user, &before.tag(), &meeting, None, deadline)
        .await
        .expect("written");
    let CasOutcome::Applied { after, .. } = written else {
        panic!("the tag was current: {written:?}");
    };
    assert_eq!(after.definition_id, meeting.definition_id);
    assert_eq!(after.message, meeting.message);
    let stale = platform
        .presence
        .compare_and_set(user, &before.tag(), &meeting, None, deadline)
        .await
        .expect("answered");
    assert!(
        matches!(&stale, CasOutcome::Refused { current } if current.tag() == after.tag()),
        "a stale tag is refused with what is there now: {stale:?}"
    );

    let unknown = UserId::parse("00000000-0000-0000-0000-0000000000ff").expect("valid");
    let both = [user.clone(), unknown.clone()];
    let read = platform
        .presence
        .presences(&both, deadline)
        .await
        .expect("bulk read");
    assert_eq!(read.len(), 1, "unknown users are left out: {read:?}");
    assert_eq!(read[0].1.tag(), after.tag());
    let routing = platform
        .routing
        .routing_statuses(std::slice::from_ref(user), deadline)
        .await
        .expect("routing");
    assert_eq!(routing.len(), 1);
    let back = PresenceRef {
        definition_id: before.definition_id.clone(),
        message: String::new(),
    };
    let restored = platform
        .presence
        .set_presences(&[(user.clone(), back)], deadline)
        .await
        .expect("bulk write");
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0].1.definition_id, before.definition_id);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::fakes::calendar::{FakeBus, FakeCalendar, FakeConnections, FakeSchedules, meeting};

    struct FakeDesk(FakeCalendar, std::sync::atomic::AtomicU32);

    #[async_trait::async_trait]
    impl CalendarDesk for FakeDesk {
        async fn book(&self, subject: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
            let n = self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let id = format!("fake-event-{n}");
            self.0.put_event(meeting(&id, subject, from, to));
            id
        }

        async fn delete(&self, id: &str) {
            self.0.remove_event(id);
        }
    }

    #[tokio::test]
    async fn the_fake_calendar_keeps_the_contract() {
        let fake = FakeCalendar::new(2);
        let desk = FakeDesk(fake.clone(), std::sync::atomic::AtomicU32::new(0));
        let clock = ManualClock::starting_at(at("2030-01-14T09:00:00Z"));
        calendar_api(&fake, &desk, "graph-ada", &clock).await;
        assert!(
            fake.pages_served() >= 4,
            "the window round took several pages"
        );
    }

    #[tokio::test]
    async fn the_fake_platform_keeps_the_contract() {
        use crate::fakes::platform::FakePlatform;
        use crate::model::RoutingStatus;

        let clock = Arc::new(ManualClock::starting_at(at("2030-01-14T09:00:00Z")));
        let fake = FakePlatform::new(clock.clone());
        let ada = UserId::parse("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f").expect("valid");
        fake.add_user(
            &ada,
            SystemPresence::OnQueue,
            RoutingStatus::Idle,
            Some("ada@example.com"),
        );
        let platform_ports = Platform {
            presence: &fake,
            routing: &fake,
            users: &fake,
            catalog: &fake,
        };
        platform(&platform_ports, &ada, "ada@example.com", clock.as_ref()).await;
    }

    #[tokio::test]
    async fn the_fake_schedules_keep_the_contract() {
        let fake = FakeSchedules::default();
        schedules(&fake, "pa-contract-start").await;
        assert!(fake.planned().is_empty());
    }

    #[tokio::test]
    async fn the_fake_bus_keeps_the_contract() {
        let fake = FakeBus::default();
        let clock = Arc::new(ManualClock::starting_at(at("2030-01-14T10:00:00Z")));
        let published = event_bus(&fake, clock.as_ref()).await;
        assert_eq!(fake.published(), published);
    }

    #[tokio::test]
    async fn the_fake_connections_keep_the_contract() {
        let user = UserId::parse("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f").expect("valid");
        connection_store(&FakeConnections::default(), user).await;
    }
}
