//! Which dead-letter queue is which (by the logical id in its CloudFormation name), how a person
//! names one, and where its messages go back to.

use crate::ports::{DeadLetterQueue, ReplayTarget, StoreError};

/// The stack's dead-letter queues, by the logical id in their CloudFormation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeadLetterKind {
    Burst,
    Notifications,
    CalendarSync,
    Events,
    Scheduler,
    TransitionAsync,
    ScheduleCheckAsync,
    OutboxRelay,
}

/// Where a kind of dead letter goes back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayVia {
    /// The queue whose redrive policy sent it here.
    SourceQueue,
    /// The transition burst queue (transition reads EventBridge-event bodies from it).
    BurstQueue,
    /// PutEvents on the stack's bus (`EVENT_BUS_NAME`).
    Bus,
    /// Nowhere: it holds descriptions of failed stream batches, not the messages themselves.
    Nowhere,
}

impl DeadLetterKind {
    pub const ALL: [Self; 8] = [
        Self::Burst,
        Self::Notifications,
        Self::CalendarSync,
        Self::Events,
        Self::Scheduler,
        Self::TransitionAsync,
        Self::ScheduleCheckAsync,
        Self::OutboxRelay,
    ];

    pub fn logical_id(self) -> &'static str {
        match self {
            Self::Burst => "BurstDLQ",
            Self::Notifications => "NotificationsDLQ",
            Self::CalendarSync => "SyncDeadLetterQueue",
            Self::Events => "EventsDLQ",
            Self::Scheduler => "SchedulerDLQ",
            Self::TransitionAsync => "TransitionAsyncDLQ",
            Self::ScheduleCheckAsync => "ScheduleCheckAsyncDLQ",
            Self::OutboxRelay => "OutboxRelayDLQ",
        }
    }

    /// What dead-letters there, for people.
    pub fn description(self) -> &'static str {
        match self {
            Self::Burst => "calendar and presence triggers transition failed to process",
            Self::Notifications => "notifications webhook-dispatch could not deliver",
            Self::CalendarSync => "calendar sync requests that kept failing",
            Self::Events => "bus events a rule could not deliver to its target",
            Self::Scheduler => "planned starts and ends the Scheduler could not deliver",
            Self::TransitionAsync => {
                "scheduled transition invocations that failed (stacks whose schedules invoked transition directly)"
            }
            Self::ScheduleCheckAsync => "calendar changes and sweeps schedule-check failed",
            Self::OutboxRelay => {
                "table stream batches whose notifications outbox-relay could not queue"
            }
        }
    }

    pub fn replay_via(self) -> ReplayVia {
        match self {
            Self::Burst | Self::Notifications | Self::CalendarSync => ReplayVia::SourceQueue,
            Self::Scheduler | Self::TransitionAsync => ReplayVia::BurstQueue,
            Self::Events | Self::ScheduleCheckAsync => ReplayVia::Bus,
            Self::OutboxRelay => ReplayVia::Nowhere,
        }
    }

    /// CloudFormation names queues `<stack>-<LogicalId>-<suffix>`; logical ids have no `-`.
    pub fn classify(queue_name: &str) -> Option<Self> {
        let segments: Vec<&str> = queue_name.split('-').collect();
        Self::ALL
            .into_iter()
            .find(|kind| segments.contains(&kind.logical_id()))
    }
}

/// A queue of the stack recognised as one of its dead-letter queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownQueue {
    pub kind: DeadLetterKind,
    pub queue: DeadLetterQueue,
}

/// The DLQ `query` names: its URL, its name, or its logical id (`BurstDLQ`, any case).
pub fn find<'a>(queues: &'a [KnownQueue], query: &str) -> Result<&'a KnownQueue, StoreError> {
    let matches: Vec<&KnownQueue> = queues
        .iter()
        .filter(|q| {
            q.queue.url == query
                || q.queue.name == query
                || q.kind.logical_id().eq_ignore_ascii_case(query)
        })
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(StoreError::NotFound {
            what: format!(
                "dead-letter queue {query:?} (known: {})",
                names(queues.iter().map(|q| q.queue.name.as_str()))
            ),
        }),
        many => Err(StoreError::Invalid(format!(
            "{query:?} names several queues ({}); give the full name",
            names(many.iter().map(|q| q.queue.name.as_str()))
        ))),
    }
}

/// Where `dlq`'s messages go back to; an error names what is missing. `bus_name` is the
/// stack's bus (`EVENT_BUS_NAME`), needed only for bus targets.
pub fn resolve_target(
    queues: &[KnownQueue],
    dlq: &KnownQueue,
    bus_name: Option<&str>,
) -> Result<ReplayTarget, StoreError> {
    match dlq.kind.replay_via() {
        ReplayVia::SourceQueue => only_source(&dlq.queue),
        ReplayVia::BurstQueue if !dlq.queue.sources.is_empty() => only_source(&dlq.queue),
        ReplayVia::BurstQueue => {
            let burst = queues
                .iter()
                .find(|q| q.kind == DeadLetterKind::Burst)
                .ok_or_else(|| StoreError::NotFound {
                    what: format!(
                        "the burst queue to replay {} into (no BurstDLQ among the listed queues)",
                        dlq.queue.name
                    ),
                })?;
            only_source(&burst.queue)
        }
        ReplayVia::Bus => match bus_name.map(str::trim) {
            Some(name) if !name.is_empty() => Ok(ReplayTarget::Bus {
                name: name.to_owned(),
            }),
            _ => Err(StoreError::Invalid(format!(
                "replaying {} needs the event bus name (EVENT_BUS_NAME)",
                dlq.queue.name
            ))),
        },
        ReplayVia::Nowhere => Err(StoreError::Invalid(format!(
            "{} holds descriptions of failed stream batches (shard and sequence range), not \
             messages to send again: see docs/operations.md, \"Outbox relay\"",
            dlq.queue.name
        ))),
    }
}

fn only_source(dlq: &DeadLetterQueue) -> Result<ReplayTarget, StoreError> {
    match dlq.sources.as_slice() {
        [url] => Ok(ReplayTarget::Queue { url: url.clone() }),
        [] => Err(StoreError::NotFound {
            what: format!(
                "the source queue of {} (no queue's redrive policy points to it)",
                dlq.name
            ),
        }),
        many => Err(StoreError::Invalid(format!(
            "{} is the dead-letter queue of {} queues ({}); cannot tell which to replay into",
            dlq.name,
            many.len(),
            names(many.iter().map(String::as_str))
        ))),
    }
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}
