//! The sync worker's use case, for one agent: claim the agent (a lease in its connection, so
//! two workers never sync one calendar at once), keep the subscription alive as the request
//! asks, run a delta round, tell the bus what changed, and commit the new delta link on the
//! version it claimed — so a link never moves backwards.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::calendar::client_state::new_nonce;
use crate::calendar::{
    CalendarError, ClientStateKey, Connection, DeltaCursor, DeltaItem, NewSubscription,
    Subscription, SyncLease, SyncReason, SyncRequest, SyncWindow,
};
use crate::clock::{Clock, Deadline};
use crate::events::CALENDAR_EVENT_DELETED;
use crate::model::UserId;
use crate::ports::{
    BusEntry, CalendarApi, CalendarApis, ConnectionStore, EventBus, MessagingError, MirroredEvent,
    StoreError,
};
use crate::service::calendar_projection::{mirrored, unreadable, upserted};

/// Claim attempts before giving up on a contended connection.
const CLAIM_ATTEMPTS: u32 = 8;
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// The window is [now − before, now + after], started anew every `rebaseline`.
    pub window_before: Duration,
    pub window_after: Duration,
    pub rebaseline: Duration,
    /// The lifetime asked for new and renewed subscriptions.
    pub subscription_lifetime: Duration,
    /// Rounds one claim runs at most when other workers keep asking for more.
    pub max_rounds: u32,
    /// Whether subjects reach the bus: only when the policy's messages show them
    /// (`Policy::shows_subjects`); otherwise a subject never leaves the connector.
    pub subjects: bool,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            window_before: Duration::from_secs(3600),
            window_after: Duration::from_secs(7 * 86_400),
            rebaseline: Duration::from_secs(86_400),
            subscription_lifetime: Duration::from_secs(4230 * 60),
            max_rounds: 3,
            subjects: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Calendar(#[from] CalendarError),
    #[error(transparent)]
    Bus(#[from] MessagingError),
    #[error("user {0}: the sync lease was taken over before the commit")]
    LeaseLost(UserId),
    #[error("user {0}: connection still contended after {CLAIM_ATTEMPTS} attempts")]
    Contended(UserId),
}

impl SyncError {
    /// Whether the request should go back to the queue.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(error) => error.is_retryable(),
            Self::Calendar(error) => error.is_retryable(),
            Self::Bus(error) => error.is_retryable(),
            Self::LeaseLost(_) | Self::Contended(_) => true,
        }
    }
}

/// What one request amounted to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub outcome: &'static str,
    pub rounds: u32,
    pub pages: u32,
    pub full: bool,
    pub upserted: usize,
    pub deleted: usize,
    pub unchanged: usize,
    /// Removals of events we never told the bus about (outside the window, untracked).
    pub ignored: usize,
    pub subscription: Option<&'static str>,
    /// The calendar service synced (`microsoft`, `google`).
    pub provider: Option<&'static str>,
}

#[derive(Debug)]
pub struct SyncService {
    pub calendars: CalendarApis,
    pub connections: Arc<dyn ConnectionStore>,
    pub bus: Arc<dyn EventBus>,
    pub key: ClientStateKey,
    pub clock: Arc<dyn Clock>,
    pub settings: SyncSettings,
}

enum Claim {
    Claimed(Box<Connection>),
    /// Another worker holds the agent and was asked to run one more round.
    Busy,
    NotConnected,
}

/// The result of one delta round, before it is committed.
struct Round {
    delta_link: String,
    window: SyncWindow,
    pages: u32,
    full: bool,
    entries: Vec<BusEntry>,
    upserts: Vec<MirroredEvent>,
    removals: Vec<String>,
    unchanged: usize,
    ignored: usize,
}

impl SyncService {
    pub async fn sync(
        &self,
        request: &SyncRequest,
        deadline: Deadline,
    ) -> Result<SyncReport, SyncError> {
        let mut connection = match self.claim(&request.user_id, deadline).await? {
            Claim::Claimed(connection) => *connection,
            Claim::Busy => return Ok(report("handed to the running worker")),
            Claim::NotConnected => return Ok(report("not connected")),
        };
        let result = self.work(&mut connection, request.reason, deadline).await;
        if let Err(error) = &result {
            self.release_after(&connection, error).await;
        }
        result
    }

