//! The simulator's in-memory world: app registrations, issued tokens, users and their mailboxes,
//! subscriptions, sync tokens, faults, the sim clock and the logs tests read.

use std::collections::HashMap;

use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;
use sha2::Digest as _;

use crate::calendar::SyncToken;
use crate::delivery::Delivery;
use crate::events::Mailbox;
use crate::faults::Fault;
use crate::seed::{Seed, UserSeed};
use crate::subscriptions::Subscription;

/// An issued access token.
#[derive(Debug, Clone)]
pub struct Token {
    pub client_id: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct User {
    pub seed: UserSeed,
    pub mailbox: Mailbox,
}

/// One line of `GET /sim/requests`.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub method: String,
    /// Without the query string.
    pub path: String,
    pub query: Option<String>,
    /// The mailbox's user id for `/v1.0/users/{id-or-upn}/...` (the raw segment when unknown).
    pub mailbox: Option<String>,
    pub status: u16,
    pub request_id: String,
}

#[derive(Debug)]
pub struct SimState {
    pub seed: Seed,
    /// Sim clock = real time + this offset (`POST /sim/clock`).
    pub clock_offset: chrono::Duration,
    /// client id → secret.
    pub clients: HashMap<String, String>,
    pub tokens: HashMap<String, Token>,
    pub users: Vec<User>,
    pub subscriptions: Vec<Subscription>,
    pub sync_tokens: HashMap<String, SyncToken>,
    pub faults: Vec<Fault>,
    /// In-flight `/v1.0/users/{id}/...` requests per mailbox (user id).
    pub in_flight: HashMap<String, usize>,
    pub requests: Vec<RequestRecord>,
    pub deliveries: Vec<Delivery>,
    /// Overrides the validation token of the next handshakes (`POST /sim/validation-token`).
    pub validation_token: Option<String>,
}

impl SimState {
    pub fn from_seed(seed: Seed) -> Result<Self, String> {
        seed.validate()?;
        let clients = seed
            .clients
            .iter()
            .map(|c| (c.client_id.clone(), c.client_secret.clone()))
            .collect();
        let users = seed
            .users
            .iter()
            .map(|u| User {
                seed: u.clone(),
                mailbox: Mailbox::default(),
            })
            .collect();
        Ok(Self {
            seed,
            clock_offset: chrono::Duration::zero(),
            clients,
            tokens: HashMap::new(),
            users,
            subscriptions: Vec::new(),
            sync_tokens: HashMap::new(),
            faults: Vec::new(),
            in_flight: HashMap::new(),
            requests: Vec::new(),
            deliveries: Vec::new(),
            validation_token: None,
        })
    }

    /// The sim clock, truncated to 100 ns ticks as Graph stores times.
    pub fn now(&self) -> DateTime<Utc> {
        let now = Utc::now() + self.clock_offset;
        let ticks = now.nanosecond() / 100 * 100;
        now.with_nanosecond(ticks).unwrap_or(now)
    }

    /// A user by object id or userPrincipalName, both case-insensitive.
    pub fn user(&self, id_or_upn: &str) -> Option<&User> {
        self.users.iter().find(|u| matches_user(&u.seed, id_or_upn))
    }

    pub fn user_mut(&mut self, id_or_upn: &str) -> Option<&mut User> {
        self.users
            .iter_mut()
            .find(|u| matches_user(&u.seed, id_or_upn))
    }

    /// Adds a user, or replaces the one with the same id or UPN. Returns true when added.
    pub fn upsert_user(&mut self, seed: UserSeed) -> bool {
        let existing = self.users.iter().position(|u| {
            u.seed.id.eq_ignore_ascii_case(&seed.id)
                || u.seed
                    .user_principal_name
                    .eq_ignore_ascii_case(&seed.user_principal_name)
        });
        match existing {
            Some(index) => {
                self.users[index].seed = seed;
                false
            }
            None => {
                self.users.push(User {
                    seed,
                    mailbox: Mailbox::default(),
                });
                true
            }
        }
    }

    pub fn record_request(&mut self, mut record: RequestRecord) {
        record.seq = self.requests.len() as u64 + 1;
        self.requests.push(record);
    }
}

fn matches_user(user: &UserSeed, id_or_upn: &str) -> bool {
    user.id.eq_ignore_ascii_case(id_or_upn)
        || user.user_principal_name.eq_ignore_ascii_case(id_or_upn)
}

/// `2026-03-19T17:00:00.0000000Z`: Graph's 7-digit UTC timestamps.
pub fn graph_time(at: DateTime<Utc>) -> String {
    format!(
        "{}.{:07}Z",
        at.format("%Y-%m-%dT%H:%M:%S"),
        at.nanosecond() % 1_000_000_000 / 100
    )
}

/// RFC 3339 with `Z`, fractional seconds only when present.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Parses an RFC 3339 time; a time without an offset (as Graph also accepts) is taken as UTC.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc())
}

/// A random opaque string, base64url without padding.
pub use sim_kit::random_token;

/// A stable UUID-shaped id derived from `text` (service principal ids for `creatorId`).
pub fn derived_uuid(text: &str) -> String {
    let digest = sha2::Sha256::digest(text.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}
