//! Pacing re-sends on the injected clock, so a replay never becomes a burst of Genesys calls.

use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::Clock;

/// Spaces calls at least `1 s / per_second` apart on the injected clock.
#[derive(Debug)]
pub struct Pacer<'a> {
    clock: &'a dyn Clock,
    interval: Duration,
    next: Option<DateTime<Utc>>,
}

impl<'a> Pacer<'a> {
    pub fn new(clock: &'a dyn Clock, per_second: NonZeroU32) -> Self {
        Self {
            clock,
            interval: Duration::from_secs(1) / per_second.get(),
            next: None,
        }
    }

    /// Waits until the next call may go; the first never waits.
    pub async fn ready(&mut self) {
        if let Some(next) = self.next {
            let wait = (next - self.clock.now()).to_std().unwrap_or(Duration::ZERO);
            if !wait.is_zero() {
                self.clock.sleep(wait).await;
            }
        }
        let after = chrono::Duration::from_std(self.interval).unwrap_or(chrono::Duration::MAX);
        self.next = Some(self.clock.now() + after);
    }
}