    async fn work(
        &self,
        connection: &mut Connection,
        reason: SyncReason,
        deadline: Deadline,
    ) -> Result<SyncReport, SyncError> {
        let mut report = report("synced");
        report.provider = Some(connection.provider.as_str());
        let calendar = self.calendars.of(connection.provider)?.clone();
        let calendar = calendar.as_ref();
        report.subscription = self
            .keep_subscription(calendar, connection, reason, deadline)
            .await?;
        let mut full = matches!(reason, SyncReason::Resync | SyncReason::Recreate);
        loop {
            let round = self.round(calendar, connection, full, deadline).await?;
            report.rounds += 1;
            report.pages += round.pages;
            report.full |= round.full;
            report.upserted += round.upserts.len();
            report.deleted += round
                .entries
                .iter()
                .filter(|e| e.detail_type == CALENDAR_EVENT_DELETED)
                .count();
            report.unchanged += round.unchanged;
            report.ignored += round.ignored;
            self.bus.publish(&round.entries, deadline).await?;
            self.connections
                .update_mirror(&connection.user_id, &round.upserts, &round.removals)
                .await?;
            let last = report.rounds >= self.settings.max_rounds;
            match self.commit(connection, round, last).await? {
                Some(next) => {
                    *connection = next;
                    full = false;
                }
                None => return Ok(report),
            }
        }
    }

    // ------------------------------------------------------------ claim and commit

