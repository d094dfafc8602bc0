//! The calendar connector's domain: which agents are connected to which calendar, the sync
//! requests that flow from change notifications to the sync worker, and what a delta round
//! returns. Pure types; the Graph adapter lives in `crate::graph`, the stores in `crate::aws`.

pub mod client_state;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::events::{CalendarEntry, EventError};
use crate::model::UserId;

pub use client_state::ClientStateKey;

/// Where Graph delivers change and lifecycle notifications, below the public endpoint URL.
pub const NOTIFY_PATH: &str = "/graph/notify";
pub const LIFECYCLE_PATH: &str = "/graph/lifecycle";
/// Where Google posts push-channel notifications (headers only), on the same endpoint.
pub const GOOGLE_NOTIFY_PATH: &str = "/google/notify";

/// The calendar service an agent's calendar lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Microsoft,
    Google,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Microsoft => "microsoft",
            Self::Google => "google",
        }
    }
}

/// Which calendar service holds an agent's calendar: Google for the listed Workspace domains,
/// else the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRouting {
    /// Lower-case e-mail domains on Google Workspace.
    pub google_domains: Vec<String>,
    pub default: Provider,
}

impl Default for ProviderRouting {
    fn default() -> Self {
        Self {
            google_domains: Vec::new(),
            default: Provider::Microsoft,
        }
    }
}

impl ProviderRouting {
    pub fn provider_for(&self, email: &str) -> Provider {
        let domain = email.rsplit_once('@').map_or("", |(_, domain)| domain);
        if self
            .google_domains
            .iter()
            .any(|google| google.eq_ignore_ascii_case(domain))
        {
            Provider::Google
        } else {
            self.default
        }
    }
}

/// A change subscription (Graph) or push channel (Google) we hold on an agent's calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// Input to the client-state derivation (`ClientStateKey::client_state`); not a secret.
    pub nonce: String,
    /// Google's id of the watched collection, needed to stop the channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
}

/// What the calendar service granted for a new subscription or channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSubscription {
    pub id: String,
    pub expires_at: DateTime<Utc>,
    pub resource_id: Option<String>,
}

impl Subscription {
    /// Renew when less than a third of the lifetime is left (Graph deletes unrenewed ones).
    pub fn needs_renewal(&self, now: DateTime<Utc>) -> bool {
        let life = self.expires_at - self.created_at;
        self.expires_at - now < life / 3
    }
}

/// The time range one delta chain covers; Graph fixes it per chain, so rolling it forward
/// starts a new chain (a full round).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub baselined_at: DateTime<Utc>,
}

/// Who holds the right to sync one agent now (claim → work → commit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncLease {
    pub token: String,
    pub until: DateTime<Utc>,
}

/// One connected agent: stored per agent, every write conditional on `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub user_id: UserId,
    pub email: String,
    pub provider: Provider,
    /// The agent's object id in the calendar service.
    pub calendar_user_id: String,
    pub subscription: Option<Subscription>,
    /// The whole delta link URL of the last completed round.
    pub delta_link: Option<String>,
    pub window: Option<SyncWindow>,
    pub last_sync_at: Option<DateTime<Utc>>,
    /// The last failure, in words without secrets; cleared by a good round.
    pub last_error: Option<String>,
    pub lease: Option<SyncLease>,
    /// Set by a worker that found the lease taken: the holder runs one more round.
    pub pending: bool,
    /// 0 = never stored.
    pub version: u64,
}

impl Connection {
    pub fn new(
        user_id: UserId,
        email: impl Into<String>,
        calendar_user_id: impl Into<String>,
    ) -> Self {
        Self {
            user_id,
            email: email.into(),
            provider: Provider::Microsoft,
            calendar_user_id: calendar_user_id.into(),
            subscription: None,
            delta_link: None,
            window: None,
            last_sync_at: None,
            last_error: None,
            lease: None,
            pending: false,
            version: 0,
        }
    }

    /// The same connection on another calendar service.
    pub fn on(mut self, provider: Provider) -> Self {
        self.provider = provider;
        self
    }

    pub fn lease_held(&self, now: DateTime<Utc>) -> bool {
        self.lease.as_ref().is_some_and(|lease| lease.until > now)
    }
}

/// Why an agent's calendar is to be synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SyncReason {
    /// A change notification: a delta round.
    Changed,
    /// Notifications were missed (`missed`, a safety resync): a full round.
    Resync,
    /// `reauthorizationRequired`: renew the subscription, then a delta round.
    Reauthorize,
    /// `subscriptionRemoved`: a new subscription, then a full round.
    Recreate,
    /// The scheduled upkeep: create or renew the subscription as needed, then a delta round.
    Upkeep,
}

