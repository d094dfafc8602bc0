//! The decision rules, case by case.

use super::*;
use crate::events::UserRef;
use crate::events::{CalendarEntry, Response, ShowAs};
use crate::model::{ActivityCategory, PresenceSnapshot, RoutingStatus, SystemPresence};
use crate::model::{PresenceDefinitionId, SnapshotTag, UserId};
use crate::policy::DEFAULT_POLICY;
use crate::policy::{NoShift, Policy, Target};
use crate::state::{PresenceRef, SlotChange, TriggerId, TriggerKind, UserState};
use chrono::{DateTime, Utc};

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
    let policy = policy();
    let mut targets = ResolvedTargets::default();
    targets.insert(
        policy.meeting.presence.clone(),
        Target {
            definition_id: id(MEETING),
            system_presence: SystemPresence::Meeting,
        },
    );
    targets.insert(
        policy.focus.presence.clone(),
        Target {
            definition_id: id(FOCUS),
            system_presence: SystemPresence::Busy,
        },
    );
    targets
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
        zone: None,
        categories: Vec::new(),
        others: None,
        organizer: None,
    }
}

struct World {
    policy: Policy,
    targets: ResolvedTargets,
    state: UserState,
    current: PresenceSnapshot,
    routing: RoutingStatus,
    shift: ShiftView,
    zone: Option<chrono_tz::Tz>,
    guard: Option<GuardCheck<'static>>,
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
            zone: None,
            guard: None,
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
            zone: self.zone,
            guard: self.guard,
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
                self.current = snapshot(to.definition_id.as_str(), SystemPresence::Available, 0);
            }
            next.version += 1;
            // A store applies the guard change and keeps none.
            next.slot_change = None;
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
    assert!(!SkipReason::OwnChange.is_audited() && SkipReason::ChangedBySomeoneElse.is_audited());
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

#[test]
fn an_end_after_a_restore_whose_answer_was_lost_records_it_as_landed_only_if_it_shows() {
    let available = PresenceRef {
        definition_id: id(AVAILABLE),
        message: String::new(),
    };
    let mut world = World::new();
    let meeting = entry("m1", TriggerKind::Meeting, 0, 30);
    world.step(&Trigger::Started(&meeting));
    if let Some(applied) = world.state.applied.as_mut() {
        applied.restore_sent = Some(t(30));
    }
    world.now = t(31);

    world.current = snapshot(AVAILABLE, SystemPresence::Available, 30);
    let landed = world.decide(&Trigger::Ended(&meeting)).decision;
    world.current = snapshot(BUSY, SystemPresence::Busy, 30);
    let changed = world.decide(&Trigger::Ended(&meeting)).decision;

    assert_eq!(landed, Decision::FoundRestored { to: available });
    assert_eq!(changed, skip(SkipReason::ChangedBySomeoneElse));
}

#[test]
fn without_a_lost_restore_the_presence_we_would_restore_is_someone_elses_change() {
    let mut world = World::new();
    let meeting = entry("m1", TriggerKind::Meeting, 0, 30);
    world.step(&Trigger::Started(&meeting));
    world.current = snapshot(AVAILABLE, SystemPresence::Available, 10);
    world.now = t(30);

    assert_eq!(
        world.step(&Trigger::Ended(&meeting)),
        skip(SkipReason::ChangedBySomeoneElse)
    );
}

fn message_of(world: &World, meeting: &CalendarEntry) -> String {
    match world.decide(&Trigger::Started(meeting)).decision {
        Decision::Apply { target, .. } => target.message,
        other => panic!("not applied: {other:?}"),
    }
}

#[test]
fn messages_show_the_end_in_the_agents_zone_on_both_sides_of_a_dst_change() {
    // Paris moves from CET to CEST at 01:00 UTC on 29 March 2026; t(0) is 19 March, 14:00 UTC.
    let days = |n: i64| n * 1440;
    let cases = [
        (days(9) + 94, "In a meeting until 16:34 CET"),
        (days(10) + 94, "In a meeting until 17:34 CEST"),
    ];
    for (end, shown) in cases {
        let mut world = World::new();
        world.zone = Some(chrono_tz::Tz::Europe__Paris);
        world.now = t(end - 30);
        let meeting = entry("m1", TriggerKind::Meeting, end - 30, end);
        assert_eq!(message_of(&world, &meeting), shown);
    }
}

