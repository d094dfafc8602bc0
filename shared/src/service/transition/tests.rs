//! The transition use case on fakes (in-memory store, in-memory platform, manual clock): the
//! orchestrator, the ledger and the write protocol together, without moto or a simulator. The
//! wire is tested against both in `tests/integration`.

use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use serde_json::json;

use super::*;
use crate::clock::ManualClock;
use crate::events::parse_json;
use crate::fakes::InMemoryStore;
use crate::fakes::platform::{FakePlatform, PlatformCall};
use crate::fakes::world::{ADA, FakeWorld, ada};
use crate::model::SystemPresence;
use crate::ports::PlatformError;
use crate::state::DecisionKind;

struct World {
    clock: ManualClock,
    platform: FakePlatform,
    store: InMemoryStore,
    service: Arc<TransitionService>,
}

impl World {
    fn new() -> Self {
        Self::deciding_by(crate::policy::DEFAULT_POLICY)
    }

    fn deciding_by(policy: &str) -> Self {
        let start = DateTime::parse_from_rfc3339("2026-03-19T14:00:00Z").expect("valid");
        let policy = crate::policy::Policy::from_toml(policy).expect("a valid policy");
        let FakeWorld {
            clock,
            platform,
            store,
            transition,
        } = FakeWorld::with_policy(start.to_utc(), policy);
        Self {
            clock,
            platform,
            store,
            service: transition,
        }
    }

    fn deadline(&self) -> Deadline {
        Deadline::after(&self.clock, Duration::from_secs(30))
    }

    /// A meeting of Ada's that began a minute ago and lasts 30 minutes.
    fn meeting(&self, detail_type: &str, event_id: &str) -> ParsedEvent {
        let now = self.clock.now();
        let body = json!({
            "id": event_id,
            "detail-type": detail_type,
            "source": "tests",
            "detail": {
                "userId": ADA,
                "calendarEventId": "m-1",
                "start": (now - chrono::Duration::minutes(1)).to_rfc3339(),
                "end": (now + chrono::Duration::minutes(30)).to_rfc3339(),
            },
        });
        parse_json(&body.to_string()).expect("a canonical event")
    }

    /// `user`'s half-hour meeting `trigger`, begun a minute ago: its `detail_type` edge, with
    /// `extra` fields in the detail.
    fn edge_of(
        &self,
        detail_type: &str,
        user: &UserId,
        trigger: &str,
        extra: serde_json::Value,
    ) -> ParsedEvent {
        let now = self.clock.now();
        let mut detail = json!({
            "userId": user.as_str(),
            "calendarEventId": trigger,
            "start": (now - chrono::Duration::minutes(1)).to_rfc3339(),
            "end": (now + chrono::Duration::minutes(30)).to_rfc3339(),
        });
        if let (Some(detail), Some(extra)) = (detail.as_object_mut(), extra.as_object()) {
            detail.extend(extra.clone());
        }
        let body = json!({
            "id": format!("{detail_type}-{user}"),
            "detail-type": detail_type,
            "source": "tests",
            "detail": detail,
        });
        parse_json(&body.to_string()).expect("a canonical event")
    }

    /// `size` agents, On Queue and idle, members of `group`.
    fn team_of(&self, size: usize, group: &str) -> Vec<UserId> {
        let users: Vec<UserId> = (0..size)
            .map(|i| UserId::parse(&format!("00000000-0000-4000-8000-{i:012}")).expect("id"))
            .collect();
        for user in &users {
            self.platform
                .add_user(user, SystemPresence::OnQueue, RoutingStatus::Idle, None);
            self.platform.join_group(group, user);
        }
        users
    }

    async fn handle(&self, event: &ParsedEvent) -> Result<Outcome, TransitionError> {
        self.service.handle(event.clone(), self.deadline()).await
    }

    fn presence(&self) -> SystemPresence {
        self.platform
            .current(&ada())
            .expect("known")
            .system_presence
    }

    fn kinds(&self) -> Vec<DecisionKind> {
        self.kinds_of(&ada())
    }

    fn kinds_of(&self, user: &UserId) -> Vec<DecisionKind> {
        let records = self.store.audit_records(user);
        records.into_iter().map(|record| record.kind).collect()
    }
}

