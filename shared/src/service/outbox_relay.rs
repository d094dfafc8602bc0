//! The `outbox-relay` use case: a committed state's new notifications, read from the table's
//! stream, go to the notification queue. The transition writes its notifications into the state
//! it commits (the outbox) and sends nothing itself; the stream holds every committed write once,
//! in order per user, so no notification of a commit is lost and none of a rolled-back one is
//! sent. Delivery is at least once: a retried batch sends again, and receivers dedupe on the
//! notification id.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;

use crate::ports::NotificationQueue;
use crate::state::{Notification, NotificationId};

/// One change of a user's state item, as the stream recorded it: the `state` attribute (JSON)
/// before and after the write. `None`: the item did not exist (before) or was removed (after).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// The stream's sequence number: what a partial failure is reported by.
    pub sequence: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// What relaying a batch came to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RelayReport {
    /// Notifications queued.
    pub relayed: usize,
    /// Changes whose state did not read; logged with their sequence and skipped (never retried:
    /// they would block the user's stream and read no better the next time).
    pub unreadable: Vec<String>,
    /// The first change not relayed in full: it and every later change of the batch are
    /// delivered again (`ReportBatchItemFailures`), so a user's notifications stay in order.
    pub retry_from: Option<String>,
}

/// Only the outbox of a stored state: the rest of it is the transition's business.
#[derive(Deserialize)]
struct Outboxed {
    #[serde(default)]
    outbox: Vec<Notification>,
}

#[derive(Debug, Clone)]
pub struct OutboxRelay {
    queue: Arc<dyn NotificationQueue>,
}

impl OutboxRelay {
    pub fn new(queue: Arc<dyn NotificationQueue>) -> Self {
        Self { queue }
    }

    /// Queues the notifications each change added to its state's outbox, in stream order.
    pub async fn relay(&self, changes: &[StateChange]) -> RelayReport {
        let mut report = RelayReport::default();
        let mut pending: Vec<(usize, Notification)> = Vec::new();
        for (index, change) in changes.iter().enumerate() {
            match added_notifications(change) {
                Ok(added) => pending.extend(added.into_iter().map(|n| (index, n))),
                Err(reason) => {
                    tracing::error!(sequence = %change.sequence, %reason, "a state change that does not read; its notifications, if any, are not relayed");
                    report.unreadable.push(change.sequence.clone());
                }
            }
        }
        if pending.is_empty() {
            return report;
        }
        let notifications: Vec<Notification> = pending.iter().map(|(_, n)| n.clone()).collect();
        let failed: HashSet<NotificationId> = match self.queue.send(&notifications).await {
            Ok(outcomes) => outcomes
                .iter()
                .filter(|o| !o.is_sent())
                .map(|o| o.notification_id())
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "the notification queue refused the batch; it is delivered again");
                notifications.iter().map(|n| n.notification_id).collect()
            }
        };
        let first_failed = pending
            .iter()
            .find(|(_, n)| failed.contains(&n.notification_id))
            .map(|(index, _)| *index);
        report.relayed = match first_failed {
            Some(index) => {
                report.retry_from = Some(changes[index].sequence.clone());
                pending.iter().filter(|(i, _)| *i < index).count()
            }
            None => pending.len(),
        };
        report
    }
}

/// The notifications in the state after the change that were not in it before.
fn added_notifications(change: &StateChange) -> Result<Vec<Notification>, String> {
    let Some(after) = &change.after else {
        return Ok(Vec::new());
    };
    let after = outbox_of(after)?;
    let before: HashSet<NotificationId> = match &change.before {
        Some(before) => outbox_of(before)?
            .into_iter()
            .map(|n| n.notification_id)
            .collect(),
        None => HashSet::new(),
    };
    Ok(after
        .into_iter()
        .filter(|n| !before.contains(&n.notification_id))
        .collect())
}

fn outbox_of(state: &str) -> Result<Vec<Notification>, String> {
    serde_json::from_str::<Outboxed>(state)
        .map(|s| s.outbox)
        .map_err(|error| format!("state: {error}"))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;
    use crate::fakes::FakeQueue;
    use crate::model::UserId;
    use crate::state::NotificationKind;

    fn notification(sequence: u64) -> Notification {
        let user = UserId::parse("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f").expect("user");
        let at = Utc
            .with_ymd_and_hms(2026, 12, 3, 9, 0, 0)
            .single()
            .expect("time");
        Notification::for_change(
            user,
            at,
            sequence,
            NotificationKind::PresenceApplied,
            json!({}),
        )
    }

    fn state(outbox: &[&Notification]) -> Option<String> {
        Some(json!({"version": 3, "outbox": outbox}).to_string())
    }

    fn change(sequence: &str, before: Option<String>, after: Option<String>) -> StateChange {
        StateChange {
            sequence: sequence.to_owned(),
            before,
            after,
        }
    }

    #[tokio::test]
    async fn only_notifications_a_change_added_are_queued_in_stream_order() {
        let queue = Arc::new(FakeQueue::default());
        let (first, second) = (notification(1), notification(2));
        let changes = [
            // A claim rewrites the state with the outbox it read: nothing new.
            change("1", state(&[&first]), state(&[&first])),
            change("2", state(&[&first]), state(&[&second])),
            change("3", None, state(&[&first])),
            // Removed, or a state without an outbox (written before outboxes existed).
            change("4", state(&[&first]), None),
            change("5", None, Some(json!({"version": 1}).to_string())),
        ];
        let report = OutboxRelay::new(queue.clone()).relay(&changes).await;
        assert_eq!(report.relayed, 2);
        assert_eq!(report.retry_from, None);
        assert!(report.unreadable.is_empty());
        let sent: Vec<_> = queue.sent().iter().map(|n| n.sequence).collect();
        assert_eq!(sent, vec![2, 1]);
    }

    #[tokio::test]
    async fn a_failed_send_retries_from_its_change_and_an_unreadable_one_is_skipped() {
        let queue = Arc::new(FakeQueue::default());
        let (a, b, c) = (notification(1), notification(2), notification(3));
        queue.fail(b.notification_id);
        let changes = [
            change("10", None, state(&[&a])),
            change("11", None, Some("{not json".to_owned())),
            change("12", None, state(&[&b])),
            change("13", None, state(&[&c])),
        ];
        let report = OutboxRelay::new(queue.clone()).relay(&changes).await;
        assert_eq!(report.retry_from.as_deref(), Some("12"));
        assert_eq!(
            report.relayed, 1,
            "only what precedes the failed change counts"
        );
        assert_eq!(report.unreadable, vec!["11".to_owned()]);
    }
}