    async fn claim(&self, user: &UserId, deadline: Deadline) -> Result<Claim, SyncError> {
        for _ in 0..CLAIM_ATTEMPTS {
            let Some(mut connection) = self.connections.get(user).await? else {
                return Ok(Claim::NotConnected);
            };
            let now = self.clock.now();
            if connection.lease_held(now) {
                if connection.pending {
                    return Ok(Claim::Busy);
                }
                connection.pending = true;
            } else {
                connection.lease = Some(SyncLease {
                    token: uuid::Uuid::new_v4().to_string(),
                    // A dead invocation's lease lapses with its deadline.
                    until: deadline.0 + chrono::Duration::seconds(5),
                });
                connection.pending = false;
            }
            let asked_holder = connection.pending;
            match self.connections.put(&connection).await {
                Ok(_) if asked_holder => return Ok(Claim::Busy),
                Ok(claimed) => return Ok(Claim::Claimed(Box::new(claimed))),
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(SyncError::Contended(user.clone()))
    }

    /// Stores the round's link. Returns the connection to run another round on when another
    /// worker asked for one meanwhile (and `last` is false); `None` once the lease is released.
    async fn commit(
        &self,
        claimed: &Connection,
        round: Round,
        last: bool,
    ) -> Result<Option<Connection>, SyncError> {
        let mut next = claimed.clone();
        for _ in 0..CLAIM_ATTEMPTS {
            let again = next.pending && !last;
            next.delta_link = Some(round.delta_link.clone());
            next.window = Some(round.window);
            next.last_sync_at = Some(self.clock.now());
            next.last_error = None;
            next.pending = false;
            if !again {
                next.lease = None;
            }
            match self.connections.put(&next).await {
                Ok(stored) => return Ok(again.then_some(stored)),
                Err(StoreError::Conflict(_)) => {
                    next = self.reread_owned(claimed).await?;
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(SyncError::Contended(claimed.user_id.clone()))
    }

    /// The stored connection if our lease still holds it (others may only set `pending`).
    async fn reread_owned(&self, claimed: &Connection) -> Result<Connection, SyncError> {
        let lost = || SyncError::LeaseLost(claimed.user_id.clone());
        let current = self
            .connections
            .get(&claimed.user_id)
            .await?
            .ok_or_else(lost)?;
        let ours =
            matches!((&current.lease, &claimed.lease), (Some(a), Some(b)) if a.token == b.token);
        if ours { Ok(current) } else { Err(lost()) }
    }

    /// After a failure: record it and let the lease go, so the retry need not wait it out.
    async fn release_after(&self, claimed: &Connection, error: &SyncError) {
        let Ok(mut current) = self.reread_owned(claimed).await else {
            return;
        };
        current.lease = None;
        current.pending = false;
        current.last_error = Some(error.to_string());
        if let Err(store_error) = self.connections.put(&current).await {
            tracing::warn!(user = %claimed.user_id, error = %store_error, "could not release the sync lease");
        }
    }

    // ------------------------------------------------------------ subscription

    async fn keep_subscription(
        &self,
        calendar: &dyn CalendarApi,
        connection: &mut Connection,
        reason: SyncReason,
        deadline: Deadline,
    ) -> Result<Option<&'static str>, SyncError> {
        let now = self.clock.now();
        let until = now + chrono_duration(self.settings.subscription_lifetime);
        // Renew what is there and due; create what is missing, gone or asked to be replaced.
        let renew = match (&connection.subscription, reason) {
            (None, _) | (Some(_), SyncReason::Recreate) => false,
            (Some(s), _) if s.expires_at <= now => false,
            (Some(_), SyncReason::Reauthorize) => true,
            // Whatever brought the worker here: a busy agent renews on their own notifications.
            (Some(s), _) if s.needs_renewal(now) => true,
            _ => return Ok(None),
        };
        let renewed = match &connection.subscription {
            Some(current) if renew && calendar.renews_in_place() => {
                match calendar.renew_subscription(current, until, deadline).await {
                    Ok(expires_at) => Some(Subscription {
                        expires_at,
                        ..current.clone()
                    }),
                    // Graph deleted it (expired, removed): make a new one.
                    Err(CalendarError::NotFound { .. }) => None,
                    Err(other) => return Err(other.into()),
                }
            }
            _ => None,
        };
        let (subscription, action) = match renewed {
            Some(subscription) => (subscription, "renewed"),
            // No renew call (Google): an overlapping new channel, then the old one stopped.
            None if renew && !calendar.renews_in_place() => (
                self.create_subscription(calendar, connection, until, deadline)
                    .await?,
                "replaced",
            ),
            None => (
                self.create_subscription(calendar, connection, until, deadline)
                    .await?,
                "created",
            ),
        };
        let retired = (connection.subscription.as_ref())
            .filter(|old| old.id != subscription.id)
            .map(|old| old.id.clone());
        connection.subscription = Some(subscription);
        // Checkpoint now: the index must know the new id before Graph's first notification.
        *connection = self
            .connections
            .put(connection)
            .await
            .map_err(|error| match error {
                StoreError::Conflict(_) => SyncError::LeaseLost(connection.user_id.clone()),
                other => other.into(),
            })?;
        if let Some(old) = retired {
            // From now on the old one's notifications are stale: counted, not acted on.
            if let Err(error) = self.connections.forget_subscription(&old).await {
                tracing::info!(user = %connection.user_id, %error, "old subscription's index entry left to its TTL");
            }
        }
        Ok(Some(action))
    }

    async fn create_subscription(
        &self,
        calendar: &dyn CalendarApi,
        connection: &Connection,
        until: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<Subscription, SyncError> {
        let nonce = new_nonce();
        let request = NewSubscription {
            calendar_user_id: connection.calendar_user_id.clone(),
            expires_at: until,
            client_state: self.key.client_state(&nonce),
        };
        let created = calendar.create_subscription(&request, deadline).await?;
        if let Some(old) = &connection.subscription {
            // Best effort: an old one left behind expires on its own, and its notifications no
            // longer match our index.
            if let Err(error) = calendar
                .delete_subscription(&connection.calendar_user_id, old, deadline)
                .await
            {
                tracing::info!(user = %connection.user_id, %error, "old subscription not deleted");
            }
        }
        Ok(Subscription {
            id: created.id,
            expires_at: created.expires_at,
            created_at: self.clock.now(),
            nonce,
            resource_id: created.resource_id,
        })
    }

    // ------------------------------------------------------------ delta round

    fn new_window(&self, now: DateTime<Utc>) -> SyncWindow {
        SyncWindow {
            start: now - chrono_duration(self.settings.window_before),
            end: now + chrono_duration(self.settings.window_after),
            baselined_at: now,
        }
    }

    fn window_is_stale(&self, window: &SyncWindow, now: DateTime<Utc>) -> bool {
        window.baselined_at + chrono_duration(self.settings.rebaseline) <= now
    }

    async fn round(
        &self,
        calendar: &dyn CalendarApi,
        connection: &Connection,
        full_requested: bool,
        deadline: Deadline,
    ) -> Result<Round, SyncError> {
        let now = self.clock.now();
        let continued = match (&connection.delta_link, &connection.window) {
            (Some(link), Some(window)) if !full_requested && !self.window_is_stale(window, now) => {
                Some((link.clone(), *window))
            }
            _ => None,
        };
        let (items, delta_link, window, pages, full) = match continued {
            Some((link, window)) => match self
                .pages(
                    calendar,
                    &connection.user_id,
                    DeltaCursor::Link(link),
                    deadline,
                )
                .await
            {
                Ok((items, delta_link, pages)) => (items, delta_link, window, pages, false),
                Err(SyncError::Calendar(CalendarError::SyncStateGone { .. })) => {
                    self.full_pages(calendar, connection, now, deadline).await?
                }
                Err(other) => return Err(other),
            },
            None => self.full_pages(calendar, connection, now, deadline).await?,
        };
        let mirror = self.connections.mirror(&connection.user_id).await?;
        let mut round = Round {
            delta_link,
            window,
            pages,
            full,
            entries: Vec::new(),
            upserts: Vec::new(),
            removals: Vec::new(),
            unchanged: 0,
            ignored: 0,
        };
        self.compare(&connection.user_id, items, &mirror, now, &mut round);
        Ok(round)
    }

    async fn full_pages(
        &self,
        calendar: &dyn CalendarApi,
        connection: &Connection,
        now: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<(Vec<DeltaItem>, String, SyncWindow, u32, bool), SyncError> {
        let window = self.new_window(now);
        let cursor = DeltaCursor::Window {
            calendar_user_id: connection.calendar_user_id.clone(),
            window,
        };
        let (items, delta_link, pages) = self
            .pages(calendar, &connection.user_id, cursor, deadline)
            .await?;
        Ok((items, delta_link, window, pages, true))
    }

    /// Every page of one round; a 429 waits its `Retry-After` when the deadline allows.
    async fn pages(
        &self,
        calendar: &dyn CalendarApi,
        owner: &UserId,
        mut cursor: DeltaCursor,
        deadline: Deadline,
    ) -> Result<(Vec<DeltaItem>, String, u32), SyncError> {
        let mut items = Vec::new();
        let mut pages = 0;
        loop {
            let page = match calendar.delta_page(owner, &cursor, deadline).await {
                Ok(page) => page,
                Err(CalendarError::Throttled { retry_after, .. })
                    if retry_after + Duration::from_secs(1)
                        < deadline.remaining(self.clock.as_ref()) =>
                {
                    self.clock.sleep(retry_after).await;
                    continue;
                }
                Err(other) => return Err(other.into()),
            };
            pages += 1;
            items.extend(page.items);
            match (page.next_link, page.delta_link) {
                (Some(next), _) => cursor = DeltaCursor::Link(next),
                (None, Some(delta)) => return Ok((items, delta, pages)),
                (None, None) => {
                    return Err(CalendarError::Protocol {
                        operation: "calendarView/delta",
                        message: "a page without next or delta link".to_owned(),
                    }
                    .into());
                }
            }
        }
    }

    /// What to tell the bus: items against what we told it before. A full round also ends
    /// what vanished unseen (while notifications were missed).
    fn compare(
        &self,
        user: &UserId,
        items: Vec<DeltaItem>,
        mirror: &HashMap<String, MirroredEvent>,
        now: DateTime<Utc>,
        round: &mut Round,
    ) {
        let mut seen = HashSet::new();
        for item in items {
            match item {
                DeltaItem::Changed(change) => {
                    let mirrored = mirrored(user, &change);
                    seen.insert(mirrored.event_id.clone());
                    let told = mirror.get(&mirrored.event_id);
                    if told.is_some_and(|m| m.fingerprint == mirrored.fingerprint) {
                        round.unchanged += 1;
                    } else {
                        let subject = self.settings.subjects;
                        round.entries.push(upserted(&change, &mirrored, subject));
                        round.upserts.push(mirrored);
                    }
                }
                // The planner refuses it with a Rejected audit record naming the field.
                DeltaItem::Unreadable { id, error } => {
                    round.entries.push(unreadable(user, &id, &error));
                    seen.insert(id);
                }
                DeltaItem::Removed { id } => {
                    seen.insert(id.clone());
                    match mirror.get(&id) {
                        Some(known) => {
                            round.entries.push(BusEntry {
                                detail_type: CALENDAR_EVENT_DELETED,
                                detail: known.detail.clone(),
                            });
                            round.removals.push(id);
                        }
                        None => round.ignored += 1,
                    }
                }
            }
        }
        if round.full {
            for (id, known) in mirror.iter().filter(|(id, _)| !seen.contains(*id)) {
                if known.end > now {
                    round.entries.push(BusEntry {
                        detail_type: CALENDAR_EVENT_DELETED,
                        detail: known.detail.clone(),
                    });
                }
                round.removals.push(id.clone());
            }
        }
    }
}

fn report(outcome: &'static str) -> SyncReport {
    SyncReport {
        outcome,
        ..SyncReport::default()
    }
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests;
