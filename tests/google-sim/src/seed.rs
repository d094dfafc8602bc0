//! What the simulator starts with: the Workspace domain's users, the service accounts with their
//! public keys and the scopes domain-wide delegation authorises, and the knobs of the simulated
//! service. `Seed::default()` is the documented demo seed (`google-sim --print-default-seed`);
//! `--seed FILE` loads JSON, and every field left out of the file keeps its default value.

use serde::{Deserialize, Serialize};

pub const AGENT1: &str = "agent.one@example.com";
pub const AGENT2: &str = "agent.two@example.com";
pub const AGENT3: &str = "agent.three@example.com";
pub const SERVICE_ACCOUNT: &str = "autopilot@presence-autopilot-test.iam.gserviceaccount.com";
/// The public half of `tests/fixtures/google/test-service-account.json`.
pub const SERVICE_ACCOUNT_PUBLIC_KEY: &str =
    include_str!("../../fixtures/google/test-service-account.pub.pem");
pub const SCOPE_CALENDAR_READONLY: &str = "https://www.googleapis.com/auth/calendar.readonly";
pub const SCOPE_EVENTS_READONLY: &str = "https://www.googleapis.com/auth/calendar.events.readonly";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Seed {
    /// The domain's users; each has a primary calendar whose id is the address.
    pub users: Vec<String>,
    pub service_accounts: Vec<ServiceAccountSeed>,
    /// Longest channel lifetime granted by `events.watch` (no documented maximum; reference §6).
    pub max_channel_ttl_seconds: i64,
    /// Requests per user per minute on `/calendar/v3` (reference §7: 600).
    pub rate_limit_per_user_per_minute: u32,
    /// 403 or 429 once the per-user limit is hit (Google answers both).
    pub rate_limit_status: u16,
    /// Delays before each retry of a notification answered 500/502/503/504.
    pub delivery_retry_ms: Vec<u64>,
    /// A notification endpoint slower than this counts as failed.
    pub notification_timeout_ms: u64,
    /// `singleEvents` expansion without `timeMin`/`timeMax`: now − before … now + after.
    pub horizon_days_before: i64,
    pub horizon_days_after: i64,
}

impl Default for Seed {
    fn default() -> Self {
        Self {
            users: [AGENT1, AGENT2, AGENT3].map(str::to_owned).to_vec(),
            service_accounts: vec![ServiceAccountSeed {
                client_email: SERVICE_ACCOUNT.to_owned(),
                public_key_pem: SERVICE_ACCOUNT_PUBLIC_KEY.to_owned(),
                scopes: vec![
                    SCOPE_CALENDAR_READONLY.to_owned(),
                    SCOPE_EVENTS_READONLY.to_owned(),
                ],
            }],
            max_channel_ttl_seconds: 604_800,
            rate_limit_per_user_per_minute: 600,
            rate_limit_status: 403,
            delivery_retry_ms: vec![500, 2000, 8000],
            notification_timeout_ms: 5000,
            horizon_days_before: 1,
            horizon_days_after: 90,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceAccountSeed {
    pub client_email: String,
    /// PEM (`-----BEGIN PUBLIC KEY-----`) that verifies the account's RS256 assertions.
    pub public_key_pem: String,
    /// Scopes authorised for the account's client id (domain-wide delegation).
    pub scopes: Vec<String>,
}

impl Seed {
    /// Rejects seeds the simulator cannot serve sensibly.
    pub fn validate(&self) -> Result<(), String> {
        for (index, user) in self.users.iter().enumerate() {
            if !is_email(user) {
                return Err(format!("users[{index}]: {user:?} is not an email address"));
            }
            if self.users[..index]
                .iter()
                .any(|other| other.eq_ignore_ascii_case(user))
            {
                return Err(format!("users[{index}]: duplicate {user}"));
            }
        }
        for (index, account) in self.service_accounts.iter().enumerate() {
            if !is_email(&account.client_email) {
                return Err(format!(
                    "service_accounts[{index}].client_email: not an email address"
                ));
            }
            if jsonwebtoken::DecodingKey::from_rsa_pem(account.public_key_pem.as_bytes()).is_err() {
                return Err(format!(
                    "service_accounts[{index}].public_key_pem: not an RSA public key in PEM"
                ));
            }
        }
        if self.max_channel_ttl_seconds < 1 || self.rate_limit_per_user_per_minute == 0 {
            return Err(
                "max_channel_ttl_seconds and rate_limit_per_user_per_minute must be at least 1"
                    .to_owned(),
            );
        }
        if ![403, 429].contains(&self.rate_limit_status) {
            return Err("rate_limit_status: must be 403 or 429".to_owned());
        }
        if self.horizon_days_before < 0 || self.horizon_days_after < 1 {
            return Err("horizon_days_before ≥ 0 and horizon_days_after ≥ 1".to_owned());
        }
        Ok(())
    }
}

/// `local@domain` with something on both sides; enough for a seed check.
pub fn is_email(text: &str) -> bool {
    text.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !text.contains(char::is_whitespace)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_seed_is_valid_and_round_trips_through_json() {
        let seed = Seed::default();
        assert_eq!(seed.validate(), Ok(()));
        let text = serde_json::to_string(&seed).expect("serialises");
        let back: Seed = serde_json::from_str(&text).expect("parses");
        assert_eq!(back.users, seed.users);
        let partial: Seed = serde_json::from_str(r#"{"users":["a@b.example"]}"#).expect("parses");
        assert_eq!(partial.rate_limit_per_user_per_minute, 600);
        assert_eq!(partial.service_accounts.len(), 1);
    }
}
