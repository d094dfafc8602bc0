//! The pure decision: given an event, the policy, the agent's shift and routing status, the live
//! presence and what we stored, what to do — and the state to store next. No I/O here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::events::{CalendarEntry, Response, ShowAs};
use crate::model::{ActivityCategory, PresenceSnapshot, RoutingStatus, SystemPresence, UserId};
use crate::policy::{NoShift, Policy, ResolvedTargets, Target, TriggerPolicy};
use crate::state::{
    ActiveTrigger, AppliedOverride, PresenceRef, TriggerId, TriggerKind, UserState,
};

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
    OptedOut,
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
            Self::OptedOut => "the user opted out".to_owned(),
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
}

/// The checks that need no Genesys call. `Some` is final; `None` means `decide` needs the
/// live presence, routing status and shift.
pub fn screen(trigger: &Trigger<'_>, cx: &Context<'_>) -> Option<Decided> {
    match trigger {
        Trigger::Started(entry) => screen_start(entry, cx),
        Trigger::Ended(entry) => screen_end(entry, cx),
        Trigger::EndInferred => screen_inferred_end(cx),
        Trigger::Reevaluate => screen_reevaluate(cx),
        Trigger::PresenceChanged(observed) => screen_presence(observed, cx),
        Trigger::Released(_) => screen_release(cx),
    }
}

/// The start of a trigger: skipped, kept under an override, or `None` (decide with live inputs).
fn screen_start(entry: &CalendarEntry, cx: &Context<'_>) -> Option<Decided> {
    let state = cx.state;
    if let Some(reason) = calendar_skip(entry, cx) {
        return Some(Decided::skip(reason, None));
    }
    if cx.now >= entry.end {
        return Some(Decided::skip(SkipReason::AlreadyEnded, None));
    }
    // An end recorded at or after this start makes it stale (a reordered start); a start
    // after it is the same meeting moved to later, and counts.
    if state
        .ended_triggers
        .get(&entry.trigger_id)
        .is_some_and(|ended| *ended >= entry.start)
    {
        return Some(Decided::skip(SkipReason::EndedBeforeStart, None));
    }
    if state.active_triggers.contains_key(&entry.trigger_id) {
        return Some(Decided::skip(SkipReason::Duplicate, None));
    }
    if !state.active_triggers.is_empty() && (state.applied.is_some() || state.changed_by_other) {
        let mut next = with_trigger(state, entry);
        if let Some(applied) = next.applied.as_mut() {
            applied.until = applied.until.max(entry.end);
        }
        next.due_at = next.applied.as_ref().map(|a| a.until + grace(cx));
        let decision = if state.changed_by_other {
            Decision::Skip {
                reason: SkipReason::ChangedBySomeoneElse,
            }
        } else {
            Decision::Keep {
                active: next.active_triggers.len(),
            }
        };
        return Some(Decided {
            decision,
            next: Some(touched(next, cx.now)),
        });
    }
    None
}

/// The end of a trigger: a duplicate, an end of nothing active, or what the remaining triggers say.
fn screen_end(entry: &CalendarEntry, cx: &Context<'_>) -> Option<Decided> {
    let state = cx.state;
    if state.ended_triggers.contains_key(&entry.trigger_id) {
        return Some(Decided::skip(SkipReason::Duplicate, None));
    }
    if !state.active_triggers.contains_key(&entry.trigger_id) {
        // Remember the end so a start arriving after it changes nothing.
        let mut next = state.clone();
        next.ended_triggers
            .insert(entry.trigger_id.clone(), entry.end.max(cx.now));
        return Some(Decided::skip(
            SkipReason::NotActive,
            Some(touched(prune(next, cx.now), cx.now)),
        ));
    }
    let mut next = state.clone();
    next.active_triggers.remove(&entry.trigger_id);
    next.ended_triggers
        .insert(entry.trigger_id.clone(), entry.end.max(cx.now));
    end_of(next, cx)
}

/// The sweep found triggers overdue: end them.
fn screen_inferred_end(cx: &Context<'_>) -> Option<Decided> {
    let state = cx.state;
    let overdue: Vec<TriggerId> = state
        .active_triggers
        .iter()
        .filter(|(_, t)| t.ends_at + grace(cx) <= cx.now)
        .map(|(id, _)| id.clone())
        .collect();
    if overdue.is_empty() {
        return Some(Decided::skip(SkipReason::NotActive, None));
    }
    let mut next = state.clone();
    for id in overdue {
        let ended = next
            .active_triggers
            .remove(&id)
            .map_or(cx.now, |t| t.ends_at);
        next.ended_triggers.insert(id, ended);
    }
    end_of(next, cx)
}

/// An operator ends everything now: active and deferred triggers end, then as any end.
fn screen_release(cx: &Context<'_>) -> Option<Decided> {
    let state = cx.state;
    if state.applied.is_none() && state.active_triggers.is_empty() && state.deferred_until.is_none()
    {
        return Some(Decided::skip(SkipReason::NothingToRestore, None));
    }
    let mut next = state.clone();
    for (id, _) in std::mem::take(&mut next.active_triggers) {
        next.ended_triggers.insert(id, cx.now);
    }
    end_of(next, cx)
}

