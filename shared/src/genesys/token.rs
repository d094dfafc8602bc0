//! Client-credentials tokens: cached, refreshed before expiry, and fetched by exactly one task
//! when many ask at once (the others wait on the same lock and reuse its result).

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

/// A bearer token; `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct AccessToken {
    pub value: SecretString,
    /// Increases with every token fetched, so a 401 only invalidates the token it was about.
    pub generation: u64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"[redacted]")
            .field("generation", &self.generation)
            .finish()
    }
}

impl AccessToken {
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.value.expose_secret())
    }
}

#[derive(Debug)]
struct Cached {
    token: AccessToken,
    refresh_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    slot: Mutex<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    cached: Option<Cached>,
    generation: u64,
}

/// A fetched token and its lifetime in seconds.
pub(crate) struct Fetched {
    pub value: SecretString,
    pub expires_in: u64,
}

impl TokenCache {
    /// The cached token if still fresh, else one fetched through `fetch` while holding the
    /// lock, so concurrent callers make one token request between them.
    pub async fn get<F, Fut, E>(&self, now: DateTime<Utc>, fetch: F) -> Result<AccessToken, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Fetched, E>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(cached) = slot.cached.as_ref().filter(|c| now < c.refresh_at) {
            return Ok(cached.token.clone());
        }
        let fetched = fetch().await?;
        slot.generation += 1;
        let token = AccessToken {
            value: fetched.value,
            generation: slot.generation,
        };
        slot.cached = Some(Cached {
            token: token.clone(),
            refresh_at: refresh_at(now, fetched.expires_in),
        });
        Ok(token)
    }

    /// Drops the cached token if it is still the one that was refused.
    pub async fn invalidate(&self, refused: &AccessToken) {
        let mut slot = self.slot.lock().await;
        if slot
            .cached
            .as_ref()
            .is_some_and(|c| c.token.generation == refused.generation)
        {
            slot.cached = None;
        }
    }
}

/// Refresh a tenth of the lifetime early (at most five minutes), so a token never expires
/// mid-call.
fn refresh_at(now: DateTime<Utc>, expires_in: u64) -> DateTime<Utc> {
    let margin = (expires_in / 10).min(300);
    let usable = i64::try_from(expires_in.saturating_sub(margin)).unwrap_or(i64::MAX / 2_000);
    now + chrono::Duration::seconds(usable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_happens_before_expiry() {
        let now = Utc::now();
        assert_eq!(
            refresh_at(now, 86399) - now,
            chrono::Duration::seconds(86099)
        );
        assert_eq!(refresh_at(now, 300) - now, chrono::Duration::seconds(270));
    }

    #[test]
    fn debug_hides_the_token() {
        let token = AccessToken {
            value: SecretString::from("sekrit-token"),
            generation: 1,
        };
        assert!(!format!("{token:?}").contains("sekrit"));
    }
}
