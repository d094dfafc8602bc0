//! The dead-letter queues replayed safely (`autopilot dlq list|show|replay`): which DLQ is
//! which, where its messages go back to, and a paced replay that never deletes a message
//! before its re-send was accepted.
//!
//! `kinds` knows the queues and their targets, `report` what a run did, `pacer` how fast it
//! goes; this module is the use case over the `DeadLetters` port.

mod kinds;
mod pacer;
mod report;

pub use kinds::{DeadLetterKind, KnownQueue, ReplayVia, find, resolve_target};
pub use pacer::Pacer;
pub use report::{ReplayOptions, ReplayOutcome, ReplayReport};

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::clock::Clock;
use crate::ports::{BusEvent, DeadLetter, DeadLetterQueue, DeadLetters, ReplayTarget, StoreError};

/// SQS returns at most 10 messages per receive.
const RECEIVE_BATCH: usize = 10;

/// The operator's use case over the dead-letter queues.
#[derive(Debug, Clone)]
pub struct DeadLetterService {
    pub queues: Arc<dyn DeadLetters>,
    pub clock: Arc<dyn Clock>,
}

/// Messages received in one run: each id once, with its latest receipt handle.
#[derive(Debug, Default)]
struct Received {
    seen: HashSet<String>,
    to_release: BTreeMap<String, DeadLetter>,
}

impl Received {
    /// The letters not seen before in this run; those seen again are only released later.
    fn fresh(&mut self, letters: Vec<DeadLetter>) -> Vec<DeadLetter> {
        let mut fresh = Vec::new();
        for letter in letters {
            if self.seen.insert(letter.message_id.clone()) {
                fresh.push(letter);
            } else {
                self.to_release.insert(letter.message_id.clone(), letter);
            }
        }
        fresh
    }
}

impl DeadLetterService {
    /// The stack's dead-letter queues (names starting with `prefix`, the stack name).
    pub async fn list(&self, prefix: &str) -> Result<Vec<KnownQueue>, StoreError> {
        let queues = self.queues.list(prefix).await?;
        Ok(queues
            .into_iter()
            .filter_map(|queue| {
                DeadLetterKind::classify(&queue.name).map(|kind| KnownQueue { kind, queue })
            })
            .collect())
    }

    /// Up to `max` messages, left in the queue and visible again when this returns.
    pub async fn show(
        &self,
        dlq: &DeadLetterQueue,
        max: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let mut received = Received::default();
        let mut shown = Vec::new();
        let mut failure = None;
        while shown.len() < max {
            let want = (max - shown.len()).min(RECEIVE_BATCH);
            match self.queues.peek(&dlq.url, want).await {
                Ok(letters) => {
                    let fresh = received.fresh(letters);
                    if fresh.is_empty() {
                        break;
                    }
                    shown.extend(fresh);
                }
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
        for letter in &shown {
            received
                .to_release
                .entry(letter.message_id.clone())
                .or_insert_with(|| letter.clone());
        }
        self.release_all(&dlq.url, received).await;
        match failure {
            Some(err) => Err(err),
            None => Ok(shown),
        }
    }

    /// Resolves `dlq`'s target (refusing before any receive if it cannot), then replays.
    pub async fn replay(
        &self,
        queues: &[KnownQueue],
        dlq: &KnownQueue,
        bus_name: Option<&str>,
        options: &ReplayOptions,
    ) -> Result<ReplayReport, StoreError> {
        let target = resolve_target(queues, dlq, bus_name)?;
        self.replay_to(&dlq.queue, &target, options).await
    }

    /// Re-sends up to `options.max_messages` letters to `target`, paced; each is deleted only
    /// after its re-send was accepted. Stops when the DLQ has nothing new to give.
    pub async fn replay_to(
        &self,
        dlq: &DeadLetterQueue,
        target: &ReplayTarget,
        options: &ReplayOptions,
    ) -> Result<ReplayReport, StoreError> {
        if matches!(target, ReplayTarget::Queue { url } if *url == dlq.url) {
            return Err(StoreError::Invalid(format!(
                "refusing to replay {} into itself",
                dlq.name
            )));
        }
        let mut report = ReplayReport {
            queue: dlq.name.clone(),
            target: target.clone(),
            outcomes: Vec::new(),
            stopped: None,
            warnings: Vec::new(),
        };
        let mut pacer = Pacer::new(self.clock.as_ref(), options.per_second);
        let mut received = Received::default();
        while report.outcomes.len() < options.max_messages {
            let want = (options.max_messages - report.outcomes.len()).min(RECEIVE_BATCH);
            let letters = match self.queues.peek(&dlq.url, want).await {
                Ok(letters) => received.fresh(letters),
                Err(err) => {
                    report.stopped = Some(format!("receiving from {}: {err}", dlq.name));
                    break;
                }
            };
            if letters.is_empty() {
                break;
            }
            for letter in letters {
                let outcome = self.replay_one(&dlq.url, target, &letter, &mut pacer).await;
                if matches!(outcome, ReplayOutcome::NotSent { .. }) {
                    received
                        .to_release
                        .insert(letter.message_id.clone(), letter);
                }
                report.outcomes.push(outcome);
            }
        }
        report.warnings = self.release_all(&dlq.url, received).await;
        Ok(report)
    }

    async fn replay_one(
        &self,
        dlq_url: &str,
        target: &ReplayTarget,
        letter: &DeadLetter,
        pacer: &mut Pacer<'_>,
    ) -> ReplayOutcome {
        let message_id = letter.message_id.clone();
        // A body that cannot be an event never reaches the bus; it stays for a person to read.
        if let ReplayTarget::Bus { .. } = target
            && let Err(err) = BusEvent::parse(&letter.body)
        {
            tracing::warn!(%message_id, error = %err, "dead letter not replayed");
            return ReplayOutcome::NotSent {
                message_id,
                error: err.to_string(),
            };
        }
        pacer.ready().await;
        let new_id = match self.queues.resend(target, letter).await {
            Ok(new_id) => new_id,
            Err(err) => {
                tracing::warn!(%message_id, error = %err, "dead letter not replayed");
                return ReplayOutcome::NotSent {
                    message_id,
                    error: err.to_string(),
                };
            }
        };
        match self.queues.delete(dlq_url, letter).await {
            Ok(()) => {
                tracing::info!(%message_id, %new_id, "dead letter replayed");
                ReplayOutcome::Replayed { message_id, new_id }
            }
            Err(err) => {
                tracing::warn!(%message_id, %new_id, error = %err, "replayed, not deleted");
                ReplayOutcome::SentNotDeleted {
                    message_id,
                    new_id,
                    error: err.to_string(),
                }
            }
        }
    }

    /// Makes every kept letter visible again now rather than after the visibility timeout.
    async fn release_all(&self, dlq_url: &str, received: Received) -> Vec<String> {
        let mut warnings = Vec::new();
        for (message_id, letter) in received.to_release {
            if let Err(err) = self.queues.release(dlq_url, &letter).await {
                warnings.push(format!(
                    "{message_id}: still hidden until its visibility timeout ends: {err}"
                ));
            }
        }
        warnings
    }
}

#[cfg(test)]
mod tests;