/// Each result's decision; every event must have been handled.
fn decisions(results: Vec<Result<Outcome, TransitionError>>) -> Vec<OutcomeKind> {
    results
        .into_iter()
        .map(|result| result.expect("handled").decision)
        .collect()
}

#[tokio::test]
async fn a_meeting_applies_then_restores_and_each_event_is_decided_once() {
    let world = World::new();
    let start = world.meeting(events::CALENDAR_EVENT_STARTED, "e-start");

    let applied = world.handle(&start).await.expect("handled");
    assert_eq!(applied.decision, OutcomeKind::Applied);
    assert_eq!(world.presence(), SystemPresence::Meeting);

    // A redelivery is answered from the ledger: no Genesys write, no second record.
    let writes = world.platform.calls(PlatformCall::CompareAndSet);
    let again = world.handle(&start).await.expect("handled");
    assert!(again.duplicate, "{again:?}");
    assert_eq!(world.platform.calls(PlatformCall::CompareAndSet), writes);

    let end = world.meeting(events::CALENDAR_EVENT_ENDED, "e-end");
    let restored = world.handle(&end).await.expect("handled");
    assert_eq!(restored.decision, OutcomeKind::Restored);
    assert_eq!(world.presence(), SystemPresence::OnQueue);
    assert_eq!(
        world.kinds(),
        [DecisionKind::Applied, DecisionKind::Restored]
    );
    let version = &world.service.deps().policy.current().version.clone();
    assert!(version.starts_with("sha256:"), "{version}");
    for record in world.store.audit_records(&ada()) {
        assert_eq!(
            record.details["policy"],
            version.as_str(),
            "every decision names the policy that made it: {record:?}"
        );
    }
}

#[tokio::test]
async fn an_uncertain_write_gives_the_event_back_so_a_redelivery_runs_at_once() {
    let world = World::new();
    let start = world.meeting(events::CALENDAR_EVENT_STARTED, "e-start");
    // The PATCH times out: Genesys may or may not have taken it.
    let timeout = PlatformError::Unanswered {
        message: "no answer".to_owned(),
    };
    world
        .platform
        .fail_next(PlatformCall::CompareAndSet, timeout);

    let failed = world.handle(&start).await.expect_err("the write failed");
    assert!(failed.is_retryable(), "{failed}");

    // The claim took the event's lease; the failure reported it, so the ledger gave it back:
    // the redelivery decides again instead of waiting out the deadline as "in progress".
    // (The claim itself is kept, unsettled, as an uncertain apply must: the redelivery finds the
    // trigger taken and writes nothing over it; the end will restore only what shows our target.)
    let redelivered = world
        .handle(&start)
        .await
        .expect("decided again, not in progress");
    assert!(!redelivered.duplicate, "{redelivered:?}");
    assert_eq!(redelivered.decision, OutcomeKind::Skipped);
    assert_eq!(
        redelivered.reason.as_deref(),
        Some("this trigger was already handled")
    );
    assert_eq!(
        world.presence(),
        SystemPresence::OnQueue,
        "the PATCH never landed"
    );
}

#[tokio::test]
async fn a_failure_before_any_write_leaves_no_lease_to_give_back() {
    let world = World::new();
    let start = world.meeting(events::CALENDAR_EVENT_STARTED, "e-start");
    let down = PlatformError::Unavailable {
        message: "503".to_owned(),
    };
    world.platform.fail_next(PlatformCall::Presence, down);

    let failed = world.handle(&start).await.expect_err("the read failed");
    assert!(matches!(failed, TransitionError::Platform(_)), "{failed}");
    assert!(world.kinds().is_empty(), "nothing was decided");

    let redelivered = world.handle(&start).await.expect("handled");
    assert_eq!(redelivered.decision, OutcomeKind::Applied);
}

#[tokio::test]
async fn a_presence_changed_by_hand_during_the_meeting_is_not_restored() {
    let world = World::new();
    let start = world.meeting(events::CALENDAR_EVENT_STARTED, "e-start");
    world.handle(&start).await.expect("applied");
    world.clock.advance(Duration::from_secs(60));
    world
        .platform
        .set_by_hand(&ada(), SystemPresence::Break, "coffee");

    let end = world.meeting(events::CALENDAR_EVENT_ENDED, "e-end");
    let outcome = world.handle(&end).await.expect("handled");

    assert_eq!(outcome.decision, OutcomeKind::Skipped, "{outcome:?}");
    assert_eq!(world.presence(), SystemPresence::Break);
}

