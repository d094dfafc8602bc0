//! The pure decision: given an event, the policy, the agent's shift and routing status, the live
//! presence and what we stored, what to do — and the state to store next. No I/O here.
//!
//! - here: the vocabulary (triggers, decisions, skip reasons, the context decided on);
//! - [`screen`]: the checks that need no Genesys call;
//! - [`rules`]: the whole decision once the live presence, routing status and shift are known;
//! - [`shift`]: a published schedule as decisions read it;
//! - [`replay`], [`forecast`]: known meetings decided ahead of time, and a team's load from them.

pub mod forecast;
pub mod replay;
mod rules;
mod screen;
mod shift;
#[cfg(test)]
mod tests;

pub use rules::{choose, decide, entry_skip};
pub use screen::screen;
pub use shift::{ScheduledSpan, ShiftAt, ShiftWindow};

use chrono::{DateTime, Utc};

use crate::events::CalendarEntry;
use crate::model::{ActivityCategory, PresenceSnapshot, RoutingStatus, SystemPresence};
use crate::policy::{Policy, ResolvedTargets};
use crate::state::{ActiveTrigger, PresenceRef, TriggerId, UserState};

/// How long an ended trigger is remembered, so a late or repeated start is recognised.
const TOMBSTONE_RETENTION: chrono::Duration = chrono::Duration::hours(24);

/// What the schedule says about now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShiftView {
    /// A published activity covers now.
    Activity(ActivityCategory),
    /// The agent has no scheduled activity now (no shift, or WFM does not know them).
    NoShift,
}