/// A deferred start is due: still wanted, or ended meanwhile.
fn screen_reevaluate(cx: &Context<'_>) -> Option<Decided> {
    let state = cx.state;
    if state.applied.is_some() || state.deferred_until.is_none() {
        return Some(Decided::skip(SkipReason::Duplicate, None));
    }
    if latest_active(state).is_none_or(|(_, t)| t.ends_at <= cx.now) {
        let mut next = state.clone();
        let ended: Vec<(TriggerId, ActiveTrigger)> = std::mem::take(&mut next.active_triggers)
            .into_iter()
            .collect();
        for (id, trigger) in ended {
            next.ended_triggers.insert(id, trigger.ends_at);
        }
        next.deferred_until = None;
        next.due_at = None;
        return Some(Decided::skip(
            SkipReason::AlreadyEnded,
            Some(touched(next, cx.now)),
        ));
    }
    None
}

/// A presence change seen on Genesys: ours echoed back, or someone else's.
fn screen_presence(observed: &PresenceSnapshot, cx: &Context<'_>) -> Option<Decided> {
    let state = cx.state;
    let Some(applied) = &state.applied else {
        return Some(Decided::skip(SkipReason::NoOverride, None));
    };
    if applied.tag.as_ref() == Some(&observed.tag()) {
        return Some(Decided::skip(SkipReason::OwnChange, None));
    }
    // Delivery is unordered: an event older than our own write says nothing new, and
    // while our write is in flight we cannot tell whose change this is.
    let ours_at = applied.set_at.unwrap_or(DateTime::<Utc>::MIN_UTC);
    if applied.tag.is_none() || observed.modified_date <= ours_at || state.changed_by_other {
        return Some(Decided::skip(SkipReason::OwnChange, None));
    }
    let mut next = state.clone();
    next.changed_by_other = true;
    next.observed_tag = Some(observed.tag());
    Some(Decided::skip(
        SkipReason::ChangedBySomeoneElse,
        Some(touched(next, cx.now)),
    ))
}

/// The whole decision (it runs `screen` first).
pub fn decide(trigger: &Trigger<'_>, cx: &Context<'_>) -> Decided {
    if let Some(decided) = screen(trigger, cx) {
        return decided;
    }
    match trigger {
        Trigger::Started(entry) => {
            let plan = Plan {
                with_this: with_trigger(cx.state, entry),
                // Stored unchanged, so the skip is committed on the version it was decided
                // from: a start that raced another one's override is decided again (kept).
                if_skipped: Some(touched(cx.state.clone(), cx.now)),
            };
            start(
                cx,
                plan,
                entry.kind,
                entry.end,
                entry.subject.as_deref(),
                entry.start,
            )
        }
        Trigger::Reevaluate => match latest_active(cx.state) {
            Some((_, active)) => {
                // A deferred start turned down now is over: forget its triggers and deferral.
                let mut given_up = cx.state.clone();
                let pending: Vec<(TriggerId, ActiveTrigger)> =
                    std::mem::take(&mut given_up.active_triggers)
                        .into_iter()
                        .collect();
                for (id, trigger) in pending {
                    given_up.ended_triggers.insert(id, trigger.ends_at);
                }
                given_up.deferred_until = None;
                given_up.due_at = None;
                let plan = Plan {
                    with_this: cx.state.clone(),
                    if_skipped: Some(touched(given_up, cx.now)),
                };
                start(cx, plan, active.kind, active.ends_at, None, cx.now)
            }
            None => Decided::skip(SkipReason::NotActive, None),
        },
        // `screen` settles these completely.
        Trigger::Ended(_)
        | Trigger::EndInferred
        | Trigger::PresenceChanged(_)
        | Trigger::Released(_) => Decided {
            decision: Decision::Reject {
                reason: "internal: unscreened trigger".to_owned(),
            },
            next: None,
        },
    }
}

/// The state after a start: with its trigger active, or (when turned down) what to store.
struct Plan {
    with_this: UserState,
    /// The state a turned-down start commits: without the trigger (its end will find it not
    /// active), on the version read.
    if_skipped: Option<UserState>,
}

/// A start that passed the screen: routing, shift and the live presence decide.
fn start(
    cx: &Context<'_>,
    plan: Plan,
    kind: TriggerKind,
    end: DateTime<Utc>,
    subject: Option<&str>,
    start_at: DateTime<Utc>,
) -> Decided {
    let with_this = &plan.with_this;
    let skip = |reason| Decided::skip(reason, plan.if_skipped.clone());
    let (Some(current), Some(routing), Some(shift)) = (cx.current, cx.routing, cx.shift) else {
        return Decided {
            decision: Decision::Reject {
                reason: "internal: presence, routing status and shift are needed to decide a start"
                    .to_owned(),
            },
            next: None,
        };
    };
    let trigger_policy = match kind {
        TriggerKind::Meeting => &cx.policy.meeting,
        TriggerKind::Focus => &cx.policy.focus,
    };
    let target: &Target = match kind {
        TriggerKind::Meeting => &cx.targets.meeting,
        TriggerKind::Focus => &cx.targets.focus,
    };
    if routing.is_on_interaction() {
        return defer_for_interaction(cx, with_this, routing);
    }
    if let Some(reason) = turned_down(cx, trigger_policy, shift, current, target) {
        return skip(reason);
    }
    let trigger_id = latest_active(with_this).map(|(id, _)| id.clone());
    let Some(trigger_id) = trigger_id else {
        return Decided::skip(SkipReason::NotActive, None);
    };
    let subject = if trigger_policy.show_subject {
        subject
    } else {
        None
    };
    let target_ref = PresenceRef {
        definition_id: target.definition_id.clone(),
        message: trigger_policy.message.render(subject, start_at, end),
    };
    apply(cx, with_this, current, target_ref, trigger_id, end)
}

