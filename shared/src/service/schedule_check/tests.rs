//! Planning and the sweep on fakes: schedules in memory, the transition use case on the fake
//! platform and table, a manual clock.

use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use serde_json::{Value, json};

use super::*;
use crate::fakes::calendar::FakeSchedules;
use crate::fakes::world::{ADA, FakeWorld, ada};
use crate::model::{RoutingStatus, SystemPresence, UserId};
use crate::service::transition::OutcomeKind;

struct Planner {
    world: FakeWorld,
    schedules: FakeSchedules,
    check: ScheduleCheck,
}

fn planner() -> Planner {
    let start = DateTime::parse_from_rfc3339("2026-03-19T14:00:00Z").expect("valid");
    let world = FakeWorld::starting_at(start.to_utc());
    let schedules = FakeSchedules::default();
    let check = ScheduleCheck {
        transition: world.transition.clone(),
        policy: world.transition.deps().policy.clone(),
        schedules: Arc::new(schedules.clone()),
        state: Arc::new(world.store.clone()),
        shifts: None,
        clock: world.shared_clock(),
        budget: 10,
    };
    Planner {
        world,
        schedules,
        check,
    }
}

impl Planner {
    /// `Calendar Event Upserted` for Ada's meeting `m-1`, `from`..`to` minutes from now.
    async fn upsert(&self, id: &str, from: i64, to: i64) -> PlanOutcome {
        let now = self.world.clock.now();
        let event = json!({
            "id": id,
            "detail-type": "Calendar Event Upserted",
            "source": "presence-autopilot.calendar",
            "detail": {
                "userId": ADA,
                "calendarEventId": "m-1",
                "start": (now + chrono::Duration::minutes(from)).to_rfc3339(),
                "end": (now + chrono::Duration::minutes(to)).to_rfc3339(),
                "subject": "Quarterly planning",
            },
        });
        self.check
            .plan_event(event, self.world.deadline())
            .await
            .expect("planned")
    }

    fn inputs(&self) -> Vec<Value> {
        self.schedules
            .planned()
            .iter()
            .map(|s| serde_json::from_str(&s.input).expect("an input is JSON"))
            .collect()
    }
}

#[tokio::test]
async fn a_future_meeting_becomes_a_start_and_an_end_schedule_holding_our_canonical_event() {
    let p = planner();

    let outcome = p.upsert("e-1", 10, 40).await;

    assert_eq!(outcome.action, "planned", "{outcome:?}");
    let planned = p.schedules.planned();
    let now = p.world.clock.now();
    let times: Vec<_> = planned.iter().map(|s| s.at).collect();
    assert_eq!(
        times,
        [
            now + chrono::Duration::minutes(10),
            now + chrono::Duration::minutes(40)
        ]
    );
    let inputs = p.inputs();
    assert_eq!(inputs[0]["detail-type"], "Calendar Event Started");
    assert_eq!(inputs[1]["detail-type"], "Calendar Event Ended");
    for input in &inputs {
        // What the burst queue carries: no made-up EventBridge account or region.
        let mut fields: Vec<&str> = input
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(fields, ["detail", "detail-type", "id", "source", "time"]);
        assert_eq!(input["detail"]["userId"], ADA);
        // The default policy does not show subjects: a planned event does not keep one.
        assert!(input["detail"].get("subject").is_none(), "{input}");
    }
}

#[tokio::test]
async fn a_moved_meeting_moves_its_two_schedules_and_a_deleted_one_removes_them() {
    let p = planner();
    p.upsert("e-1", 10, 40).await;

    p.upsert("e-2", 20, 50).await;

    let planned = p.schedules.planned();
    assert_eq!(planned.len(), 2, "the same two names: {planned:?}");
    assert_eq!(
        planned[0].at,
        p.world.clock.now() + chrono::Duration::minutes(20)
    );
    let deleted = json!({
        "id": "e-3",
        "detail-type": "Calendar Event Deleted",
        "detail": p.inputs()[0]["detail"].clone(),
    });
    let outcome = p
        .check
        .plan_event(deleted, p.world.deadline())
        .await
        .expect("unplanned");
    assert_eq!(outcome.action, "removed", "{outcome:?}");
    assert!(p.schedules.planned().is_empty());
}

#[tokio::test]
async fn a_meeting_already_running_starts_now_through_the_transition() {
    let p = planner();

    let outcome = p.upsert("e-1", -5, 25).await;

    assert_eq!(outcome.action, "started", "{outcome:?}");
    let presence = p.world.platform.current(&ada()).expect("known");
    assert_eq!(presence.system_presence, SystemPresence::Meeting);
    assert_eq!(
        p.schedules.planned().len(),
        1,
        "only the end is left to fire"
    );
}