#[tokio::test]
async fn an_agent_on_a_call_is_deferred_not_pulled_off_it() {
    let world = World::new();
    world
        .platform
        .set_routing(&ada(), RoutingStatus::Interacting);
    let start = world.meeting(events::CALENDAR_EVENT_STARTED, "e-start");

    let outcome = world.handle(&start).await.expect("handled");

    assert_eq!(outcome.decision, OutcomeKind::Deferred, "{outcome:?}");
    assert_eq!(world.presence(), SystemPresence::OnQueue);
    assert_eq!(world.platform.calls(PlatformCall::CompareAndSet), 0);
}

/// A canonical event body for `handle_batch`: one of `user`'s meetings, begun a minute ago.
fn meeting_body(world: &World, user: &str, detail_type: &str, event_id: &str) -> String {
    let now = world.clock.now();
    json!({
        "id": event_id,
        "detail-type": detail_type,
        "source": "tests",
        "detail": {
            "userId": user,
            "calendarEventId": format!("m-{user}"),
            "start": (now - chrono::Duration::minutes(1)).to_rfc3339(),
            "end": (now + chrono::Duration::minutes(30)).to_rfc3339(),
        },
    })
    .to_string()
}

#[tokio::test]
async fn a_batch_runs_different_agents_at_once_and_one_agents_events_in_order() {
    let world = World::new();
    const BOB: &str = "2b0c7a1e-5d4f-4e3a-9b8c-7d6e5f4a3b2c";
    let bob = UserId::parse(BOB).expect("valid");
    world.platform.add_user(
        &bob,
        SystemPresence::OnQueue,
        crate::model::RoutingStatus::Idle,
        None,
    );
    // Two events per agent: none takes the bulk start, all take the one-event path.
    let bodies = vec![
        meeting_body(&world, ADA, events::CALENDAR_EVENT_STARTED, "ada-start"),
        meeting_body(&world, BOB, events::CALENDAR_EVENT_STARTED, "bob-start"),
        meeting_body(&world, ADA, events::CALENDAR_EVENT_ENDED, "ada-end"),
        meeting_body(&world, BOB, events::CALENDAR_EVENT_ENDED, "bob-end"),
    ];
    let gate = world.platform.hold_presence_reads();
    let service = world.service.clone();
    let deadline = world.deadline();
    let batch = tokio::spawn(async move { service.handle_batch(&bodies, deadline).await });

    // Both agents' starts read their presence at the same time: one did not wait for the other.
    tokio::time::timeout(Duration::from_secs(10), gate.until_held(2))
        .await
        .expect("the two agents' events never overlapped");
    gate.open();
    let results = batch.await.expect("the batch ran");

    assert_eq!(
        decisions(results),
        [
            OutcomeKind::Applied,
            OutcomeKind::Applied,
            OutcomeKind::Restored,
            OutcomeKind::Restored
        ]
    );
    // Each agent's start was decided before its end.
    assert_eq!(
        world.kinds(),
        [DecisionKind::Applied, DecisionKind::Restored]
    );
    assert_eq!(
        world.kinds_of(&bob),
        [DecisionKind::Applied, DecisionKind::Restored]
    );
}

/// Ada, Bob and Cy each in a meeting applied one by one; Dee on queue with none.
async fn three_in_a_meeting(world: &World) -> Vec<UserId> {
    const OTHERS: [&str; 3] = [
        "2b0c7a1e-5d4f-4e3a-9b8c-7d6e5f4a3b2c",
        "3c1d8b2f-6e5a-4f4b-8c9d-8e7f6a5b4c3d",
        "4d2e9c3a-7f6b-4a5c-9dae-9f8a7b6c5d4e",
    ];
    let mut users = vec![ada()];
    for id in OTHERS {
        let user = UserId::parse(id).expect("valid");
        world.platform.add_user(
            &user,
            SystemPresence::OnQueue,
            crate::model::RoutingStatus::Idle,
            None,
        );
        users.push(user);
    }
    for user in &users[..3] {
        let body = meeting_body(
            world,
            user.as_str(),
            events::CALENDAR_EVENT_STARTED,
            &format!("start-{user}"),
        );
        let start = parse_json(&body).expect("a canonical event");
        let applied = world.handle(&start).await.expect("handled");
        assert_eq!(applied.decision, OutcomeKind::Applied);
    }
    users
}