/// The agent is on an interaction: never pulled off it; look again later.
fn defer_for_interaction(
    cx: &Context<'_>,
    with_this: &UserState,
    routing: &RoutingStatus,
) -> Decided {
    let until = cx.now
        + chrono::Duration::from_std(cx.policy.interaction_recheck)
            .unwrap_or(chrono::Duration::minutes(1));
    let mut next = with_this.clone();
    next.deferred_until = Some(until);
    next.due_at = Some(until);
    Decided {
        decision: Decision::Defer {
            until,
            routing: routing.clone(),
        },
        next: Some(touched(next, cx.now)),
    }
}

/// Why the shift, the policy or the live presence turn this start down, if they do.
fn turned_down(
    cx: &Context<'_>,
    trigger_policy: &TriggerPolicy,
    shift: ShiftView,
    current: &PresenceSnapshot,
    target: &Target,
) -> Option<SkipReason> {
    let allowed = match shift {
        ShiftView::Activity(category) if trigger_policy.allowed_activities.contains(&category) => {
            true
        }
        ShiftView::Activity(category) => return Some(SkipReason::ShiftDisallows(category)),
        ShiftView::NoShift => cx.policy.when_no_shift == NoShift::Allow,
    };
    if !allowed {
        return Some(SkipReason::NoShift);
    }
    if cx.policy.never_override.contains(&current.system_presence) {
        return Some(SkipReason::NeverOverride(current.system_presence.clone()));
    }
    if current.definition_id == target.definition_id {
        return Some(SkipReason::AlreadyInTarget);
    }
    None
}

/// The apply: our override claimed until the last active trigger ends, the live presence kept
/// to restore.
fn apply(
    cx: &Context<'_>,
    with_this: &UserState,
    current: &PresenceSnapshot,
    target_ref: PresenceRef,
    trigger_id: TriggerId,
    end: DateTime<Utc>,
) -> Decided {
    let restore_to = PresenceRef {
        definition_id: current.definition_id.clone(),
        message: current.message.clone(),
    };
    let until = with_this
        .active_triggers
        .values()
        .map(|t| t.ends_at)
        .max()
        .unwrap_or(end);
    let mut next = with_this.clone();
    next.applied = Some(AppliedOverride {
        target: target_ref.definition_id.clone(),
        trigger_id,
        until,
        tag: None,
        set_at: None,
    });
    next.restore_to = Some(restore_to.clone());
    next.observed_tag = Some(current.tag());
    next.changed_by_other = false;
    next.deferred_until = None;
    next.due_at = Some(until + grace(cx));
    Decided {
        decision: Decision::Apply {
            target: target_ref,
            restore_to,
        },
        next: Some(touched(next, cx.now)),
    }
}

/// After triggers were removed from `next`: keep, restore, or let go.
fn end_of(mut next: UserState, cx: &Context<'_>) -> Option<Decided> {
    if !next.active_triggers.is_empty() {
        if let Some((id, active)) = latest_active(&next).map(|(id, t)| (id.clone(), t.clone())) {
            if let Some(applied) = next.applied.as_mut() {
                applied.trigger_id = id;
                applied.until = active.ends_at;
            }
            next.due_at = next
                .applied
                .as_ref()
                .map(|a| a.until + grace(cx))
                .or(next.deferred_until);
        }
        let active = next.active_triggers.len();
        return Some(Decided {
            decision: Decision::Keep { active },
            next: Some(touched(prune(next, cx.now), cx.now)),
        });
    }
    next.deferred_until = None;
    next.due_at = None;
    let applied = next.applied.take();
    let restore_to = next.restore_to.take();
    let changed_by_other = std::mem::replace(&mut next.changed_by_other, false);
    let next = touched(prune(next, cx.now), cx.now);
    let (Some(applied), Some(restore_to)) = (applied, restore_to) else {
        return Some(Decided::skip(SkipReason::NothingToRestore, Some(next)));
    };
    if changed_by_other {
        return Some(Decided::skip(SkipReason::ChangedBySomeoneElse, Some(next)));
    }
    match (cx.current, &applied.tag) {
        // Without the live presence we cannot compare yet: the caller fetches it and asks again.
        (None, _) => None,
        (Some(current), Some(ours)) if current.tag() == *ours => Some(Decided {
            decision: Decision::Restore { to: restore_to },
            next: Some(next),
        }),
        // A claim never settled: the invocation died between its PATCH and its commit (or is
        // still writing). If the live presence is the one we were setting, it is ours: restore
        // it (by compare-and-set on the live tag, so a writer still in flight cannot be
        // clobbered: its own settle finds the claim gone and undoes only if still unchanged).
        (Some(current), None) if current.definition_id == applied.target => Some(Decided {
            decision: Decision::Restore { to: restore_to },
            next: Some(next),
        }),
        (Some(_), _) => Some(Decided::skip(SkipReason::ChangedBySomeoneElse, Some(next))),
    }
}