impl SyncReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Changed => "changed",
            Self::Resync => "resync",
            Self::Reauthorize => "reauthorize",
            Self::Recreate => "recreate",
            Self::Upkeep => "upkeep",
        }
    }
}

/// One "sync user X" message on the sync queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncRequest {
    pub user_id: UserId,
    pub reason: SyncReason,
}

/// Where a delta page is read from: the first page of a new chain, or a link Graph gave us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaCursor {
    Window {
        calendar_user_id: String,
        window: SyncWindow,
    },
    Link(String),
}

/// One item of a delta page, in our own terms: the calendar's adapter read the service's shape.
#[derive(Debug, Clone, PartialEq)]
pub enum DeltaItem {
    /// A new or changed event.
    Changed(CalendarChange),
    /// An event the adapter could not read: told to the planner, so the refusal is audited
    /// naming the field.
    Unreadable { id: String, error: EventError },
    /// An event gone from the window (deleted, cancelled out of a series, moved away).
    Removed { id: String },
}

/// A new or changed event of the agent whose calendar is read.
#[derive(Debug, Clone, PartialEq)]
pub struct CalendarChange {
    pub entry: CalendarEntry,
    /// What identifies this version of the event (Graph's `changeKey`, Google's `etag`).
    pub version: Option<String>,
    /// Its subject never leaves the connector (Graph `sensitivity`, Google `visibility`).
    pub private: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeltaPage {
    pub items: Vec<DeltaItem>,
    pub next_link: Option<String>,
    pub delta_link: Option<String>,
}

/// A subscription to create on an agent's calendar.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub calendar_user_id: String,
    pub expires_at: DateTime<Utc>,
    /// Secret: never logged.
    pub client_state: secrecy::SecretString,
}

/// Failures of the calendar service, in terms the services act on.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// 429 (or 503): wait `retry_after` before the next call for this mailbox.
    #[error("{operation}: throttled, retry after {retry_after:?}")]
    Throttled {
        operation: &'static str,
        retry_after: Duration,
    },
    /// No calendar service is configured for this provider.
    #[error("{provider:?}: no calendar service is configured for this provider")]
    NotConfigured { provider: Provider },
    /// The delta state is expired or unknown (410): start a new chain.
    #[error("{operation}: the delta state is no longer valid")]
    SyncStateGone { operation: &'static str },
    #[error("{operation}: not found")]
    NotFound { operation: &'static str },
    /// The app may not read this mailbox (consent, RBAC for Applications, access policy).
    #[error("{operation}: access denied ({code})")]
    AccessDenied {
        operation: &'static str,
        code: String,
    },
    #[error("{operation}: the calendar service refused our credentials: {message}")]
    Auth {
        operation: &'static str,
        message: String,
    },
    #[error("{operation}: HTTP {status} {code}: {message}")]
    Status {
        operation: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{operation}: {message}")]
    Transport {
        operation: &'static str,
        message: String,
    },
    /// A response or stored link that is not what the service documents.
    #[error("{operation}: unexpected response: {message}")]
    Protocol {
        operation: &'static str,
        message: String,
    },
}

impl CalendarError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Throttled { .. } | Self::Transport { .. } => true,
            Self::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("valid literal")
            .to_utc()
    }

    #[test]
    fn renewal_is_due_with_a_third_of_the_life_left() {
        let subscription = Subscription {
            id: "s".to_owned(),
            created_at: at("2026-03-01T00:00:00Z"),
            expires_at: at("2026-03-04T00:00:00Z"),
            nonce: "n".to_owned(),
            resource_id: None,
        };
        assert!(!subscription.needs_renewal(at("2026-03-02T23:59:00Z")));
        assert!(subscription.needs_renewal(at("2026-03-03T00:01:00Z")));
    }

    #[test]
    fn agents_are_routed_by_their_email_domain() {
        let routing = ProviderRouting {
            google_domains: vec!["gws.example.org".to_owned()],
            default: Provider::Microsoft,
        };
        assert_eq!(routing.provider_for("a@GWS.example.org"), Provider::Google);
        assert_eq!(routing.provider_for("a@example.org"), Provider::Microsoft);
        assert_eq!(routing.provider_for("no-domain"), Provider::Microsoft);
    }

    #[test]
    fn sync_requests_refuse_unknown_fields() {
        let good = r#"{"userId":"2b2e8fb3-2d8e-4a42-9f3f-2c5a7f0e4a11","reason":"changed"}"#;
        let parsed: SyncRequest = serde_json::from_str(good).expect("valid");
        assert_eq!(parsed.reason, SyncReason::Changed);
        let extra = r#"{"userId":"2b2e8fb3-2d8e-4a42-9f3f-2c5a7f0e4a11","reason":"changed","x":1}"#;
        assert!(serde_json::from_str::<SyncRequest>(extra).is_err());
    }
}