fn ends(world: &World, users: &[UserId]) -> Vec<String> {
    users
        .iter()
        .map(|user| {
            meeting_body(
                world,
                user.as_str(),
                events::CALENDAR_EVENT_ENDED,
                &format!("end-{user}"),
            )
        })
        .collect()
}

fn system_of(world: &World, user: &UserId) -> SystemPresence {
    world.platform.current(user).expect("known").system_presence
}

#[tokio::test]
async fn a_batch_of_ends_restores_with_one_bulk_read_and_one_bulk_write() {
    let world = World::new();
    let users = three_in_a_meeting(&world).await;
    // Bob changes his presence by hand during the meeting: it must not be restored.
    world
        .platform
        .set_by_hand(&users[1], SystemPresence::Busy, "");
    let (reads, writes) = (
        world.platform.calls(PlatformCall::Presence),
        world.platform.calls(PlatformCall::CompareAndSet),
    );
    let (bulk_reads, bulk_writes) = (
        world.platform.calls(PlatformCall::Presences),
        world.platform.calls(PlatformCall::SetPresences),
    );

    let results = world
        .service
        .handle_batch(&ends(&world, &users), world.deadline())
        .await;

    assert_eq!(
        decisions(results),
        [
            OutcomeKind::Restored,
            OutcomeKind::Skipped,
            OutcomeKind::Restored,
            OutcomeKind::Skipped
        ]
    );
    assert_eq!(system_of(&world, &users[0]), SystemPresence::OnQueue);
    assert_eq!(system_of(&world, &users[1]), SystemPresence::Busy);
    assert_eq!(system_of(&world, &users[2]), SystemPresence::OnQueue);
    assert_eq!(system_of(&world, &users[3]), SystemPresence::OnQueue);
    // One bulk read and one bulk write for the batch; no single-user call. Dee (nothing to
    // restore) was decided on the stored state alone.
    assert_eq!(
        world.platform.calls(PlatformCall::Presences),
        bulk_reads + 1
    );
    assert_eq!(
        world.platform.calls(PlatformCall::SetPresences),
        bulk_writes + 1
    );
    assert_eq!(world.platform.calls(PlatformCall::Presence), reads);
    assert_eq!(world.platform.calls(PlatformCall::CompareAndSet), writes);
    assert_eq!(
        world.kinds_of(&users[1]),
        [DecisionKind::Applied, DecisionKind::Skipped]
    );
}

#[tokio::test]
async fn an_unanswered_bulk_restore_gives_each_end_back_and_the_redelivery_restores() {
    let world = World::new();
    let users = three_in_a_meeting(&world).await;
    let batch = ends(&world, &users[..3]);
    let lost = PlatformError::Unanswered {
        message: "no answer".to_owned(),
    };
    world.platform.fail_next(PlatformCall::SetPresences, lost);

    let first = world.service.handle_batch(&batch, world.deadline()).await;
    assert!(first.iter().all(Result::is_err), "{first:?}");

    // SQS redelivers the batch: nobody stays in Meeting because an answer was lost.
    let again = world.service.handle_batch(&batch, world.deadline()).await;
    assert_eq!(decisions(again), [OutcomeKind::Restored; 3]);
    for user in &users[..3] {
        assert_eq!(system_of(&world, user), SystemPresence::OnQueue);
    }
}

