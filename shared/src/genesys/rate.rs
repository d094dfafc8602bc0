//! Client-side rate limiting from the platform's own answers: every API response reports the
//! token's window (`inin-ratelimit-allowed`, `-count`, `-reset`) and a 429 its `Retry-After`.
//! Calls wait for the window to reset instead of drawing 429s, so a burst spends the token's
//! budget evenly and never storms. The limit is per token (reference §6); every call made
//! with the client's token goes through this one budget.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;

/// The token's window as last reported, plus the calls sent since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    allowed: u32,
    used: u32,
    resets_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub(super) struct RateBudget {
    window: Mutex<Option<Window>>,
}

impl RateBudget {
    /// Takes one call from the budget, or says how long to wait for the window to reset.
    pub(super) fn take(&self, now: DateTime<Utc>) -> Result<(), Duration> {
        let mut window = self.lock();
        let Some(current) = window.as_mut().filter(|w| now < w.resets_at) else {
            // Nothing known, or the window reset: the next answer tells.
            return Ok(());
        };
        if current.used >= current.allowed {
            return Err((current.resets_at - now).to_std().unwrap_or_default());
        }
        current.used += 1;
        Ok(())
    }

    /// Learns the window from a response's `inin-ratelimit-*` headers (absent: nothing learned).
    pub(super) fn observe(&self, headers: &HeaderMap, now: DateTime<Utc>) {
        let number =
            |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        let (Some(allowed), Some(count), Some(reset)) = (
            number("inin-ratelimit-allowed"),
            number("inin-ratelimit-count"),
            number("inin-ratelimit-reset"),
        ) else {
            return;
        };
        let clamp = |value: u64| u32::try_from(value).unwrap_or(u32::MAX);
        let resets_at = now
            + chrono::Duration::seconds(
                i64::try_from(reset).unwrap_or(i64::MAX / 1000).min(86_400),
            );
        let mut window = self.lock();
        // Calls still in flight were counted here but not yet by the platform: keep the larger.
        let used = match *window {
            Some(known) if now < known.resets_at => known.used.max(clamp(count)),
            _ => clamp(count),
        };
        *window = Some(Window {
            allowed: clamp(allowed),
            used,
            resets_at,
        });
    }

    /// A 429: nothing more until `retry_after` has passed.
    pub(super) fn refused(&self, retry_after: Duration, now: DateTime<Utc>) {
        let resets_at =
            now + chrono::Duration::from_std(retry_after).unwrap_or(chrono::Duration::MAX);
        let mut window = self.lock();
        let allowed = window.map_or(0, |w| w.allowed);
        *window = Some(Window {
            allowed,
            used: allowed,
            resets_at,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Window>> {
        // Every change is one assignment, so a poisoned lock still holds a whole window.
        self.window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).expect("valid time")
    }

    fn headers(allowed: u32, count: u32, reset: u64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("inin-ratelimit-allowed", HeaderValue::from(allowed));
        headers.insert("inin-ratelimit-count", HeaderValue::from(count));
        headers.insert("inin-ratelimit-reset", HeaderValue::from(reset));
        headers
    }

    #[test]
    fn unknown_budgets_let_calls_through() {
        let budget = RateBudget::default();
        assert_eq!(budget.take(at(0)), Ok(()));
        budget.observe(&HeaderMap::new(), at(0));
        assert_eq!(budget.take(at(0)), Ok(()));
    }

    #[test]
    fn a_spent_window_waits_for_its_reset_then_opens() {
        let budget = RateBudget::default();
        budget.observe(&headers(3, 1, 40), at(0));
        assert_eq!(budget.take(at(1)), Ok(()));
        assert_eq!(budget.take(at(1)), Ok(()));
        assert_eq!(budget.take(at(2)), Err(Duration::from_secs(38)));
        assert_eq!(budget.take(at(40)), Ok(()), "the window reset");
    }

    #[test]
    fn calls_in_flight_are_not_forgotten_by_an_older_count() {
        let budget = RateBudget::default();
        budget.observe(&headers(3, 1, 60), at(0));
        assert_eq!(budget.take(at(0)), Ok(()));
        assert_eq!(budget.take(at(0)), Ok(()));
        // An answer to the first call arrives, counting 2: the local 3 stands.
        budget.observe(&headers(3, 2, 60), at(0));
        assert!(budget.take(at(0)).is_err());
    }

    #[test]
    fn a_refusal_closes_the_window_for_retry_after() {
        let budget = RateBudget::default();
        budget.observe(&headers(300, 10, 60), at(0));
        budget.refused(Duration::from_secs(5), at(0));
        assert_eq!(budget.take(at(1)), Err(Duration::from_secs(4)));
        assert_eq!(budget.take(at(5)), Ok(()));
    }
}
