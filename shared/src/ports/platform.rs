//! What the services need of the contact-centre platform (Genesys Cloud): presence, routing
//! status, schedules, the roster. Implemented by `genesys::GenesysClient` and `wfm`; the
//! adapters translate their own errors into [`PlatformError`].

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Deadline;
use crate::decide::ShiftAt;
use crate::model::{PresenceDefinition, PresenceSnapshot, RoutingStatus, SnapshotTag, UserId};
use crate::state::PresenceRef;

/// A failed platform call as the services see it: what may be done next. The message keeps
/// the adapter's detail (status, correlation id), never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// Asked to slow down (429); try again after `retry_after`.
    #[error("{message}")]
    RateLimited {
        retry_after: Duration,
        message: String,
    },
    /// No answer in time, a broken connection, or a gateway answering for the platform (502,
    /// 504): the request may still have been carried out.
    #[error("{message}")]
    Unanswered { message: String },
    /// The platform (or the secret store holding its credentials) is unavailable for now (503,
    /// throttled): nothing was carried out; try again later.
    #[error("{message}")]
    Unavailable { message: String },
    /// Refused as such (4xx, bad credentials, an unreadable answer): the same call fails again.
    #[error("{message}")]
    Refused { message: String },
}

impl PlatformError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Refused { .. })
    }

    /// Whether a failed write may still have been applied.
    pub fn write_may_have_landed(&self) -> bool {
        matches!(self, Self::Unanswered { .. })
    }
}

/// What a compare-and-set of presence did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasOutcome {
    /// The presence still had the expected tag and was changed.
    Applied {
        before: PresenceSnapshot,
        after: PresenceSnapshot,
    },
    /// Someone changed the presence since we last saw it; nothing was written.
    Refused { current: PresenceSnapshot },
}

/// Time spent on authentication since last asked (secret reads, token requests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthTimings {
    pub secret_ms: u64,
    pub token_ms: u64,
}

/// The Genesys platform, by concern: presences (this trait), routing statuses, the user
/// directory and the org's presence definitions. One client implements them all
/// (`GenesysClient`); each caller holds only the concern it uses.
#[async_trait]
pub trait PresenceApi: Send + Sync + fmt::Debug {
    async fn presence(
        &self,
        user: &UserId,
        deadline: Deadline,
    ) -> Result<PresenceSnapshot, PlatformError>;

    /// Snapshots of many users (bulk calls); users Genesys does not know are left out.
    async fn presences(
        &self,
        users: &[UserId],
        deadline: Deadline,
    ) -> Result<Vec<(UserId, PresenceSnapshot)>, PlatformError>;

    /// Our If-Match: writes `to` only if the live tag is still `expected`. `seen`: a snapshot
    /// read moments ago that stands for the re-read (one round trip fewer); the caller decides
    /// what is fresh enough.
    async fn compare_and_set(
        &self,
        user: &UserId,
        expected: &SnapshotTag,
        to: &PresenceRef,
        seen: Option<&PresenceSnapshot>,
        deadline: Deadline,
    ) -> Result<CasOutcome, PlatformError>;

    /// Sets many presences at once (bulk); the caller compared tags just before.
    async fn set_presences(
        &self,
        changes: &[(UserId, PresenceRef)],
        deadline: Deadline,
    ) -> Result<Vec<(UserId, PresenceSnapshot)>, PlatformError>;

    /// Time spent authenticating since last asked (secret reads, token requests).
    fn take_auth_timings(&self) -> AuthTimings {
        AuthTimings::default()
    }
}

/// Whether agents are on a call (Genesys routing status).
#[async_trait]
pub trait RoutingStatuses: Send + Sync + fmt::Debug {
    async fn routing_statuses(
        &self,
        users: &[UserId],
        deadline: Deadline,
    ) -> Result<Vec<(UserId, RoutingStatus)>, PlatformError>;
}

/// Genesys users by e-mail.
#[async_trait]
pub trait UserDirectory: Send + Sync + fmt::Debug {
    async fn user_by_email(
        &self,
        email: &str,
        deadline: Deadline,
    ) -> Result<Option<UserId>, PlatformError>;
}

/// The org's presence definitions (system and secondary), to resolve the policy's names.
#[async_trait]
pub trait PresenceCatalog: Send + Sync + fmt::Debug {
    async fn presence_definitions(
        &self,
        deadline: Deadline,
    ) -> Result<Vec<PresenceDefinition>, PlatformError>;
}

/// Team membership as the policy's profiles select it: Genesys groups and WFM management units.
#[async_trait]
pub trait TeamDirectory: Send + Sync + fmt::Debug {
    /// The members of a Genesys group (adapters cache them for minutes).
    async fn group_members(
        &self,
        group: &str,
        deadline: Deadline,
    ) -> Result<std::sync::Arc<std::collections::HashSet<UserId>>, PlatformError>;

    /// The WFM management unit of `user`; None: WFM does not know them.
    async fn management_unit(
        &self,
        user: &UserId,
        deadline: Deadline,
    ) -> Result<Option<String>, PlatformError>;
}

/// What the published WFM schedule says about a moment, per user, with the user's zone.
#[async_trait]
pub trait ShiftSource: Send + Sync + fmt::Debug {
    async fn shifts_at(
        &self,
        users: &[UserId],
        at: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<HashMap<UserId, ShiftAt>, PlatformError>;
}

/// Keeps the published schedules of active users cached ahead of their next decision (the
/// sweep calls it each minute; implemented by `wfm::CachedShifts`).
#[async_trait]
pub trait ShiftRefresh: Send + Sync + fmt::Debug {
    /// Fetches and caches the windows around `at` of `users`; how many were cached.
    async fn refresh(
        &self,
        users: &[UserId],
        at: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<usize, PlatformError>;
}

/// One agent who should be connected, as the roster names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterMember {
    pub user_id: UserId,
    pub email: Option<String>,
}

/// Who should be connected: the members of the roster group in Genesys.
#[async_trait]
pub trait Roster: Send + Sync + fmt::Debug {
    async fn members(&self, deadline: Deadline) -> Result<Vec<RosterMember>, PlatformError>;
}
