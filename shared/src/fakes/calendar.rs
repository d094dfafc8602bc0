//! In-memory fakes of the connector ports (a calendar service, connections, the bus, the sync
//! queue) and of the planner's schedules, with the adapters' conditional semantics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::lock;
use crate::calendar::{
    CalendarChange, CalendarError, Connection, CreatedSubscription, DeltaCursor, DeltaItem,
    DeltaPage, NewSubscription, Subscription, SyncRequest,
};
use crate::clock::Deadline;
use crate::events::{CalendarEntry, EventError, Response, ShowAs, UserRef};
use crate::model::UserId;
use crate::ports::{
    BusEntry, CalendarApi, Conflict, ConnectionStore, EventBus, MessagingError, MirroredEvent,
    PlannedSchedule, Schedules, StoreError, SubscriptionOwner, SyncQueue,
};
use crate::state::{TriggerId, TriggerKind};

#[derive(Debug, Default)]
struct Tables {
    connections: HashMap<UserId, Connection>,
    /// Subscription id → owner (the index `put` adds to and `forget_subscription` removes).
    index: HashMap<String, SubscriptionOwner>,
    mirrors: HashMap<UserId, HashMap<String, MirroredEvent>>,
}

/// Connections, the subscription index and the mirror, as `aws::connections` keeps them.
#[derive(Debug, Clone, Default)]
pub struct FakeConnections {
    tables: Arc<Mutex<Tables>>,
}

impl FakeConnections {
    fn conflict(connection: &Connection) -> StoreError {
        StoreError::Conflict(Conflict {
            user_id: connection.user_id.clone(),
            expected_version: connection.version,
        })
    }
}

#[async_trait]
impl ConnectionStore for FakeConnections {
    async fn get(&self, user: &UserId) -> Result<Option<Connection>, StoreError> {
        Ok(lock(&self.tables).connections.get(user).cloned())
    }

    async fn put(&self, connection: &Connection) -> Result<Connection, StoreError> {
        let mut tables = lock(&self.tables);
        let stored = tables
            .connections
            .get(&connection.user_id)
            .map_or(0, |c| c.version);
        if stored != connection.version {
            return Err(Self::conflict(connection));
        }
        let mut next = connection.clone();
        next.version += 1;
        if let Some(subscription) = &next.subscription {
            let owner = SubscriptionOwner {
                user_id: next.user_id.clone(),
                nonce: subscription.nonce.clone(),
            };
            tables.index.insert(subscription.id.clone(), owner);
        }
        tables
            .connections
            .insert(next.user_id.clone(), next.clone());
        Ok(next)
    }

