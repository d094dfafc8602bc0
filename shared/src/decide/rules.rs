//! The whole decision, with the live presence, routing status and shift in hand.

use chrono::{DateTime, Utc};

use super::*;
use crate::events::{CalendarEntry, Response, ShowAs};
use crate::model::{PresenceSnapshot, RoutingStatus, UserId};
use crate::policy::{NoShift, Policy, Rule, RuleAction, Target, TriggerPolicy};
use crate::state::{
    ActiveTrigger, AppliedOverride, PresenceRef, SlotChange, TriggerId, TriggerKind, UserState,
};

/// The whole decision (it runs `screen` first).
pub fn decide(trigger: &Trigger<'_>, cx: &Context<'_>) -> Decided {
    if let Some(decided) = screen(trigger, cx) {
        return decided;
    }
    match trigger {
        Trigger::Started(entry) => {
            let rule = match calendar_choice(entry, cx) {
                Ok(rule) => rule,
                Err(reason) => return Decided::skip(reason, None),
            };
            let plan = Plan {
                with_this: with_trigger(cx.state, entry, rule.map(|r| r.name.as_str())),
                // Stored unchanged, so the skip is committed on the version it was decided
                // from: a start that raced another one's override is decided again (kept).
                if_skipped: Some(touched(cx.state.clone(), cx.now)),
            };
            start(
                cx,
                plan,
                (entry.kind, rule),
                entry.end,
                Shown {
                    subject: entry.subject.as_deref(),
                    start: entry.start,
                    zone: entry.zone,
                },
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
                let shown = Shown {
                    subject: None,
                    start: cx.now,
                    zone: None,
                };
                // The rule that decided the start, if the policy still has it.
                let rule = active.rule.as_deref().and_then(|name| cx.policy.rule(name));
                start(cx, plan, (active.kind, rule), active.ends_at, shown)
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

/// What a start's message may show: the subject, the start, and the calendar's zone.
struct Shown<'a> {
    subject: Option<&'a str>,
    start: DateTime<Utc>,
    /// The calendar's zone, used when WFM gives none (`Context::zone`).
    zone: Option<chrono_tz::Tz>,
}

/// A start that passed the screen: routing, shift and the live presence decide.
fn start(
    cx: &Context<'_>,
    plan: Plan,
    (kind, rule): (TriggerKind, Option<&Rule>),
    end: DateTime<Utc>,
    shown: Shown<'_>,
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
    let trigger_policy = &cx.policy.trigger_for(kind, rule);
    let Some(target) = cx.targets.get(&trigger_policy.presence) else {
        return Decided {
            decision: Decision::Reject {
                reason: format!(
                    "internal: the presence {:?} was not resolved",
                    trigger_policy.presence
                ),
            },
            next: None,
        };
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
        shown.subject
    } else {
        None
    };
    // The agent's WFM business unit's zone, else the calendar's, else UTC.
    let zone = cx.zone.or(shown.zone).unwrap_or(chrono_tz::Tz::UTC);
    let target_ref = PresenceRef {
        definition_id: target.definition_id.clone(),
        message: trigger_policy.message.render(
            subject,
            (shown.start, end),
            zone,
            &cx.policy.time_format,
        ),
    };
    match cx.guard {
        Some(guard) if !guard.exempt && (guard.full || guard.cap == 0) => {
            wait_for_slot(cx, with_this, guard)
        }
        guard => {
            let mut decided = apply(cx, with_this, current, target_ref, trigger_id, end);
            if let (Some(guard), Some(next)) = (guard.filter(|g| !g.exempt), &mut decided.next) {
                next.slot = Some(guard.team.to_owned());
                next.slot_change = Some(SlotChange::Take {
                    team: guard.team.to_owned(),
                    cap: guard.cap,
                });
            }
            decided
        }
    }
}

/// The team already has as many agents off queue for the calendar as its cap allows: the
/// start waits with its trigger active; the sweep looks again (an end frees a slot).
fn wait_for_slot(cx: &Context<'_>, with_this: &UserState, guard: GuardCheck<'_>) -> Decided {
    let (until, next) = looked_at_again(cx, with_this);
    Decided {
        decision: Decision::Wait {
            until,
            team: guard.team.to_owned(),
            cap: guard.cap,
        },
        next: Some(touched(next, cx.now)),
    }
}

/// The agent is on an interaction: never pulled off it; look again later.
fn defer_for_interaction(
    cx: &Context<'_>,
    with_this: &UserState,
    routing: &RoutingStatus,
) -> Decided {
    let (until, next) = looked_at_again(cx, with_this);
    Decided {
        decision: Decision::Defer {
            until,
            routing: routing.clone(),
        },
        next: Some(touched(next, cx.now)),
    }
}

/// A start that waits with its trigger active: when it is looked at again (the policy's
/// `interaction_recheck`), and the state that says so.
fn looked_at_again(cx: &Context<'_>, with_this: &UserState) -> (DateTime<Utc>, UserState) {
    let until = cx.now
        + chrono::Duration::from_std(cx.policy.interaction_recheck)
            .unwrap_or(chrono::Duration::minutes(1));
    let mut next = with_this.clone();
    next.deferred_until = Some(until);
    next.due_at = Some(until);
    (until, next)
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
        restore_sent: None,
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
pub(super) fn end_of(mut next: UserState, cx: &Context<'_>) -> Option<Decided> {
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
    let next = touched(prune(next, cx.now), cx.now).releasing_slot();
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
        // Our earlier restore's answer was lost: the live presence being the one we were
        // restoring to means that write landed.
        (Some(current), _)
            if applied.restore_sent.is_some()
                && current.definition_id == restore_to.definition_id =>
        {
            Some(Decided {
                decision: Decision::FoundRestored { to: restore_to },
                next: Some(next),
            })
        }
        (Some(_), _) => Some(Decided::skip(SkipReason::ChangedBySomeoneElse, Some(next))),
    }
}

/// How the policy takes an entry: which rule (if any) decides it, or why it is skipped.
pub(super) fn calendar_choice<'p>(
    entry: &CalendarEntry,
    cx: &Context<'p>,
) -> Result<Option<&'p Rule>, SkipReason> {
    choose(entry, cx.policy, &cx.state.user_id, cx.email)
}

/// Why the policy ignores this calendar entry for `user` whatever their profile (used when
/// planning, which does not look the agent's team up): the default's reason, when every
/// profile skips it.
pub fn entry_skip(
    entry: &CalendarEntry,
    policy: &Policy,
    user: &UserId,
    email: Option<&str>,
) -> Option<SkipReason> {
    let mut reasons = policy
        .all_profiles()
        .map(|profile| choose(entry, profile, user, email).err());
    let first = reasons.next().flatten()?;
    reasons.all(|reason| reason.is_some()).then_some(first)
}

/// The policy's reading of an entry, in order: what is never a meeting (cancelled, declined,
/// free), an opted-out agent, the first matching rule (it sets a presence or skips), then the
/// `[calendar]` skips. `Ok(None)`: the entry kind's own section decides.
pub fn choose<'p>(
    entry: &CalendarEntry,
    policy: &'p Policy,
    user: &UserId,
    email: Option<&str>,
) -> Result<Option<&'p Rule>, SkipReason> {
    let opted_out = email.is_some_and(|e| policy.opt_out.contains(&e.to_lowercase()))
        || entry
            .user
            .email
            .as_ref()
            .is_some_and(|e| policy.opt_out.contains(&e.to_lowercase()))
        || policy.opt_out.contains(user.as_str());
    if entry.cancelled {
        return Err(SkipReason::Cancelled);
    } else if entry.response == Response::Declined {
        return Err(SkipReason::Declined);
    } else if entry.show_as == ShowAs::Free {
        return Err(SkipReason::Free);
    } else if opted_out {
        return Err(SkipReason::OptedOut);
    }
    if let Some(rule) = policy.rules.iter().find(|rule| rule.matches(entry)) {
        return match &rule.action {
            RuleAction::Skip(reason) => Err(SkipReason::Rule {
                rule: rule.name.clone(),
                reason: reason.clone(),
            }),
            RuleAction::Set { .. } => Ok(Some(rule)),
        };
    }
    let minutes = (entry.end - entry.start).num_minutes();
    if policy.skip_tentative
        && (entry.show_as == ShowAs::Tentative || entry.response == Response::Tentative)
    {
        Err(SkipReason::Tentative)
    } else if policy.skip_all_day && entry.all_day {
        Err(SkipReason::AllDay)
    } else if policy.skip_out_of_office && entry.show_as == ShowAs::OutOfOffice {
        Err(SkipReason::OutOfOffice)
    } else if minutes < i64::from(policy.min_minutes) {
        Err(SkipReason::TooShort {
            minutes,
            min: policy.min_minutes,
        })
    } else {
        Ok(None)
    }
}