fn calendar_skip(entry: &CalendarEntry, cx: &Context<'_>) -> Option<SkipReason> {
    entry_skip(entry, cx.policy, &cx.state.user_id, cx.email)
}

/// Why the policy ignores this calendar entry for `user` (also used when planning).
pub fn entry_skip(
    entry: &CalendarEntry,
    policy: &Policy,
    user: &UserId,
    email: Option<&str>,
) -> Option<SkipReason> {
    let opted_out = email.is_some_and(|e| policy.opt_out.contains(&e.to_lowercase()))
        || entry
            .user
            .email
            .as_ref()
            .is_some_and(|e| policy.opt_out.contains(&e.to_lowercase()))
        || policy.opt_out.contains(user.as_str());
    if entry.cancelled {
        Some(SkipReason::Cancelled)
    } else if entry.response == Response::Declined {
        Some(SkipReason::Declined)
    } else if entry.show_as == ShowAs::Free {
        Some(SkipReason::Free)
    } else if policy.skip_tentative
        && (entry.show_as == ShowAs::Tentative || entry.response == Response::Tentative)
    {
        Some(SkipReason::Tentative)
    } else if policy.skip_all_day && entry.all_day {
        Some(SkipReason::AllDay)
    } else if policy.skip_out_of_office && entry.show_as == ShowAs::OutOfOffice {
        Some(SkipReason::OutOfOffice)
    } else if opted_out {
        Some(SkipReason::OptedOut)
    } else {
        None
    }
}