/// What happened to make us decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger<'a> {
    Started(&'a CalendarEntry),
    Ended(&'a CalendarEntry),
    /// The sweep: a deferred start is due for another look.
    Reevaluate,
    /// The sweep: the override ended more than the grace period ago without an end event.
    EndInferred,
    /// Genesys says the presence changed (`v2.users.{id}.presence`).
    PresenceChanged(&'a PresenceSnapshot),
    /// An operator ends our override now (`autopilot release`): every active trigger ends, and
    /// the presence is restored only if it is still ours.
    Released(&'a Operator),
}

/// Who ran an operator action, as recorded in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator(pub String);

impl Operator {
    /// Longest name kept, in bytes: an IAM ARN fits; the audit record stays bounded.
    pub const MAX_BYTES: usize = 512;

    pub fn parse(name: &str) -> Result<Self, crate::model::InvalidValue> {
        let name = name.trim();
        if name.is_empty() || name.len() > Self::MAX_BYTES || name.chars().any(char::is_control) {
            return Err(crate::model::InvalidValue {
                field: "operator",
                reason: format!("must be 1 to {} printable bytes", Self::MAX_BYTES),
            });
        }
        Ok(Self(name.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    Cancelled,
    Declined,
    Free,
    Tentative,
    AllDay,
    OutOfOffice,
    /// Shorter than the policy's `calendar.min_minutes`.
    TooShort {
        minutes: i64,
        min: u32,
    },
    OptedOut,
    /// A meeting rule skips the entry, for the reason it gives.
    Rule {
        rule: String,
        reason: String,
    },
    /// The team's staffing guard is full: the start waits for a slot.
    OverCap {
        team: String,
        cap: u32,
    },
    AlreadyEnded,
    Duplicate,
    EndedBeforeStart,
    NotActive,
    ShiftDisallows(ActivityCategory),
    NoShift,
    NeverOverride(SystemPresence),
    AlreadyInTarget,
    ChangedBySomeoneElse,
    NothingToRestore,
    OwnChange,
    NoOverride,
}

impl SkipReason {
    pub fn describe(&self) -> String {
        match self {
            Self::Cancelled => "the event was cancelled".to_owned(),
            Self::Declined => "the user declined the event".to_owned(),
            Self::Free => "the event shows as free".to_owned(),
            Self::Tentative => {
                "the event is tentative and the policy skips tentative events".to_owned()
            }
            Self::AllDay => "all-day events are skipped by policy".to_owned(),
            Self::OutOfOffice => "out-of-office entries are skipped by policy".to_owned(),
            Self::TooShort { minutes, min } => {
                format!("the entry lasts {minutes} min; the policy skips entries under {min} min")
            }
            Self::OptedOut => "the user opted out".to_owned(),
            Self::Rule { rule, reason } => format!("rule {rule:?}: {reason}"),
            Self::OverCap { team, cap } => format!(
                "team {team:?} is at its cap ({cap} off queue for the calendar at once); the start waits for a slot"
            ),
            Self::AlreadyEnded => "the event had already ended".to_owned(),
            Self::Duplicate => "this trigger was already handled".to_owned(),
            Self::EndedBeforeStart => "the end of this trigger arrived before its start".to_owned(),
            Self::NotActive => "this trigger was not active".to_owned(),
            Self::ShiftDisallows(category) => {
                format!("the scheduled activity ({category:?}) does not allow this change")
            }
            Self::NoShift => "no scheduled activity covers now and the policy skips".to_owned(),
            Self::NeverOverride(presence) => format!("the policy never overrides {presence}"),
            Self::AlreadyInTarget => "the user already had the target presence".to_owned(),
            Self::ChangedBySomeoneElse => "the presence was changed by someone else".to_owned(),
            Self::NothingToRestore => "no override of ours to restore".to_owned(),
            Self::OwnChange => "the presence event reports our own change".to_owned(),
            Self::NoOverride => "no override is active for this user".to_owned(),
        }
    }

    /// Presence events about users we hold nothing for, and echoes of our own writes, are
    /// logged and counted but not audited: they are not decisions about the user.
    pub fn is_audited(&self) -> bool {
        !matches!(self, Self::OwnChange | Self::NoOverride)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Apply {
        target: PresenceRef,
        restore_to: PresenceRef,
    },
    Restore {
        to: PresenceRef,
    },
    /// An earlier restore whose answer was lost had landed: record it, write nothing.
    FoundRestored {
        to: PresenceRef,
    },
    Keep {
        active: usize,
    },
    Skip {
        reason: SkipReason,
    },
    Defer {
        until: DateTime<Utc>,
        routing: RoutingStatus,
    },
    /// The team's staffing guard is full: the start waits (looked at again at `until`).
    Wait {
        until: DateTime<Utc>,
        team: String,
        cap: u32,
    },
    Reject {
        reason: String,
    },
}

/// A decision and the state to store with it (None: nothing to store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub decision: Decision,
    pub next: Option<UserState>,
}

impl Decided {
    fn skip(reason: SkipReason, next: Option<UserState>) -> Self {
        Self {
            decision: Decision::Skip { reason },
            next,
        }
    }
}

/// Everything a decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub now: DateTime<Utc>,
    pub policy: &'a Policy,
    pub targets: &'a ResolvedTargets,
    pub state: &'a UserState,
    /// The user's e-mail, for the opt-out list.
    pub email: Option<&'a str>,
    /// The live presence; decisions that change presence need it.
    pub current: Option<&'a PresenceSnapshot>,
    pub routing: Option<&'a RoutingStatus>,
    pub shift: Option<ShiftView>,
    /// The agent's zone for the times in messages (their WFM business unit's); None: the
    /// calendar's zone if the entry has one, else UTC.
    pub zone: Option<chrono_tz::Tz>,
    /// The staffing guard of the agent's team, for a start; None: no guard counts this start.
    pub guard: Option<GuardCheck<'a>>,
}

/// A team's staffing guard as one start meets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardCheck<'a> {
    pub team: &'a str,
    /// How many of the team may be off queue for the calendar now.
    pub cap: u32,
    /// The start is exempt (an exempt organiser's meeting, a member of an exempt group).
    pub exempt: bool,
    /// The store refused a slot a moment ago: the guard is full.
    pub full: bool,
}

fn with_trigger(state: &UserState, entry: &CalendarEntry, rule: Option<&str>) -> UserState {
    let mut next = state.clone();
    next.active_triggers.insert(
        entry.trigger_id.clone(),
        ActiveTrigger {
            kind: entry.kind,
            ends_at: entry.end,
            rule: rule.map(str::to_owned),
        },
    );
    next
}

fn latest_active(state: &UserState) -> Option<(&TriggerId, &ActiveTrigger)> {
    state
        .active_triggers
        .iter()
        .max_by_key(|(id, t)| (t.ends_at, (*id).clone()))
}

fn grace(cx: &Context<'_>) -> chrono::Duration {
    chrono::Duration::from_std(cx.policy.end_grace).unwrap_or(chrono::Duration::minutes(5))
}

fn touched(mut state: UserState, now: DateTime<Utc>) -> UserState {
    state.updated_at = now;
    state
}

/// Forgets tombstones long past their end.
fn prune(mut state: UserState, now: DateTime<Utc>) -> UserState {
    state
        .ended_triggers
        .retain(|_, ended| *ended + TOMBSTONE_RETENTION > now);
    state
}
