//! Time as a port: production uses the system clock (`clock::SystemClock`), tests a manual one
//! (`clock::ManualClock`), so retry waits, token expiry and deadlines are tested without
//! sleeping.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

#[async_trait]
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
    async fn sleep(&self, duration: Duration);
}

/// The moment by which a piece of work must be done (a Lambda's deadline), on the injected clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(pub DateTime<Utc>);

impl Deadline {
    pub fn after(clock: &dyn Clock, budget: Duration) -> Self {
        Self(clock.now() + chrono::Duration::from_std(budget).unwrap_or(chrono::Duration::MAX))
    }

    /// A Lambda invocation's deadline less `margin` (time to answer). Lambda sends epoch
    /// milliseconds; the `cargo lambda watch` emulator sends the timeout itself (e.g. 600000),
    /// so a value too small to be an epoch time (before September 2001) counts from `now`.
    pub fn from_invocation(deadline_ms: u64, now: DateTime<Utc>, margin: Duration) -> Self {
        const EPOCH_MS_FLOOR: u64 = 1_000_000_000_000;
        let raw = i64::try_from(deadline_ms).unwrap_or(i64::MAX);
        let millis = if deadline_ms < EPOCH_MS_FLOOR {
            now.timestamp_millis().saturating_add(raw)
        } else {
            raw
        };
        let margin_ms = i64::try_from(margin.as_millis()).unwrap_or(i64::MAX);
        Self(DateTime::from_timestamp_millis(millis.saturating_sub(margin_ms)).unwrap_or(now))
    }

    /// Time left before the deadline, zero once it has passed.
    pub fn remaining(&self, clock: &dyn Clock) -> Duration {
        (self.0 - clock.now()).to_std().unwrap_or(Duration::ZERO)
    }
}