fn with_trigger(state: &UserState, entry: &CalendarEntry) -> UserState {
    let mut next = state.clone();
    next.active_triggers.insert(
        entry.trigger_id.clone(),
        ActiveTrigger {
            kind: entry.kind,
            ends_at: entry.end,
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

/// One scheduled activity, reduced to what decisions need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledSpan {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub category: ActivityCategory,
}

/// A user's published schedule over `[from, to)`, as fetched at `fetched_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShiftWindow {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub fetched_at: DateTime<Utc>,
    pub spans: Vec<ScheduledSpan>,
}

impl ShiftWindow {
    /// What the window says about `at`, if it covers it.
    pub fn view_at(&self, at: DateTime<Utc>) -> Option<ShiftView> {
        if at < self.from || at >= self.to {
            return None;
        }
        Some(
            self.spans
                .iter()
                .find(|span| at >= span.start && at < span.end)
                .map_or(ShiftView::NoShift, |span| {
                    ShiftView::Activity(span.category)
                }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::UserRef;
    use crate::model::{PresenceDefinitionId, SnapshotTag, UserId};
    use crate::policy::DEFAULT_POLICY;

    const AVAILABLE: &str = "6a3af858-942f-489d-9700-5f9bcdcdae9b";
    const MEETING: &str = "bbdff279-7ae1-48ea-bade-7831d7234c64";
    const BUSY: &str = "31fe3bac-dea6-44b7-bed7-47f91660a1a0";
    const FOCUS: &str = "0b5a4c1e-6f2d-4c3b-9a8e-5d7f1e2c3b4a";
    const OFFLINE: &str = "ccf3c10a-aa2c-4845-8e8d-f59fa48c58e5";

    fn t(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_773_928_800 + minute * 60, 0).expect("valid")
    }

    fn id(value: &str) -> PresenceDefinitionId {
        PresenceDefinitionId::parse(value).expect("valid")
    }

    fn user() -> UserId {
        UserId::parse("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f").expect("valid")
    }

    fn policy() -> Policy {
        Policy::from_toml(DEFAULT_POLICY).expect("valid")
    }

    fn targets() -> ResolvedTargets {
        ResolvedTargets {
            meeting: Target {
                definition_id: id(MEETING),
                system_presence: SystemPresence::Meeting,
            },
            focus: Target {
                definition_id: id(FOCUS),
                system_presence: SystemPresence::Busy,
            },
        }
    }

    fn snapshot(definition: &str, system: SystemPresence, minute: i64) -> PresenceSnapshot {
        PresenceSnapshot {
            definition_id: id(definition),
            system_presence: system,
            message: String::new(),
            modified_date: t(minute),
        }
    }

    fn entry(trigger: &str, kind: TriggerKind, start: i64, end: i64) -> CalendarEntry {
        CalendarEntry {
            user: UserRef {
                user_id: Some(user()),
                email: Some("ada@example.com".to_owned()),
            },
            trigger_id: TriggerId::parse(trigger).expect("valid"),
            kind,
            start: t(start),
            end: t(end),
            show_as: ShowAs::Busy,
            all_day: false,
            cancelled: false,
            response: Response::Accepted,
            subject: Some("Secret project".to_owned()),
        }
    }

    struct World {
        policy: Policy,
        targets: ResolvedTargets,
        state: UserState,
        current: PresenceSnapshot,
        routing: RoutingStatus,
        shift: ShiftView,
        now: DateTime<Utc>,
    }

    impl World {
        fn new() -> Self {
            Self {
                policy: policy(),
                targets: targets(),
                state: UserState::new(user(), t(0)),
                current: snapshot(AVAILABLE, SystemPresence::Available, -60),
                routing: RoutingStatus::OffQueue,
                shift: ShiftView::Activity(ActivityCategory::Meeting),
                now: t(0),
            }
        }

        fn decide(&self, trigger: &Trigger<'_>) -> Decided {
            let cx = Context {
                now: self.now,
                policy: &self.policy,
                targets: &self.targets,
                state: &self.state,
                email: Some("ada@example.com"),
                current: Some(&self.current),
                routing: Some(&self.routing),
                shift: Some(self.shift),
            };
            decide(trigger, &cx)
        }

        /// Decides and, like the service, stores the next state (with the tag our PATCH got).
        fn step(&mut self, trigger: &Trigger<'_>) -> Decision {
            let decided = self.decide(trigger);
            if let Some(mut next) = decided.next.clone() {
                if let Decision::Apply { target, .. } = &decided.decision {
                    self.current = PresenceSnapshot {
                        definition_id: target.definition_id.clone(),
                        system_presence: SystemPresence::Meeting,
                        message: target.message.clone(),
                        modified_date: self.now,
                    };
                    if let Some(applied) = next.applied.as_mut() {
                        applied.tag = Some(self.current.tag());
                        applied.set_at = Some(self.now);
                    }
                }
                if let Decision::Restore { to } = &decided.decision {
                    self.current =
                        snapshot(to.definition_id.as_str(), SystemPresence::Available, 0);
                }
                next.version += 1;
                self.state = next;
            }
            decided.decision
        }
    }

    fn skip(reason: SkipReason) -> Decision {
        Decision::Skip { reason }
    }

    #[test]
    fn calendar_filters_skip_without_storing_anything() {
        type Case = (&'static str, Box<dyn Fn(&mut CalendarEntry)>, SkipReason);
        let cases: Vec<Case> = vec![
            (
                "cancelled",
                Box::new(|e| e.cancelled = true),
                SkipReason::Cancelled,
            ),
            (
                "declined",
                Box::new(|e| e.response = Response::Declined),
                SkipReason::Declined,
            ),
            (
                "free",
                Box::new(|e| e.show_as = ShowAs::Free),
                SkipReason::Free,
            ),
            (
                "tentative show-as",
                Box::new(|e| e.show_as = ShowAs::Tentative),
                SkipReason::Tentative,
            ),
            (
                "tentative response",
                Box::new(|e| e.response = Response::Tentative),
                SkipReason::Tentative,
            ),
            (
                "all day",
                Box::new(|e| e.all_day = true),
                SkipReason::AllDay,
            ),
            (
                "out of office",
                Box::new(|e| e.show_as = ShowAs::OutOfOffice),
                SkipReason::OutOfOffice,
            ),
            (
                "already ended",
                Box::new(|e| e.end = t(0)),
                SkipReason::AlreadyEnded,
            ),
        ];
        let world = World::new();
        for (name, change, reason) in cases {
            let mut meeting = entry("m1", TriggerKind::Meeting, 0, 30);
            change(&mut meeting);
            let decided = world.decide(&Trigger::Started(&meeting));
            assert_eq!(
                decided,
                Decided {
                    decision: skip(reason),
                    next: None
                },
                "{name}"
            );
        }
    }

    #[test]
    fn tentative_is_applied_when_the_policy_allows_it() {
        let mut world = World::new();
        world.policy.skip_tentative = false;
        let mut meeting = entry("m1", TriggerKind::Meeting, 0, 30);
        meeting.show_as = ShowAs::Tentative;
        assert!(matches!(
            world.decide(&Trigger::Started(&meeting)).decision,
            Decision::Apply { .. }
        ));
    }

    #[test]
    fn opted_out_users_are_skipped_by_email_or_id() {
        for key in ["ada@example.com", "9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f"] {
            let mut world = World::new();
            world.policy.opt_out.insert(key.to_owned());
            let meeting = entry("m1", TriggerKind::Meeting, 0, 30);
            assert_eq!(
                world.decide(&Trigger::Started(&meeting)).decision,
                skip(SkipReason::OptedOut),
                "{key}"
            );
        }
    }

    #[test]
    fn start_applies_the_target_and_remembers_what_to_restore() {
        let world = World::new();
        let meeting = entry("m1", TriggerKind::Meeting, 0, 30);

        let decided = world.decide(&Trigger::Started(&meeting));

        let Decision::Apply { target, restore_to } = &decided.decision else {
            panic!("{decided:?}")
        };
        assert_eq!(target.definition_id, id(MEETING));
        assert_eq!(
            target.message, "In a meeting until 14:30 UTC",
            "no subject unless allowed"
        );
        assert_eq!(restore_to.definition_id, id(AVAILABLE));
        let next = decided.next.expect("state to store");
        let applied = next.applied.expect("override");
        assert_eq!(
            (applied.until, applied.tag),
            (t(30), None),
            "tag comes from our PATCH"
        );
        assert_eq!(next.due_at, Some(t(35)), "end + grace, for the sweep");
        assert!(next.active_triggers.contains_key(&meeting.trigger_id));
    }

    #[test]
    fn end_restores_when_nobody_changed_the_presence() {
        let mut world = World::new();
        let meeting = entry("m1", TriggerKind::Meeting, 0, 30);
        assert!(matches!(
            world.step(&Trigger::Started(&meeting)),
            Decision::Apply { .. }
        ));
        world.now = t(30);

        let decision = world.step(&Trigger::Ended(&meeting));

        assert_eq!(
            decision,
            Decision::Restore {
                to: PresenceRef {
                    definition_id: id(AVAILABLE),
                    message: String::new()
                }
            }
        );
        assert!(
            world.state.applied.is_none()
                && world.state.restore_to.is_none()
                && world.state.due_at.is_none()
        );
    }

    #[test]
    fn release_ends_every_active_trigger_and_restores_our_presence() {
        let mut world = World::new();
        let meeting = entry("m1", TriggerKind::Meeting, 0, 30);
        let focus = entry("f1", TriggerKind::Focus, 5, 60);
        world.step(&Trigger::Started(&meeting));
        world.step(&Trigger::Started(&focus));
        world.now = t(10);
        let operator = Operator("oncall@example.com".to_owned());

        let decision = world.step(&Trigger::Released(&operator));

        assert!(matches!(decision, Decision::Restore { .. }), "{decision:?}");
        assert!(world.state.active_triggers.is_empty() && world.state.applied.is_none());
        assert_eq!(world.state.ended_triggers.len(), 2, "both ends remembered");
        assert_eq!(
            world.step(&Trigger::Ended(&meeting)),
            skip(SkipReason::Duplicate),
            "the meeting's real end later changes nothing"
        );
    }

    #[test]
    fn release_never_restores_over_someone_elses_change() {
        let mut world = World::new();
        let meeting = entry("m1", TriggerKind::Meeting, 0, 30);
        world.step(&Trigger::Started(&meeting));
        world.current = snapshot(BUSY, SystemPresence::Busy, 10);
        let operator = Operator("oncall".to_owned());

        let decided = world.decide(&Trigger::Released(&operator));

        assert_eq!(decided.decision, skip(SkipReason::ChangedBySomeoneElse));
        assert!(decided.next.is_some_and(|next| next.applied.is_none()));
    }

    #[test]
    fn release_without_an_override_changes_nothing() {
        let world = World::new();
        let operator = Operator("oncall".to_owned());
        let decided = world.decide(&Trigger::Released(&operator));
        assert_eq!(decided.decision, skip(SkipReason::NothingToRestore));
        assert_eq!(decided.next, None);
    }

    #[test]
    fn end_does_not_restore_over_someone_elses_change() {
        let mut world = World::new();
        let meeting = entry("m1", TriggerKind::Meeting, 0, 30);
        world.step(&Trigger::Started(&meeting));
        world.current = snapshot(BUSY, SystemPresence::Busy, 10);
        world.now = t(30);

        assert_eq!(
            world.step(&Trigger::Ended(&meeting)),
            skip(SkipReason::ChangedBySomeoneElse)
        );
        assert!(world.state.applied.is_none(), "the override is let go");
    }

    #[test]
    fn presence_event_from_someone_else_marks_the_override_and_the_end_skips() {
        let mut world = World::new();
        let meeting = entry("m1", TriggerKind::Meeting, 0, 30);
        world.step(&Trigger::Started(&meeting));
        let ours = world.current.clone();
        assert_eq!(
            world.decide(&Trigger::PresenceChanged(&ours)),
            Decided {
                decision: skip(SkipReason::OwnChange),
                next: None
            }
        );

        let theirs = snapshot(BUSY, SystemPresence::Busy, 10);
        assert_eq!(
            world.step(&Trigger::PresenceChanged(&theirs)),
            skip(SkipReason::ChangedBySomeoneElse)
        );
        assert!(world.state.changed_by_other);

        // Even if they set it back to exactly what we had set, the end no longer restores.
        world.now = t(30);
        assert_eq!(
            world.step(&Trigger::Ended(&meeting)),
            skip(SkipReason::ChangedBySomeoneElse)
        );
    }

    #[test]
    fn presence_events_older_than_our_write_or_without_override_are_ignored() {
        let mut world = World::new();
        let stale = snapshot(BUSY, SystemPresence::Busy, -5);
        assert_eq!(
            world.decide(&Trigger::PresenceChanged(&stale)).decision,
            skip(SkipReason::NoOverride)
        );
        world.now = t(1);
        world.step(&Trigger::Started(&entry("m1", TriggerKind::Meeting, 0, 30)));
        let decided = world.decide(&Trigger::PresenceChanged(&stale));
        assert_eq!(
            decided,
            Decided {
                decision: skip(SkipReason::OwnChange),
                next: None
            }
        );
        assert!(
            !SkipReason::OwnChange.is_audited() && SkipReason::ChangedBySomeoneElse.is_audited()
        );
    }

    #[test]
    fn overlapping_triggers_keep_the_presence_until_the_last_one_ends() {
        let mut world = World::new();
        let first = entry("m1", TriggerKind::Meeting, 0, 30);
        let second = entry("m2", TriggerKind::Meeting, 15, 60);
        let focus = entry("f1", TriggerKind::Focus, 20, 45);
        assert!(matches!(
            world.step(&Trigger::Started(&first)),
            Decision::Apply { .. }
        ));
        world.now = t(15);
        assert_eq!(
            world.step(&Trigger::Started(&second)),
            Decision::Keep { active: 2 }
        );
        world.now = t(20);
        assert_eq!(
            world.step(&Trigger::Started(&focus)),
            Decision::Keep { active: 3 }
        );
        assert_eq!(world.state.applied.as_ref().map(|a| a.until), Some(t(60)));

        world.now = t(30);
        assert_eq!(
            world.step(&Trigger::Ended(&first)),
            Decision::Keep { active: 2 }
        );
        world.now = t(45);
        assert_eq!(
            world.step(&Trigger::Ended(&focus)),
            Decision::Keep { active: 1 }
        );
        world.now = t(60);
        assert!(matches!(
            world.step(&Trigger::Ended(&second)),
            Decision::Restore { .. }
        ));
    }

    #[test]
    fn duplicates_and_out_of_order_events_never_flip_flop() {
        let mut world = World::new();
        let meeting = entry("m1", TriggerKind::Meeting, 0, 30);
        world.step(&Trigger::Started(&meeting));
        assert_eq!(
            world.step(&Trigger::Started(&meeting)),
            skip(SkipReason::Duplicate)
        );
        world.now = t(30);
        assert!(matches!(
            world.step(&Trigger::Ended(&meeting)),
            Decision::Restore { .. }
        ));
        assert_eq!(
            world.step(&Trigger::Ended(&meeting)),
            skip(SkipReason::Duplicate)
        );

        // End before start: the late start changes nothing.
        let mut world = World::new();
        let late = entry("m9", TriggerKind::Meeting, 0, 30);
        assert_eq!(
            world.step(&Trigger::Ended(&late)),
            skip(SkipReason::NotActive)
        );
        assert_eq!(
            world.step(&Trigger::Started(&late)),
            skip(SkipReason::EndedBeforeStart)
        );
        assert!(world.state.applied.is_none());
    }

    #[test]
    fn an_agent_on_an_interaction_is_deferred_and_the_sweep_applies_later() {
        for status in [RoutingStatus::Interacting, RoutingStatus::Communicating] {
            let mut world = World::new();
            world.routing = status.clone();
            let meeting = entry("m1", TriggerKind::Meeting, 0, 30);

            let decision = world.step(&Trigger::Started(&meeting));

            assert_eq!(
                decision,
                Decision::Defer {
                    until: t(1),
                    routing: status.clone()
                }
            );
            assert_eq!(
                (world.state.deferred_until, world.state.due_at),
                (Some(t(1)), Some(t(1)))
            );
            world.now = t(1);
            assert!(
                matches!(world.step(&Trigger::Reevaluate), Decision::Defer { .. }),
                "still on the call"
            );
            world.routing = RoutingStatus::Idle;
            world.now = t(2);
            let Decision::Apply { target, .. } = world.step(&Trigger::Reevaluate) else {
                panic!("applies after the call")
            };
            assert_eq!(target.definition_id, id(MEETING));
            assert_eq!(world.state.deferred_until, None);
        }
    }

    #[test]
    fn a_deferral_that_outlives_its_meeting_is_dropped() {
        let mut world = World::new();
        world.routing = RoutingStatus::Interacting;
        world.step(&Trigger::Started(&entry("m1", TriggerKind::Meeting, 0, 30)));
        world.now = t(31);
        assert_eq!(
            world.step(&Trigger::Reevaluate),
            skip(SkipReason::AlreadyEnded)
        );
        assert!(world.state.active_triggers.is_empty() && world.state.due_at.is_none());
    }

    #[test]
    fn shift_activity_decides_per_target() {
        let cases = [
            (TriggerKind::Meeting, ActivityCategory::Meeting, true),
            (TriggerKind::Meeting, ActivityCategory::OffQueueWork, true),
            (TriggerKind::Meeting, ActivityCategory::Training, true),
            (TriggerKind::Meeting, ActivityCategory::OnQueueWork, false),
            (TriggerKind::Meeting, ActivityCategory::Break, false),
            (TriggerKind::Meeting, ActivityCategory::TimeOff, false),
            (TriggerKind::Focus, ActivityCategory::OffQueueWork, true),
            (TriggerKind::Focus, ActivityCategory::Meeting, false),
            (TriggerKind::Focus, ActivityCategory::Unknown, false),
        ];
        for (kind, category, allowed) in cases {
            let mut world = World::new();
            world.shift = ShiftView::Activity(category);
            let decision = world
                .decide(&Trigger::Started(&entry("x", kind, 0, 30)))
                .decision;
            if allowed {
                assert!(
                    matches!(decision, Decision::Apply { .. }),
                    "{kind:?} during {category:?}: {decision:?}"
                );
            } else {
                assert_eq!(
                    decision,
                    skip(SkipReason::ShiftDisallows(category)),
                    "{kind:?} during {category:?}"
                );
            }
        }
    }

    #[test]
    fn on_queue_work_is_allowed_when_the_policy_lists_it() {
        let mut world = World::new();
        world
            .policy
            .meeting
            .allowed_activities
            .insert(ActivityCategory::OnQueueWork);
        world.shift = ShiftView::Activity(ActivityCategory::OnQueueWork);
        assert!(matches!(
            world
                .decide(&Trigger::Started(&entry("x", TriggerKind::Meeting, 0, 30)))
                .decision,
            Decision::Apply { .. }
        ));
    }

    #[test]
    fn no_shift_follows_the_policy() {
        let mut world = World::new();
        world.shift = ShiftView::NoShift;
        let meeting = entry("x", TriggerKind::Meeting, 0, 30);
        assert!(matches!(
            world.decide(&Trigger::Started(&meeting)).decision,
            Decision::Apply { .. }
        ));
        world.policy.when_no_shift = NoShift::Skip;
        let decided = world.decide(&Trigger::Started(&meeting));
        assert_eq!(decided.decision, skip(SkipReason::NoShift));
        // The state is committed unchanged (no active trigger) on the version it was read at,
        // so a skip decided from a stale read loses the race instead of being recorded.
        let next = decided.next.expect("committed on the version read");
        assert!(next.active_triggers.is_empty());
        assert_eq!(next.version, world.state.version);
    }

    #[test]
    fn never_override_and_already_in_target_are_skipped() {
        let mut world = World::new();
        world.current = snapshot(OFFLINE, SystemPresence::Offline, -1);
        let meeting = entry("x", TriggerKind::Meeting, 0, 30);
        assert_eq!(
            world.decide(&Trigger::Started(&meeting)).decision,
            skip(SkipReason::NeverOverride(SystemPresence::Offline))
        );
        world.current = snapshot(MEETING, SystemPresence::Meeting, -1);
        assert_eq!(
            world.decide(&Trigger::Started(&meeting)).decision,
            skip(SkipReason::AlreadyInTarget)
        );
    }

    #[test]
    fn focus_uses_its_own_target() {
        let world = World::new();
        let mut world = world;
        world.shift = ShiftView::Activity(ActivityCategory::OffQueueWork);
        let Decision::Apply { target, .. } = world
            .decide(&Trigger::Started(&entry("f", TriggerKind::Focus, 0, 60)))
            .decision
        else {
            panic!("focus applies")
        };
        assert_eq!(
            (target.definition_id, target.message.as_str()),
            (id(FOCUS), "Focus time until 15:00 UTC")
        );
    }

    #[test]
    fn missed_end_is_inferred_after_the_grace_period() {
        let mut world = World::new();
        world.step(&Trigger::Started(&entry("m1", TriggerKind::Meeting, 0, 30)));
        world.now = t(34);
        assert_eq!(
            world.decide(&Trigger::EndInferred).decision,
            skip(SkipReason::NotActive),
            "within grace"
        );
        world.now = t(35);
        assert!(matches!(
            world.step(&Trigger::EndInferred),
            Decision::Restore { .. }
        ));
    }

    #[test]
    fn end_after_a_crash_between_our_write_and_its_commit_restores() {
        let mut world = World::new();
        let meeting = entry("m1", TriggerKind::Meeting, 0, 30);
        let decided = world.decide(&Trigger::Started(&meeting));
        let Decision::Apply { target, .. } = &decided.decision else {
            panic!("{:?}", decided.decision);
        };
        // The PATCH landed; the commit that would have recorded its tag did not.
        world.current.definition_id = target.definition_id.clone();
        world.state = decided.next.expect("claimed state");
        world.now = t(30);
        assert!(matches!(
            world.step(&Trigger::Ended(&meeting)),
            Decision::Restore { .. }
        ));
    }

    #[test]
    fn end_while_our_write_is_in_flight_does_not_restore() {
        let mut world = World::new();
        let meeting = entry("m1", TriggerKind::Meeting, 0, 30);
        let decided = world.decide(&Trigger::Started(&meeting));
        world.state = decided.next.expect("claimed state");
        world.now = t(30);
        assert_eq!(
            world.step(&Trigger::Ended(&meeting)),
            skip(SkipReason::ChangedBySomeoneElse)
        );
        let _ = SnapshotTag::from_stored(String::new());
    }
}
