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
        let start = DateTime::parse_from_rfc3339("2026-03-19T14:00:00Z").expect("valid");
        let FakeWorld {
            clock,
            platform,
            store,
            transition,
        } = FakeWorld::starting_at(start.to_utc());
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
        let records = self.store.audit_records(&ada());
        records.into_iter().map(|record| record.kind).collect()
    }
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
