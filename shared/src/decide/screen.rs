//! The checks that need no Genesys call: duplicates, ended triggers, our own override.

use chrono::{DateTime, Utc};

use super::rules::{calendar_choice, end_of};
use super::*;
use crate::events::CalendarEntry;
use crate::model::PresenceSnapshot;
use crate::state::{ActiveTrigger, TriggerId};

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
    let rule = match calendar_choice(entry, cx) {
        Ok(rule) => rule.map(|r| r.name.as_str()),
        Err(reason) => return Some(Decided::skip(reason, None)),
    };
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
        let mut next = with_trigger(state, entry, rule);
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
    // Someone else has the agent's presence now: our override no longer takes them off queue.
    Some(Decided::skip(
        SkipReason::ChangedBySomeoneElse,
        Some(touched(next, cx.now).releasing_slot()),
    ))
}
