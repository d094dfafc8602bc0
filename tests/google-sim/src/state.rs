//! The simulator's in-memory world: issued access tokens, the domain's calendars, push
//! channels, sync and page tokens, faults, rate-limit windows, the sim clock and the logs tests
//! read.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::Digest as _;

use crate::calendar::Calendar;
use crate::channels::Channel;
use crate::delivery::Delivery;
use crate::faults::Fault;
use crate::list::{PageState, SyncState};
use crate::seed::Seed;

/// An issued access token, bound to the impersonated user and the granted scopes.
#[derive(Debug, Clone)]
pub struct Token {
    pub sub: String,
    pub scopes: Vec<String>,
    pub expires_at: DateTime<Utc>,
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
    /// The token's user (for `/token`: the assertion's `sub` when it was granted).
    pub sub: Option<String>,
    pub status: u16,
}

#[derive(Debug)]
pub struct SimState {
    pub seed: Seed,
    /// Sim clock = real time + this offset (`POST /sim/clock`).
    pub clock_offset: chrono::Duration,
    /// When set, the sim clock stands still at this time.
    pub frozen_at: Option<DateTime<Utc>>,
    pub tokens: HashMap<String, Token>,
    /// Access tokens granted per `sub`.
    pub grants: BTreeMap<String, u64>,
    pub calendars: Vec<Calendar>,
    pub channels: Vec<Channel>,
    pub sync_tokens: HashMap<String, SyncState>,
    pub page_tokens: HashMap<String, PageState>,
    pub faults: Vec<Fault>,
    /// Admitted `/calendar/v3` requests per user in the last minute (sim clock).
    pub rate_windows: HashMap<String, VecDeque<DateTime<Utc>>>,
    /// Reason of the per-user limit's error (`rateLimitExceeded` unless changed by control).
    pub rate_limit_reason: String,
    pub requests: Vec<RequestRecord>,
    pub deliveries: Vec<Delivery>,
    /// Notifications still to drop on purpose (`POST /sim/notifications/drop`).
    pub drop_notifications: u32,
    /// `http://127.0.0.1:PORT` once the server is bound: an accepted JWT audience.
    pub base_url: Option<String>,
}

impl SimState {
    pub fn from_seed(seed: Seed) -> Result<Self, String> {
        seed.validate()?;
        let calendars = seed.users.iter().map(|u| Calendar::new(u)).collect();
        Ok(Self {
            seed,
            clock_offset: chrono::Duration::zero(),
            frozen_at: None,
            tokens: HashMap::new(),
            grants: BTreeMap::new(),
            calendars,
            channels: Vec::new(),
            sync_tokens: HashMap::new(),
            page_tokens: HashMap::new(),
            faults: Vec::new(),
            rate_windows: HashMap::new(),
            rate_limit_reason: "rateLimitExceeded".to_owned(),
            requests: Vec::new(),
            deliveries: Vec::new(),
            drop_notifications: 0,
            base_url: None,
        })
    }

    /// The sim clock, in milliseconds as Google keeps times.
    pub fn now(&self) -> DateTime<Utc> {
        let now = self
            .frozen_at
            .unwrap_or_else(|| Utc::now() + self.clock_offset);
        DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
    }

    /// The calendar of a domain user, by address (case-insensitive).
    pub fn calendar(&self, email: &str) -> Option<&Calendar> {
        self.calendars
            .iter()
            .find(|c| c.email.eq_ignore_ascii_case(email))
    }

    pub fn calendar_mut(&mut self, email: &str) -> Option<&mut Calendar> {
        self.calendars
            .iter_mut()
            .find(|c| c.email.eq_ignore_ascii_case(email))
    }

    /// Adds a domain user with an empty calendar; false when it exists.
    pub fn add_user(&mut self, email: &str) -> bool {
        if self.calendar(email).is_some() {
            return false;
        }
        self.seed.users.push(email.to_ascii_lowercase());
        self.calendars.push(Calendar::new(email));
        true
    }

    pub fn record_request(&mut self, mut record: RequestRecord) {
        record.seq = self.requests.len() as u64 + 1;
        self.requests.push(record);
    }
}

/// `2026-03-19T09:00:00.000Z`, as Google writes `created` / `updated`.
pub fn millis(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `2026-03-19T09:00:00Z`, as Google writes `dateTime` in a UTC calendar.
pub fn seconds(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// `Tue, 19 Nov 2013 01:13:52 GMT` (`X-Goog-Channel-Expiration`).
pub fn rfc1123(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// A random opaque token, base64url without padding (sync and page tokens).
pub use sim_kit::random_token;

const BASE32HEX: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

fn base32hex(bytes: &[u8], len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buffer = 0u32;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 && out.len() < len {
            bits -= 5;
            out.push(char::from(BASE32HEX[((buffer >> bits) & 31) as usize]));
        }
    }
    out
}

/// A lowercase base32hex id (a–v, 0–9), as Google event ids are.
pub fn random_base32hex(len: usize) -> String {
    let bytes: Vec<u8> = (0..len.div_ceil(25))
        .flat_map(|_| *uuid::Uuid::new_v4().as_bytes())
        .collect();
    base32hex(&bytes, len)
}

/// The stable, opaque `resourceId` of a calendar's events collection.
pub fn resource_id(email: &str) -> String {
    let digest = sha2::Sha256::digest(email.to_ascii_lowercase().as_bytes());
    base32hex(&digest, 27)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_base32hex_of_the_asked_length() {
        for len in [5, 26, 40] {
            let id = random_base32hex(len);
            assert_eq!(id.len(), len);
            assert!(id.bytes().all(|b| BASE32HEX.contains(&b)), "{id}");
        }
        assert_eq!(resource_id("A@x.example"), resource_id("a@x.example"));
        assert_ne!(resource_id("a@x.example"), resource_id("b@x.example"));
    }

    #[test]
    fn channel_expiration_is_rfc_1123() {
        let at = DateTime::from_timestamp(1_384_823_632, 0).expect("a time");
        assert_eq!(rfc1123(at), "Tue, 19 Nov 2013 01:13:52 GMT");
    }
}
