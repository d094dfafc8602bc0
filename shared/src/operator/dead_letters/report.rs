//! What a replay may do (`ReplayOptions`) and what it did (`ReplayReport`), letter by letter.

use std::fmt::Write as _;
use std::num::NonZeroU32;

use crate::ports::ReplayTarget;

/// How much, how fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayOptions {
    pub max_messages: usize,
    /// At most this many re-sends per second (a burst of replays must not become a burst of
    /// Genesys calls).
    pub per_second: NonZeroU32,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            max_messages: 100,
            per_second: NonZeroU32::MIN.saturating_add(9),
        }
    }
}

/// What became of one dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// Re-sent and deleted from the DLQ.
    Replayed { message_id: String, new_id: String },
    /// Not sent; still in the DLQ, visible again.
    NotSent { message_id: String, error: String },
    /// Re-sent, but the delete failed: it is in the DLQ and at its target.
    SentNotDeleted {
        message_id: String,
        new_id: String,
        error: String,
    },
}

impl ReplayOutcome {
    pub fn message_id(&self) -> &str {
        match self {
            Self::Replayed { message_id, .. }
            | Self::NotSent { message_id, .. }
            | Self::SentNotDeleted { message_id, .. } => message_id,
        }
    }
}

/// One replay run, message by message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// The DLQ's name.
    pub queue: String,
    pub target: ReplayTarget,
    pub outcomes: Vec<ReplayOutcome>,
    /// Why the run ended before the DLQ was empty or the maximum reached.
    pub stopped: Option<String>,
    /// Messages that could not be made visible again (they return after the timeout).
    pub warnings: Vec<String>,
}

impl ReplayReport {
    pub fn replayed(&self) -> usize {
        self.count(|o| matches!(o, ReplayOutcome::Replayed { .. }))
    }

    pub fn not_sent(&self) -> usize {
        self.count(|o| matches!(o, ReplayOutcome::NotSent { .. }))
    }

    pub fn sent_not_deleted(&self) -> usize {
        self.count(|o| matches!(o, ReplayOutcome::SentNotDeleted { .. }))
    }

    fn count(&self, which: impl Fn(&ReplayOutcome) -> bool) -> usize {
        self.outcomes.iter().filter(|o| which(o)).count()
    }

    /// A few lines for the person who ran it.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "{}: {} replayed to {}",
            self.queue,
            self.replayed(),
            self.target
        );
        if self.not_sent() > 0 {
            let _ = write!(
                text,
                "\n{} not sent: left in the dead-letter queue, visible again",
                self.not_sent()
            );
        }
        if self.sent_not_deleted() > 0 {
            let _ = write!(
                text,
                "\n{} re-sent but still in the dead-letter queue (delete failed): consumers are \
                 idempotent, so a second replay is harmless",
                self.sent_not_deleted()
            );
        }
        if let Some(reason) = &self.stopped {
            let _ = write!(text, "\nstopped early: {reason}");
        }
        text
    }
}