/// Agents on a call when the meeting `m-1` started (deferred): Ada and `count - 1` more.
async fn deferred_agents(p: &Planner, count: usize) -> Vec<UserId> {
    let mut users = vec![ada()];
    for index in 1..count {
        let user = UserId::parse(&format!("00000000-0000-4000-8000-{index:012}")).expect("id");
        p.world.platform.add_user(
            &user,
            SystemPresence::OnQueue,
            RoutingStatus::Interacting,
            None,
        );
        users.push(user);
    }
    p.world
        .platform
        .set_routing(&ada(), RoutingStatus::Interacting);
    for (index, user) in users.iter().enumerate() {
        let outcome = p
            .world
            .transition
            .handle_json(&meeting_edge(p, "Started", index, user), p.world.deadline())
            .await
            .expect("handled");
        assert_eq!(outcome.decision, OutcomeKind::Deferred, "{outcome:?}");
    }
    users
}

fn meeting_edge(p: &Planner, edge: &str, index: usize, user: &UserId) -> String {
    let now = p.world.clock.now();
    json!({
        "id": format!("{edge}-{index}"), "detail-type": format!("Calendar Event {edge}"),
        "source": "presence-autopilot.test",
        "detail": {
            "userId": user.as_str(), "calendarEventId": "m-1",
            "start": (now - chrono::Duration::minutes(1)).to_rfc3339(),
            "end": (now + chrono::Duration::minutes(30)).to_rfc3339(),
        },
    })
    .to_string()
}

#[tokio::test]
async fn the_sweep_applies_many_deferred_starts_with_one_bulk_read_and_one_bulk_write() {
    use crate::fakes::platform::PlatformCall::{
        CompareAndSet, Presence, Presences, RoutingStatuses, SetPresences,
    };
    let p = planner();
    let users = deferred_agents(&p, 4).await;
    for user in &users {
        p.world.platform.set_routing(user, RoutingStatus::Idle);
    }
    p.world.clock.advance(Duration::from_secs(120));
    let calls = [
        Presence,
        Presences,
        CompareAndSet,
        SetPresences,
        RoutingStatuses,
    ];
    let before: Vec<usize> = calls.iter().map(|c| p.world.platform.calls(*c)).collect();

    let report = p.check.sweep(p.world.deadline()).await.expect("swept");

    assert_eq!((report.due, report.processed, report.errors), (4, 4, 0));
    let made: Vec<usize> = calls
        .iter()
        .zip(before)
        .map(|(c, before)| p.world.platform.calls(*c) - before)
        .collect();
    assert_eq!(
        made,
        [0, 1, 0, 1, 1],
        "one bulk read, one routing read, one bulk write"
    );
    for user in &users {
        let presence = p.world.platform.current(user).expect("known");
        assert_eq!(presence.system_presence, SystemPresence::Meeting, "{user}");
    }
}

/// The sweep read a deferred state; the meeting's end came before the sweep's claim. The claim
/// is conditional on what was read: it loses, the user is decided again, and nothing applies.
#[tokio::test]
async fn an_end_that_lands_after_the_sweep_read_the_state_wins() {
    let p = planner();
    let users = deferred_agents(&p, 2).await;
    for user in &users {
        p.world.platform.set_routing(user, RoutingStatus::Idle);
    }
    p.world.clock.advance(Duration::from_secs(120));
    let read: Vec<UserState> = futures::future::join_all(
        users
            .iter()
            .map(|u| async { p.world.store.get(u).await.expect("read").expect("stored") }),
    )
    .await;
    let ended = p
        .world
        .transition
        .handle_json(&meeting_edge(&p, "Ended", 0, &users[0]), p.world.deadline())
        .await
        .expect("end handled");
    assert_ne!(ended.decision, OutcomeKind::Applied, "{ended:?}");

    let due = read.into_iter().map(|state| (state, Edge::Start)).collect();
    let results = p
        .world
        .transition
        .reevaluate_due(due, p.world.deadline())
        .await;

    let decisions: Vec<OutcomeKind> = results
        .into_iter()
        .map(|r| r.expect("decided").decision)
        .collect();
    assert_eq!(decisions, [OutcomeKind::Skipped, OutcomeKind::Applied]);
    let presence = |user: &UserId| {
        p.world
            .platform
            .current(user)
            .expect("known")
            .system_presence
    };
    assert_eq!(
        presence(&users[0]),
        SystemPresence::OnQueue,
        "the ended meeting is not applied"
    );
    assert_eq!(presence(&users[1]), SystemPresence::Meeting);
}

#[tokio::test]
async fn the_sweep_applies_a_deferred_start_once_the_call_is_over() {
    let p = planner();
    p.world
        .platform
        .set_routing(&ada(), RoutingStatus::Interacting);
    p.upsert("e-1", -1, 30).await;
    let presence = || {
        p.world
            .platform
            .current(&ada())
            .expect("known")
            .system_presence
    };
    assert_eq!(presence(), SystemPresence::OnQueue, "deferred: on a call");

    p.world.platform.set_routing(&ada(), RoutingStatus::Idle);
    p.world.clock.advance(Duration::from_secs(120));
    let report = p.check.sweep(p.world.deadline()).await.expect("swept");

    assert_eq!(
        (report.due, report.processed, report.errors),
        (1, 1, 0),
        "{report:?}"
    );
    assert_eq!(presence(), SystemPresence::Meeting);
}
