//! What the calendar connectors need: the calendar service, the connection store, the sync
//! queue and the event bus.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Deadline;
use super::{MessagingError, StoreError};
use crate::calendar::{
    CalendarError, Connection, CreatedSubscription, DeltaCursor, DeltaPage, NewSubscription,
    Provider, Subscription, SyncRequest,
};
use crate::model::UserId;

/// What the connector needs of a calendar service (implemented by `graph::GraphClient` and
/// `google::GoogleClient`).
#[async_trait]
pub trait CalendarApi: Send + Sync + fmt::Debug {
    /// One page of a delta round on `owner`'s calendar, its events read into our own terms.
    async fn delta_page(
        &self,
        owner: &UserId,
        cursor: &DeltaCursor,
        deadline: Deadline,
    ) -> Result<DeltaPage, CalendarError>;

    /// Creates a change subscription or push channel (Graph runs its validation handshake
    /// meanwhile); returns its id and the expiry the service granted.
    async fn create_subscription(
        &self,
        request: &NewSubscription,
        deadline: Deadline,
    ) -> Result<CreatedSubscription, CalendarError>;

    /// Whether a subscription can be extended in place; where not (Google channels), the
    /// connector creates an overlapping new one and then deletes the old.
    fn renews_in_place(&self) -> bool {
        true
    }

    /// Renews (and so reauthorizes) a subscription; returns the granted expiry.
    async fn renew_subscription(
        &self,
        subscription: &Subscription,
        until: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<DateTime<Utc>, CalendarError>;

    /// Deletes a subscription (stops a channel) on this user's calendar; `false` if the
    /// service had none of that id.
    async fn delete_subscription(
        &self,
        calendar_user_id: &str,
        subscription: &Subscription,
        deadline: Deadline,
    ) -> Result<bool, CalendarError>;

    /// The calendar service's id of the user with this e-mail / UPN, if there is one.
    async fn calendar_user_id(
        &self,
        email: &str,
        deadline: Deadline,
    ) -> Result<Option<String>, CalendarError>;
}

/// The calendar services configured in this deployment, one per provider.
#[derive(Debug, Clone, Default)]
pub struct CalendarApis {
    pub microsoft: Option<Arc<dyn CalendarApi>>,
    pub google: Option<Arc<dyn CalendarApi>>,
}

impl CalendarApis {
    pub fn of(&self, provider: Provider) -> Result<&Arc<dyn CalendarApi>, CalendarError> {
        let api = match provider {
            Provider::Microsoft => self.microsoft.as_ref(),
            Provider::Google => self.google.as_ref(),
        };
        api.ok_or(CalendarError::NotConfigured { provider })
    }
}

/// Whose a subscription is, as the notification endpoint looks it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionOwner {
    pub user_id: UserId,
    pub nonce: String,
}

/// An event we told the bus about, kept so a later removal can be told too (a removed Graph
/// event carries only its id) and an unchanged one is not told twice.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MirroredEvent {
    pub event_id: String,
    /// What identifies this version of the event (Graph's `changeKey`, else a digest).
    pub fingerprint: String,
    pub end: DateTime<Utc>,
    /// The canonical detail (docs/events.md) without the subject.
    pub detail: serde_json::Value,
}

/// The connector's state: one `Connection` per agent, the subscription index, the mirror.
#[async_trait]
pub trait ConnectionStore: Send + Sync + fmt::Debug {
    async fn get(&self, user: &UserId) -> Result<Option<Connection>, StoreError>;

    /// Writes `connection` if the stored version is still `connection.version` (0 = absent);
    /// returns it with the new version, or `Conflict`. Keeps the subscription index in step in
    /// the same transaction.
    async fn put(&self, connection: &Connection) -> Result<Connection, StoreError>;

    /// The owners of these subscription ids; unknown ids are left out.
    async fn subscription_owners(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, SubscriptionOwner>, StoreError>;

    /// Drops a replaced subscription's index entry, so its notifications count as unknown.
    async fn forget_subscription(&self, id: &str) -> Result<(), StoreError>;

    /// Every connection (a sparse index; one Query per page).
    async fn list(&self) -> Result<Vec<Connection>, StoreError>;

    /// Deletes a connection if its version is unchanged, with its index entry and mirror.
    async fn delete(&self, connection: &Connection) -> Result<(), StoreError>;

    /// Every mirrored event of one agent.
    async fn mirror(&self, user: &UserId) -> Result<HashMap<String, MirroredEvent>, StoreError>;

    async fn update_mirror(
        &self,
        user: &UserId,
        upserts: &[MirroredEvent],
        removals: &[String],
    ) -> Result<(), StoreError>;
}

/// The queue of "sync agent X" requests.
#[async_trait]
pub trait SyncQueue: Send + Sync + fmt::Debug {
    /// Enqueues every request or fails (the caller answers 5xx so the sender retries).
    async fn enqueue(&self, requests: &[SyncRequest]) -> Result<(), MessagingError>;
}

/// An event for the bus (`detail-type` + `detail`).
#[derive(Debug, Clone, PartialEq)]
pub struct BusEntry {
    pub detail_type: &'static str,
    pub detail: serde_json::Value,
}

/// The event bus the planner listens on.
#[async_trait]
pub trait EventBus: Send + Sync + fmt::Debug {
    /// Puts every entry, retrying the ones the bus reports failed, or fails.
    async fn publish(&self, entries: &[BusEntry], deadline: Deadline)
    -> Result<(), MessagingError>;
}