/// A team lead's meeting sets the team's presence; a rule's skip is recorded with the rule; an
/// agent of no profile's team gets the policy's own sections. Each record names the profile.
#[tokio::test]
async fn the_agents_profile_and_the_deciding_rule_decide_and_are_recorded() {
    let policy = crate::policy::DEFAULT_POLICY.to_owned()
        + r#"
[[rules]]
name = "ignore-personal"
categories = ["Personal"]
skip = "personal entries are not meetings"

[[profiles]]
name = "team-leads"
groups = ["g-leads"]

[profiles.meeting]
presence = "Busy"
"#;
    let w = World::deciding_by(&policy);
    let mut personal = w.meeting("Calendar Event Started", "personal-start");
    if let InboundEvent::Calendar { entry, .. } = &mut personal.event {
        entry.categories = vec!["Personal".to_owned()];
        entry.trigger_id = crate::state::TriggerId::parse("p-1").expect("id");
    }
    w.handle(&personal).await.expect("handled");
    assert_eq!(w.presence(), SystemPresence::OnQueue, "skipped by the rule");

    w.platform.join_group("g-leads", &ada());
    w.handle(&w.meeting("Calendar Event Started", "start-1"))
        .await
        .expect("handled");
    assert_eq!(
        w.presence(),
        SystemPresence::Busy,
        "the team leads' presence"
    );

    let records = w.store.audit_records(&ada());
    let said: Vec<(DecisionKind, &serde_json::Value, &serde_json::Value)> = records
        .iter()
        .map(|r| (r.kind, &r.details["profile"], &r.details["rule"]))
        .collect();
    assert_eq!(
        said,
        [
            (
                DecisionKind::Skipped,
                &json!("default"),
                &json!("ignore-personal")
            ),
            (
                DecisionKind::Applied,
                &json!("team-leads"),
                &serde_json::Value::Null
            ),
        ]
    );
    assert!(
        records[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("personal entries are not meetings")),
        "{:?}",
        records[0].reason
    );
}

/// Fifty agents of one team start a meeting at the same moment against a cap of ten: exactly
/// ten are applied and hold a slot; forty wait on queue, audited with the team and cap, their
/// subscribers told why once. An end frees a slot; the sweep's next look applies exactly one
/// waiting agent, and the rest wait on.
#[tokio::test]
async fn fifty_concurrent_starts_against_a_cap_of_ten_apply_exactly_ten() {
    let policy = crate::policy::DEFAULT_POLICY.to_owned()
        + r#"
[[profiles]]
name = "tier-1"
groups = ["g-tier1"]

[profiles.guard]
max_off_queue = 10
"#;
    let w = World::deciding_by(&policy);
    let users = w.team_of(50, "g-tier1");
    let edge = |user: &UserId, detail_type: &str| {
        w.edge_of(detail_type, user, &format!("standup-{user}"), json!({}))
    };
    let starts = users.iter().map(|user| {
        w.service
            .handle(edge(user, "Calendar Event Started"), w.deadline())
    });
    let outcomes: Vec<OutcomeKind> = futures::future::join_all(starts)
        .await
        .into_iter()
        .map(|r| r.expect("handled").decision)
        .collect();
    let count = |kind: OutcomeKind| outcomes.iter().filter(|k| **k == kind).count();
    assert_eq!(
        (count(OutcomeKind::Applied), count(OutcomeKind::Deferred)),
        (10, 40),
        "{outcomes:?}"
    );
    let holders = w.store.slot_holders("tier-1");
    assert_eq!(holders.len(), 10);
    let in_meeting: Vec<&UserId> = users
        .iter()
        .filter(|u| {
            w.platform.current(u).expect("known").system_presence == SystemPresence::Meeting
        })
        .collect();
    assert_eq!(in_meeting.len(), 10);
    assert!(
        in_meeting.iter().all(|u| holders.contains(u)),
        "the holders are the ones applied"
    );
    let waiting = users
        .iter()
        .find(|u| !holders.contains(u))
        .expect("one waits");
    let records = w.store.audit_records(waiting);
    let last = records.last().expect("audited");
    assert_eq!(last.kind, DecisionKind::Deferred);
    assert_eq!(last.details["guard"], json!({"team": "tier-1", "cap": 10}));
    let held = w.store.state_of(waiting).expect("stored").outbox;
    assert_eq!(
        held.iter().map(|n| n.kind).collect::<Vec<_>>(),
        [crate::state::NotificationKind::ChangeHeld],
        "told why"
    );

    // An applied agent's meeting ends: the slot is free.
    w.service
        .handle(edge(in_meeting[0], "Calendar Event Ended"), w.deadline())
        .await
        .expect("ended");
    assert_eq!(w.store.slot_holders("tier-1").len(), 9);

    // The sweep looks again at the waiting agents: one takes the slot, the rest wait on.
    w.clock.advance(Duration::from_secs(61));
    let mut due = Vec::new();
    for user in users.iter().filter(|u| !holders.contains(u)) {
        due.push((w.store.state_of(user).expect("stored"), Edge::Start));
    }
    let looked: Vec<OutcomeKind> = w
        .service
        .reevaluate_due(due, w.deadline())
        .await
        .into_iter()
        .map(|r| r.expect("decided").decision)
        .collect();
    let applied = looked
        .iter()
        .filter(|k| **k == OutcomeKind::Applied)
        .count();
    let waited = looked
        .iter()
        .filter(|k| **k == OutcomeKind::Deferred)
        .count();
    assert_eq!((applied, waited), (1, 39), "{looked:?}");
    assert_eq!(w.store.slot_holders("tier-1").len(), 10);
    let again = w.store.state_of(waiting).expect("stored");
    if !w.store.slot_holders("tier-1").contains(waiting) {
        assert!(again.outbox.is_empty(), "told once, not at each look");
    }
}