    async fn subscription_owners(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, SubscriptionOwner>, StoreError> {
        let tables = lock(&self.tables);
        Ok(ids
            .iter()
            .filter_map(|id| Some((id.clone(), tables.index.get(id)?.clone())))
            .collect())
    }

    async fn forget_subscription(&self, id: &str) -> Result<(), StoreError> {
        lock(&self.tables).index.remove(id);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Connection>, StoreError> {
        Ok(lock(&self.tables).connections.values().cloned().collect())
    }

    async fn delete(&self, connection: &Connection) -> Result<(), StoreError> {
        let mut tables = lock(&self.tables);
        let stored = tables
            .connections
            .get(&connection.user_id)
            .map(|c| c.version);
        if stored != Some(connection.version) {
            return Err(Self::conflict(connection));
        }
        tables.connections.remove(&connection.user_id);
        if let Some(subscription) = &connection.subscription {
            tables.index.remove(&subscription.id);
        }
        tables.mirrors.remove(&connection.user_id);
        Ok(())
    }

    async fn mirror(&self, user: &UserId) -> Result<HashMap<String, MirroredEvent>, StoreError> {
        Ok(lock(&self.tables)
            .mirrors
            .get(user)
            .cloned()
            .unwrap_or_default())
    }

    async fn update_mirror(
        &self,
        user: &UserId,
        upserts: &[MirroredEvent],
        removals: &[String],
    ) -> Result<(), StoreError> {
        let mut tables = lock(&self.tables);
        let mirror = tables.mirrors.entry(user.clone()).or_default();
        for event in upserts {
            mirror.insert(event.event_id.clone(), event.clone());
        }
        for id in removals {
            mirror.remove(id);
        }
        Ok(())
    }
}

/// A bus that keeps what was published; `fail_next` makes the next publish fail whole.
#[derive(Debug, Clone, Default)]
pub struct FakeBus {
    published: Arc<Mutex<Vec<BusEntry>>>,
    failures: Arc<Mutex<Vec<MessagingError>>>,
}

impl FakeBus {
    pub fn published(&self) -> Vec<BusEntry> {
        lock(&self.published).clone()
    }

    pub fn fail_next(&self, error: MessagingError) {
        lock(&self.failures).push(error);
    }
}

#[async_trait]
impl EventBus for FakeBus {
    async fn publish(
        &self,
        entries: &[BusEntry],
        _deadline: Deadline,
    ) -> Result<(), MessagingError> {
        let mut failures = lock(&self.failures);
        if !failures.is_empty() {
            return Err(failures.remove(0));
        }
        lock(&self.published).extend_from_slice(entries);
        Ok(())
    }
}

/// A sync queue that keeps what was enqueued.
#[derive(Debug, Clone, Default)]
pub struct FakeSyncQueue {
    enqueued: Arc<Mutex<Vec<SyncRequest>>>,
}

impl FakeSyncQueue {
    pub fn enqueued(&self) -> Vec<SyncRequest> {
        lock(&self.enqueued).clone()
    }
}

#[async_trait]
impl SyncQueue for FakeSyncQueue {
    async fn enqueue(&self, requests: &[SyncRequest]) -> Result<(), MessagingError> {
        lock(&self.enqueued).extend_from_slice(requests);
        Ok(())
    }
}

/// One-time schedules by name, as EventBridge Scheduler keeps them in a group.
#[derive(Debug, Clone, Default)]
pub struct FakeSchedules {
    planned: Arc<Mutex<HashMap<String, PlannedSchedule>>>,
}

impl FakeSchedules {
    /// Every schedule planned and not deleted, by time.
    pub fn planned(&self) -> Vec<PlannedSchedule> {
        let mut planned: Vec<PlannedSchedule> = lock(&self.planned).values().cloned().collect();
        planned.sort_by(|a, b| (a.at, &a.name).cmp(&(b.at, &b.name)));
        planned
    }
}

#[async_trait]
impl Schedules for FakeSchedules {
    async fn upsert(&self, schedule: &PlannedSchedule) -> Result<(), MessagingError> {
        lock(&self.planned).insert(schedule.name.clone(), schedule.clone());
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<bool, MessagingError> {
        Ok(lock(&self.planned).remove(name).is_some())
    }
}

/// A meeting on a fake calendar: busy, accepted, `subject`, `from`..`to` (the version and
/// privacy as a test sets them).
pub fn meeting(id: &str, subject: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> CalendarChange {
    CalendarChange {
        entry: CalendarEntry {
            user: UserRef {
                user_id: None,
                email: None,
            },
            trigger_id: TriggerId::parse(id).expect("a valid id"),
            kind: TriggerKind::Meeting,
            start: from,
            end: to,
            show_as: ShowAs::Busy,
            all_day: false,
            cancelled: false,
            response: Response::Accepted,
            subject: Some(subject.to_owned()),
            zone: None,
            categories: Vec::new(),
            others: None,
            organizer: None,
        },
        version: None,
        private: false,
    }
}

#[derive(Debug, Default)]
struct Calendar {
    /// The events on the calendar now, by id: read, or what reading them broke on.
    events: HashMap<String, Result<CalendarChange, EventError>>,
    /// Changes since the last delta link was handed out.
    changed: Vec<String>,
    removed: Vec<String>,
    links: u64,
    subscriptions: HashMap<String, DateTime<Utc>>,
    users: HashMap<String, String>,
    failures: Vec<CalendarError>,
    pages_served: usize,
}

/// One calendar service in memory with Graph's delta semantics: a window query answers every
/// event; a delta link answers what changed since it was handed out; pages of `page_size`.
#[derive(Debug, Clone)]
pub struct FakeCalendar {
    inner: Arc<Mutex<Calendar>>,
    page_size: usize,
}

impl FakeCalendar {
    pub fn new(page_size: usize) -> Self {
        Self {
            inner: Arc::default(),
            page_size: page_size.max(1),
        }
    }

    /// Adds or changes an event.
    pub fn put_event(&self, change: CalendarChange) {
        let id = change.entry.trigger_id.as_str().to_owned();
        let mut calendar = lock(&self.inner);
        calendar.events.insert(id.clone(), Ok(change));
        calendar.changed.push(id);
    }

    /// Adds an event its adapter cannot read, for the reason given.
    pub fn put_unreadable(&self, id: &str, error: EventError) {
        let mut calendar = lock(&self.inner);
        calendar.events.insert(id.to_owned(), Err(error));
        calendar.changed.push(id.to_owned());
    }

    pub fn remove_event(&self, id: &str) {
        let mut calendar = lock(&self.inner);
        calendar.events.remove(id);
        calendar.removed.push(id.to_owned());
    }

    pub fn add_user(&self, email: &str, calendar_user_id: &str) {
        lock(&self.inner)
            .users
            .insert(email.to_owned(), calendar_user_id.to_owned());
    }

    /// The next call fails with `error` (queued).
    pub fn fail_next(&self, error: CalendarError) {
        lock(&self.inner).failures.push(error);
    }

    pub fn pages_served(&self) -> usize {
        lock(&self.inner).pages_served
    }

    pub fn subscriptions(&self) -> HashMap<String, DateTime<Utc>> {
        lock(&self.inner).subscriptions.clone()
    }

    fn failure(calendar: &mut Calendar) -> Result<(), CalendarError> {
        if calendar.failures.is_empty() {
            Ok(())
        } else {
            Err(calendar.failures.remove(0))
        }
    }
}

/// `fake-delta:<link number>:<offset>` pages through one answer; the last page hands out the
/// next link.
fn page_link(link: u64, offset: usize) -> String {
    format!("fake-delta:{link}:{offset}")
}

#[async_trait]
impl CalendarApi for FakeCalendar {
    async fn delta_page(
        &self,
        owner: &UserId,
        cursor: &DeltaCursor,
        _deadline: Deadline,
    ) -> Result<DeltaPage, CalendarError> {
        let mut calendar = lock(&self.inner);
        Self::failure(&mut calendar)?;
        calendar.pages_served += 1;
        let offset = match cursor {
            DeltaCursor::Window { .. } => {
                calendar.changed = calendar.events.keys().cloned().collect();
                calendar.changed.sort();
                calendar.removed.clear();
                0
            }
            DeltaCursor::Link(link) => {
                let mut parts = link.rsplit(':');
                let offset = parts.next().and_then(|o| o.parse().ok());
                let number = parts.next().and_then(|n| n.parse::<u64>().ok());
                match (number, offset) {
                    (Some(number), Some(offset)) if number == calendar.links => offset,
                    _ => {
                        return Err(CalendarError::SyncStateGone { operation: "delta" });
                    }
                }
            }
        };
        let read = |id: &String| match calendar.events.get(id)?.clone() {
            Ok(mut change) => {
                change.entry.user.user_id = Some(owner.clone());
                Some(DeltaItem::Changed(change))
            }
            Err(error) => Some(DeltaItem::Unreadable {
                id: id.clone(),
                error,
            }),
        };
        let mut items: Vec<DeltaItem> = calendar.changed.iter().filter_map(read).collect();
        items.extend(
            calendar
                .removed
                .iter()
                .map(|id| DeltaItem::Removed { id: id.clone() }),
        );
        let page: Vec<DeltaItem> = items
            .iter()
            .skip(offset)
            .take(self.page_size)
            .cloned()
            .collect();
        let next = offset + page.len();
        if next < items.len() {
            let link = calendar.links;
            return Ok(DeltaPage {
                items: page,
                next_link: Some(page_link(link, next)),
                delta_link: None,
            });
        }
        calendar.links += 1;
        calendar.changed.clear();
        calendar.removed.clear();
        Ok(DeltaPage {
            items: page,
            next_link: None,
            delta_link: Some(page_link(calendar.links, 0)),
        })
    }

    async fn create_subscription(
        &self,
        request: &NewSubscription,
        _deadline: Deadline,
    ) -> Result<CreatedSubscription, CalendarError> {
        let mut calendar = lock(&self.inner);
        Self::failure(&mut calendar)?;
        let id = format!("fake-sub-{}", calendar.subscriptions.len() + 1);
        calendar
            .subscriptions
            .insert(id.clone(), request.expires_at);
        Ok(CreatedSubscription {
            id,
            expires_at: request.expires_at,
            resource_id: None,
        })
    }

    async fn renew_subscription(
        &self,
        subscription: &Subscription,
        until: DateTime<Utc>,
        _deadline: Deadline,
    ) -> Result<DateTime<Utc>, CalendarError> {
        let mut calendar = lock(&self.inner);
        Self::failure(&mut calendar)?;
        match calendar.subscriptions.get_mut(&subscription.id) {
            Some(expires) => {
                *expires = until;
                Ok(until)
            }
            None => Err(CalendarError::NotFound {
                operation: "renew subscription",
            }),
        }
    }

    async fn delete_subscription(
        &self,
        _calendar_user_id: &str,
        subscription: &Subscription,
        _deadline: Deadline,
    ) -> Result<bool, CalendarError> {
        let mut calendar = lock(&self.inner);
        Self::failure(&mut calendar)?;
        Ok(calendar.subscriptions.remove(&subscription.id).is_some())
    }

    async fn calendar_user_id(
        &self,
        email: &str,
        _deadline: Deadline,
    ) -> Result<Option<String>, CalendarError> {
        let mut calendar = lock(&self.inner);
        Self::failure(&mut calendar)?;
        Ok(calendar.users.get(email).cloned())
    }
}
