//! The clocks behind the `Clock` port (`ports/clock.rs`): the system's, and a manual one for
//! tests; and the deadline of a Lambda invocation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use crate::ports::{Clock, Deadline};

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// A clock that only moves when told to; `sleep` advances it at once and records the wait.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualClockState>>,
}

#[derive(Debug)]
struct ManualClockState {
    now: DateTime<Utc>,
    sleeps: Vec<Duration>,
}

impl ManualClock {
    pub fn starting_at(now: DateTime<Utc>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(ManualClockState {
                now,
                sleeps: Vec::new(),
            })),
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut state = self.lock();
        state.now += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
    }

    /// Every wait that `sleep` was asked for, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.lock().sleeps.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualClockState> {
        // A poisoned lock only means another test thread panicked; the time value is still sound.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.lock().now
    }

    async fn sleep(&self, duration: Duration) {
        let mut state = self.lock();
        state.sleeps.push(duration);
        state.now += chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
    }
}

/// Work stops this long before a Lambda invocation's deadline, leaving time to answer.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(500);

impl Deadline {
    /// The deadline every function works to: the invocation's, less [`ANSWER_MARGIN`].
    pub fn of_invocation(context: &lambda_runtime::Context, clock: &dyn Clock) -> Self {
        Self::from_invocation(context.deadline, clock.now(), ANSWER_MARGIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocation_deadline_is_epoch_ms_or_relative_from_the_emulator() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("valid");
        let margin = Duration::from_millis(500);
        let absolute = Deadline::from_invocation(1_800_000_060_000, now, margin);
        assert_eq!((absolute.0 - now).num_milliseconds(), 59_500);
        let relative = Deadline::from_invocation(600_000, now, margin);
        assert_eq!((relative.0 - now).num_milliseconds(), 599_500);
    }

    #[tokio::test]
    async fn manual_clock_sleep_advances_and_records() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").map(|t| t.to_utc());
        let clock = ManualClock::starting_at(start.expect("valid literal"));
        let deadline = Deadline::after(&clock, Duration::from_secs(5));

        clock.sleep(Duration::from_secs(2)).await;

        assert_eq!(clock.sleeps(), vec![Duration::from_secs(2)]);
        assert_eq!(deadline.remaining(&clock), Duration::from_secs(3));
        clock.advance(Duration::from_secs(10));
        assert_eq!(deadline.remaining(&clock), Duration::ZERO);
    }
}