#[test]
fn the_wfm_zone_comes_first_then_the_calendars_then_utc() {
    let mut world = World::new();
    let mut meeting = entry("m1", TriggerKind::Meeting, 0, 30);
    meeting.zone = Some(chrono_tz::Tz::America__New_York);

    world.zone = Some(chrono_tz::Tz::Europe__Paris);
    let wfm = message_of(&world, &meeting);
    world.zone = None;
    let calendar = message_of(&world, &meeting);
    meeting.zone = None;
    let neither = message_of(&world, &meeting);

    assert_eq!(wfm, "In a meeting until 15:30 CET");
    assert_eq!(calendar, "In a meeting until 10:30 EDT");
    assert_eq!(neither, "In a meeting until 14:30 UTC");
}

#[test]
fn the_time_format_is_the_policys() {
    let mut world = World::new();
    let custom = DEFAULT_POLICY.replace(
        r#"time_format = "%H:%M %Z""#,
        r#"time_format = "%-I:%M %p (%Z)""#,
    );
    assert_ne!(
        custom, DEFAULT_POLICY,
        "the default policy names its time format"
    );
    world.policy = Policy::from_toml(&custom).expect("valid");
    world.zone = Some(chrono_tz::Tz::Europe__Paris);
    let meeting = entry("m1", TriggerKind::Meeting, 0, 30);

    assert_eq!(
        message_of(&world, &meeting),
        "In a meeting until 3:30 PM (CET)"
    );
}

#[test]
fn entries_under_the_minimum_length_are_skipped_and_one_of_exactly_it_applies() {
    let mut world = World::new();
    world.policy.min_minutes = 15;
    let short = entry("m1", TriggerKind::Meeting, 0, 14);
    let enough = entry("m2", TriggerKind::Meeting, 0, 15);

    let decided = world.decide(&Trigger::Started(&short));

    assert_eq!(
        decided,
        Decided {
            decision: skip(SkipReason::TooShort {
                minutes: 14,
                min: 15
            }),
            next: None
        }
    );
    assert!(matches!(
        world.decide(&Trigger::Started(&enough)).decision,
        Decision::Apply { .. }
    ));
}

/// The staffing guard: an apply under it takes a slot in the same write; a full guard (or a cap
/// of 0) makes the start wait with its trigger active; an exempt start takes no slot; the end,
/// and a change by someone else, let the slot go.
#[test]
fn the_staffing_guard_takes_a_slot_waits_when_full_and_lets_go_at_the_end() {
    let guard = GuardCheck {
        team: "tier-1",
        cap: 3,
        exempt: false,
        full: false,
    };
    let meeting = entry("m-1", TriggerKind::Meeting, -1, 30);
    let mut world = World::new();
    world.guard = Some(guard);
    let decided = world.decide(&Trigger::Started(&meeting));
    let next = decided.next.clone().expect("a state");
    assert!(matches!(decided.decision, Decision::Apply { .. }));
    assert_eq!(next.slot.as_deref(), Some("tier-1"));
    assert_eq!(
        next.slot_change,
        Some(SlotChange::Take {
            team: "tier-1".to_owned(),
            cap: 3
        })
    );

    for full in [
        GuardCheck {
            full: true,
            ..guard
        },
        GuardCheck { cap: 0, ..guard },
    ] {
        world.guard = Some(full);
        let decided = world.decide(&Trigger::Started(&meeting));
        let until = t(1);
        assert_eq!(
            decided.decision,
            Decision::Wait {
                until,
                team: "tier-1".to_owned(),
                cap: full.cap
            }
        );
        let next = decided.next.expect("the wait is stored");
        assert!(next.active_triggers.contains_key(&meeting.trigger_id));
        assert_eq!((next.due_at, next.slot_change), (Some(until), None));
    }

    world.guard = Some(GuardCheck {
        exempt: true,
        full: true,
        ..guard
    });
    let decided = world.decide(&Trigger::Started(&meeting));
    assert!(matches!(decided.decision, Decision::Apply { .. }), "exempt");
    assert_eq!(
        decided.next.expect("state").slot,
        None,
        "an exempt start takes no slot"
    );

    world.guard = Some(guard);
    assert!(matches!(
        world.step(&Trigger::Started(&meeting)),
        Decision::Apply { .. }
    ));
    assert_eq!(world.state.slot.as_deref(), Some("tier-1"));
    let ended = world.decide(&Trigger::Ended(&meeting));
    let next = ended.next.expect("state");
    assert!(matches!(ended.decision, Decision::Restore { .. }));
    assert_eq!(next.slot, None);
    assert_eq!(
        next.slot_change,
        Some(SlotChange::Release {
            team: "tier-1".to_owned()
        })
    );

    let by_hand = snapshot(BUSY, SystemPresence::Busy, 5);
    let taken = world.decide(&Trigger::PresenceChanged(&by_hand));
    let next = taken.next.expect("state");
    assert_eq!(
        next.slot_change,
        Some(SlotChange::Release {
            team: "tier-1".to_owned()
        }),
        "someone else's presence: our override takes them off queue no longer"
    );
}