/// An exempt organiser's meeting, and a member of an exempt group, pass a full guard and take
/// no slot; anyone else waits.
#[tokio::test]
async fn exempt_organisers_and_groups_pass_a_full_guard() {
    let policy = crate::policy::DEFAULT_POLICY.to_owned()
        + r#"
[[profiles]]
name = "floor"
groups = ["g-floor"]

[profiles.guard]
max_off_queue = 0
exempt_organizers = ["Director@Example.com"]
exempt_groups = ["g-supervisors"]
"#;
    let w = World::deciding_by(&policy);
    let users = w.team_of(3, "g-floor");
    w.platform.join_group("g-supervisors", &users[2]);
    let start = |user: &UserId, organizer: &str| {
        let trigger = format!("briefing-{user}");
        let extra = json!({"organizerEmail": organizer});
        w.edge_of("Calendar Event Started", user, &trigger, extra)
    };
    let mut decided = Vec::new();
    for (user, organizer) in users.iter().zip([
        "director@example.com",
        "colleague@example.com",
        "colleague@example.com",
    ]) {
        let outcome = w
            .service
            .handle(start(user, organizer), w.deadline())
            .await
            .expect("handled");
        decided.push(outcome.decision);
    }
    assert_eq!(
        decided,
        [
            OutcomeKind::Applied,
            OutcomeKind::Deferred,
            OutcomeKind::Applied
        ],
        "the director's meeting; a colleague's, held; a supervisor's own"
    );
    assert!(
        w.store.slot_holders("floor").is_empty(),
        "exempt starts take no slot"
    );
}

/// A percentage cap counts the team's agents WFM schedules on queue at that moment: five of
/// ten on queue at 40% is a cap of two.
#[tokio::test]
async fn a_percentage_cap_counts_the_team_scheduled_on_queue() {
    use crate::decide::ShiftView;
    use crate::model::ActivityCategory;
    let policy = crate::policy::DEFAULT_POLICY.to_owned()
        + r#"
[[profiles]]
name = "tier-1"
groups = ["g-tier1"]

[profiles.guard]
max_percent_on_queue = 40
"#;
    let w = World::deciding_by(&policy);
    let users = w.team_of(10, "g-tier1");
    for (index, user) in users.iter().enumerate() {
        let activity = if index < 5 {
            ActivityCategory::OnQueueWork
        } else {
            ActivityCategory::Meeting
        };
        w.platform.set_shift(user, ShiftView::Activity(activity));
    }
    let mut decided = Vec::new();
    for user in &users[5..8] {
        let trigger = format!("sync-{user}");
        let parsed = w.edge_of("Calendar Event Started", user, &trigger, json!({}));
        let outcome = w
            .service
            .handle(parsed, w.deadline())
            .await
            .expect("handled");
        decided.push(outcome.decision);
    }
    assert_eq!(
        decided,
        [
            OutcomeKind::Applied,
            OutcomeKind::Applied,
            OutcomeKind::Deferred
        ]
    );
    let waiting = w.store.audit_records(&users[7]);
    assert_eq!(
        waiting.last().expect("audited").details["guard"],
        json!({"team": "tier-1", "cap": 2})
    );
}
