//! schedule-check on the real wire: EventBridge Scheduler, DynamoDB and SQS on moto, Genesys
//! on the simulator. moto stores schedules but never fires them; `fire_due` plays the Scheduler.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use genesys_sim::seed::DEMO_AGENTS;
use presence_autopilot::aws::scheduler::{EventBridgeSchedules, SchedulerTarget};
use presence_autopilot::clock::Deadline;
use presence_autopilot::model::{SystemPresence, UserId};
use presence_autopilot::ports::StateStore;
use presence_autopilot::service::schedule_check::ScheduleCheck;
use presence_autopilot::state::{
    ActiveTrigger, AppliedOverride, DecisionKind, PresenceRef, TriggerId, TriggerKind, UserState,
};
use serde_json::{Value, json};

use crate::support::moto;
use crate::support::transition::Harness;

const UPSERTED: &str = "Calendar Event Upserted";
const DELETED: &str = "Calendar Event Deleted";
/// The burst queue: schedules send to it, as the bus rules do (infra/template.yaml).
const TARGET_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:presence-autopilot-burst";

struct Planner {
    h: Harness,
    check: ScheduleCheck,
    scheduler: aws_sdk_scheduler::Client,
    group: String,
}

impl Planner {
    async fn start(budget: usize) -> Self {
        let h = Harness::start().await;
        let scheduler = moto::scheduler();
        let group = moto::unique_name("presence-autopilot");
        scheduler
            .create_schedule_group()
            .name(&group)
            .send()
            .await
            .expect("schedule group");
        let target = SchedulerTarget {
            group: group.clone(),
            target_arn: TARGET_ARN.to_owned(),
            role_arn: "arn:aws:iam::123456789012:role/presence-autopilot-scheduler".to_owned(),
            dead_letter_arn: "arn:aws:sqs:us-east-1:123456789012:presence-autopilot-scheduler-dlq"
                .to_owned(),
        };
        let check = ScheduleCheck {
            transition: h.service.clone(),
            policy: h.service.deps().policy.clone(),
            schedules: Arc::new(EventBridgeSchedules::new(scheduler.clone(), target)),
            state: h.store.clone(),
            shifts: Some(h.shifts.clone()),
            clock: Arc::new(h.clock.clone()),
            budget,
        };
        Self {
            h,
            check,
            scheduler,
            group,
        }
    }

    /// name → (at expression, target input) of every schedule in the group.
    async fn schedules(&self) -> Vec<(String, String, Value)> {
        let listed = self
            .scheduler
            .list_schedules()
            .group_name(&self.group)
            .send()
            .await
            .expect("list");
        let mut all = Vec::new();
        for summary in listed.schedules {
            let name = summary.name.unwrap_or_default();
            let got = self
                .scheduler
                .get_schedule()
                .group_name(&self.group)
                .name(&name)
                .send()
                .await
                .expect("get");
            let target = got.target.expect("target");
            assert_eq!(target.arn, TARGET_ARN);
            assert_eq!(got.schedule_expression_timezone.as_deref(), Some("UTC"));
            let input: Value = serde_json::from_str(target.input.as_deref().unwrap_or("null"))
                .expect("input json");
            all.push((name, got.schedule_expression.unwrap_or_default(), input));
        }
        all.sort_by(|a, b| a.1.cmp(&b.1));
        all
    }

    async fn plan(
        &self,
        detail_type: &str,
        id: &str,
        user: &str,
        trigger: &str,
        start: i64,
        end: i64,
    ) -> Value {
        let event = self.h.calendar(detail_type, id, user, trigger, start, end);
        serde_json::to_value(
            self.check
                .plan_event(
                    serde_json::from_str(&event).expect("an event is JSON"),
                    self.h.deadline(),
                )
                .await
                .expect("planned"),
        )
        .expect("json")
    }

    /// Plays EventBridge Scheduler: every schedule due by now fires its input at transition.
    async fn fire_due(&self) -> Vec<String> {
        let mut decisions = Vec::new();
        for (name, expression, input) in self.schedules().await {
            let at = parse_at(&expression);
            if at <= self.h.now() {
                let outcome = self
                    .h
                    .service
                    .handle_json(&input.to_string(), self.h.deadline())
                    .await
                    .expect("transition");
                decisions.push(outcome.decision.to_string());
                // ActionAfterCompletion: DELETE.
                self.scheduler
                    .delete_schedule()
                    .group_name(&self.group)
                    .name(&name)
                    .send()
                    .await
                    .expect("delete");
            }
        }
        decisions
    }

    fn advance(&self, seconds: i64) {
        self.h.clock.advance(Duration::from_secs(
            u64::try_from(seconds).expect("positive"),
        ));
    }
}

fn parse_at(expression: &str) -> DateTime<Utc> {
    let inner = expression.trim_start_matches("at(").trim_end_matches(')');
    chrono::NaiveDateTime::parse_from_str(inner, "%Y-%m-%dT%H:%M:%S")
        .expect("at(...) expression")
        .and_utc()
}

fn ada() -> &'static str {
    DEMO_AGENTS[0].0
}

#[tokio::test]
async fn an_upserted_meeting_becomes_two_schedules_that_move_and_go_away() {
    let p = Planner::start(200).await;
    let planned = p
        .plan(UPSERTED, "u-1", "ada@example.com", "m-1", 30, 60)
        .await;
    assert_eq!(planned["action"], "planned", "{planned}");

    let schedules = p.schedules().await;
    assert_eq!(schedules.len(), 2);
    let (start, end) = (&schedules[0], &schedules[1]);
    assert!(start.0.ends_with("-start") && end.0.ends_with("-end"));
    assert_eq!(
        parse_at(&start.1),
        (p.h.now() + chrono::Duration::minutes(30)).with_nanosecond_zero()
    );
    assert_eq!(start.2["detail-type"], "Calendar Event Started");
    assert_eq!(end.2["detail-type"], "Calendar Event Ended");
    assert_eq!(start.2["detail"]["userId"], ada());
    assert_eq!(start.2["detail"]["calendarEventId"], "m-1");
    assert!(
        start.2["detail"].get("subject").is_none(),
        "the subject is not stored in the schedule"
    );

    p.plan(UPSERTED, "u-2", "ada@example.com", "m-1", 30, 60)
        .await;
    assert_eq!(
        p.schedules().await.len(),
        2,
        "the same upsert twice leaves two schedules"
    );

    p.plan(UPSERTED, "u-3", "ada@example.com", "m-1", 90, 120)
        .await;
    let moved = p.schedules().await;
    assert_eq!(moved.len(), 2);
    assert_eq!(
        parse_at(&moved[0].1),
        (p.h.now() + chrono::Duration::minutes(90)).with_nanosecond_zero()
    );
    assert_ne!(
        moved[0].2["id"], start.2["id"],
        "a moved start fires under a new event id"
    );

    let removed = p
        .plan(DELETED, "u-4", "ada@example.com", "m-1", 90, 120)
        .await;
    assert_eq!(removed["action"], "removed");
    assert!(p.schedules().await.is_empty());
}

#[tokio::test]
async fn a_declined_or_cancelled_upsert_removes_what_was_planned() {
    let p = Planner::start(200).await;
    p.plan(UPSERTED, "u-1", ada(), "m-1", 30, 60).await;
    let mut declined: Value =
        serde_json::from_str(&p.h.calendar(UPSERTED, "u-2", ada(), "m-1", 30, 60)).expect("json");
    declined["detail"]["responseStatus"] = json!("declined");

    let outcome = p
        .check
        .plan_event(declined, p.h.deadline())
        .await
        .expect("planned");

    assert_eq!(
        (outcome.action.as_str(), outcome.reason.as_deref()),
        ("removed", Some("the user declined the event"))
    );
    assert!(p.schedules().await.is_empty());
}

#[tokio::test]
async fn firing_the_planned_events_gives_the_same_end_state_as_live_events() {
    let p = Planner::start(200).await;
    p.plan(UPSERTED, "u-1", ada(), "m-1", 10, 40).await;
    assert!(p.fire_due().await.is_empty(), "nothing due yet");

    p.advance(10 * 60);
    assert_eq!(p.fire_due().await, vec!["applied"]);
    assert_eq!(
        p.h.presence_of(ada()).await.system_presence,
        SystemPresence::Meeting
    );

    p.advance(30 * 60);
    assert_eq!(p.fire_due().await, vec!["restored"]);
    assert_eq!(
        p.h.presence_of(ada()).await.system_presence,
        SystemPresence::Available
    );
    assert_eq!(
        p.h.audit_kinds(ada()).await,
        vec![DecisionKind::Applied, DecisionKind::Restored]
    );
    assert!(p.schedules().await.is_empty());
}

#[tokio::test]
async fn an_upserted_meeting_already_in_progress_starts_now() {
    let p = Planner::start(200).await;
    let planned = p.plan(UPSERTED, "u-1", ada(), "m-1", -5, 25).await;
    assert_eq!(planned["action"], "started", "{planned}");
    assert_eq!(
        p.h.presence_of(ada()).await.system_presence,
        SystemPresence::Meeting
    );
    let schedules = p.schedules().await;
    assert_eq!(schedules.len(), 1, "only the end is planned: {schedules:?}");
    assert_eq!(schedules[0].2["detail-type"], "Calendar Event Ended");
}

#[tokio::test]
async fn a_meeting_moved_later_after_it_started_ends_now_and_starts_again_when_due() {
    let p = Planner::start(200).await;
    p.plan(UPSERTED, "u-1", ada(), "m-1", -5, 25).await;
    assert_eq!(
        p.h.presence_of(ada()).await.system_presence,
        SystemPresence::Meeting
    );

    let moved = p.plan(UPSERTED, "u-2", ada(), "m-1", 30, 60).await;

    assert_eq!(moved["action"], "planned", "{moved}");
    assert_eq!(
        p.h.presence_of(ada()).await.system_presence,
        SystemPresence::Available,
        "restored as an ended meeting is"
    );
    p.advance(30 * 60);
    assert_eq!(p.fire_due().await, vec!["applied"]);
    assert_eq!(
        p.h.audit_kinds(ada()).await,
        vec![
            DecisionKind::Applied,
            DecisionKind::Restored,
            DecisionKind::Applied
        ]
    );
}

#[tokio::test]
async fn a_meeting_deleted_or_moved_into_the_past_after_it_started_ends_now() {
    let p = Planner::start(200).await;
    p.plan(UPSERTED, "u-1", ada(), "m-1", -5, 25).await;
    let removed = p.plan(DELETED, "u-2", ada(), "m-1", -5, 25).await;
    assert_eq!(removed["action"], "removed", "{removed}");
    assert_eq!(
        p.h.presence_of(ada()).await.system_presence,
        SystemPresence::Available
    );

    p.plan(UPSERTED, "u-3", ada(), "m-2", -5, 25).await;
    let over = p.plan(UPSERTED, "u-4", ada(), "m-2", -30, -1).await;
    assert_eq!(
        (over["action"].as_str(), over["reason"].as_str()),
        (Some("removed"), Some("the event is over"))
    );
    assert_eq!(
        p.h.presence_of(ada()).await.system_presence,
        SystemPresence::Available
    );
    assert!(p.schedules().await.is_empty());
    assert_eq!(
        p.h.audit_kinds(ada()).await,
        vec![
            DecisionKind::Applied,
            DecisionKind::Restored,
            DecisionKind::Applied,
            DecisionKind::Restored
        ]
    );
}

#[tokio::test]
async fn a_missed_end_is_restored_by_the_sweep_and_audited_as_inferred() {
    let p = Planner::start(200).await;
    p.h.service
        .handle_json(
            &p.h.calendar("Calendar Event Started", "e-1", ada(), "m-1", -1, 10),
            p.h.deadline(),
        )
        .await
        .expect("start");

    p.advance(12 * 60);
    let early = p.check.sweep(p.h.deadline()).await.expect("sweep");
    assert_eq!(
        (early.due, early.processed),
        (0, 0),
        "within the grace period nothing is due"
    );

    p.advance(5 * 60);
    let report = p.check.sweep(p.h.deadline()).await.expect("sweep");

    assert_eq!((report.due, report.processed, report.errors), (1, 1, 0));
    assert_eq!(
        p.h.presence_of(ada()).await.system_presence,
        SystemPresence::Available
    );
    let last = p.h.audit(ada()).await.pop().expect("records");
    assert_eq!(
        (last.kind, last.reason.as_deref()),
        (
            DecisionKind::Restored,
            Some("the end was inferred by the sweep")
        )
    );
    let nothing = p.check.sweep(p.h.deadline()).await.expect("sweep");
    assert_eq!((nothing.due, nothing.processed), (0, 0));
}

#[tokio::test]
async fn a_deferred_start_is_applied_by_the_sweep_once_the_call_ends() {
    let p = Planner::start(200).await;
    let routing = |status: &'static str| json!({"status": status});
    p.h.sim
        .control(
            reqwest::Method::PUT,
            &format!("/sim/users/{}/routingstatus", ada()),
            routing("INTERACTING"),
        )
        .await;
    let start =
        p.h.service
            .handle_json(
                &p.h.calendar("Calendar Event Started", "e-1", ada(), "m-1", -1, 30),
                p.h.deadline(),
            )
            .await
            .expect("start");
    assert_eq!(start.decision, "deferred");

    p.advance(61);
    let still_busy = p.check.sweep(p.h.deadline()).await.expect("sweep");
    assert_eq!(still_busy.processed, 1);
    assert_eq!(
        p.h.presence_of(ada()).await.system_presence,
        SystemPresence::Available,
        "still on the call"
    );

    p.h.sim
        .control(
            reqwest::Method::PUT,
            &format!("/sim/users/{}/routingstatus", ada()),
            routing("IDLE"),
        )
        .await;
    p.advance(61);
    let report = p.check.sweep(p.h.deadline()).await.expect("sweep");

    assert_eq!((report.processed, report.errors), (1, 0));
    assert_eq!(
        p.h.presence_of(ada()).await.system_presence,
        SystemPresence::Meeting
    );
    let kinds = p.h.audit_kinds(ada()).await;
    assert_eq!(
        kinds,
        vec![
            DecisionKind::Deferred,
            DecisionKind::Deferred,
            DecisionKind::Applied
        ]
    );
}

/// Seeds `count` users whose Meeting override (ours) ended 20 minutes ago without an end event.
async fn seed_missed_ends(
    sim: &crate::support::sim::TestSim,
    genesys: &presence_autopilot::genesys::GenesysClient,
    store: &dyn StateStore,
    now: DateTime<Utc>,
    count: usize,
    deadline: Deadline,
) -> Vec<UserId> {
    sim.control(
        reqwest::Method::PUT,
        "/sim/ratelimit",
        json!({"requestsPerWindow": 100_000, "windowSeconds": 60}),
    )
    .await;
    let mut users = Vec::new();
    for index in 0..count {
        let id = format!("20000000-0000-4000-8000-{index:012}");
        sim.control(
            reqwest::Method::POST,
            "/sim/users",
            json!({"id": id, "name": "Agent", "email": format!("b{index}@example.com")}),
        )
        .await;
        users.push(UserId::parse(&id).expect("uuid"));
    }
    let meeting =
        presence_autopilot::model::PresenceDefinitionId::parse(genesys_sim::seed::MEETING)
            .expect("id");
    let changes: Vec<(UserId, PresenceRef)> = users
        .iter()
        .map(|u| {
            (
                u.clone(),
                PresenceRef {
                    definition_id: meeting.clone(),
                    message: String::new(),
                },
            )
        })
        .collect();
    let applied =
        presence_autopilot::ports::PresenceApi::set_presences(genesys, &changes, deadline)
            .await
            .expect("bulk put");
    let ended = now - chrono::Duration::minutes(20);
    let trigger = TriggerId::parse("all-hands").expect("id");
    for (user, after) in applied {
        let mut state = UserState::new(user.clone(), now);
        state.active_triggers.insert(
            trigger.clone(),
            ActiveTrigger {
                kind: TriggerKind::Meeting,
                ends_at: ended,
                rule: None,
            },
        );
        state.applied = Some(AppliedOverride {
            target: after.definition_id.clone(),
            trigger_id: trigger.clone(),
            until: ended,
            tag: Some(after.tag()),
            set_at: Some(after.modified_date),
            restore_sent: None,
        });
        state.restore_to = Some(PresenceRef {
            definition_id: presence_autopilot::model::PresenceDefinitionId::parse(
                genesys_sim::seed::AVAILABLE,
            )
            .expect("id"),
            message: String::new(),
        });
        state.due_at = Some(ended + chrono::Duration::minutes(5));
        store.put(&state).await.expect("seed state");
    }
    users
}

/// Sweeps `runs` times and checks each run handled `budget` items, then that nothing is left.
async fn sweep_runs(
    check: &ScheduleCheck,
    clock: &presence_autopilot::clock::ManualClock,
    runs: usize,
    budget: usize,
) {
    for run in 0..runs {
        let report = check
            .sweep(Deadline::after(clock, Duration::from_secs(600)))
            .await
            .expect("sweep");
        assert_eq!(
            (report.due, report.processed, report.errors, report.left),
            (budget, budget, 0, 0),
            "run {run}: {report:?}"
        );
    }
    let after = check
        .sweep(Deadline::after(clock, Duration::from_secs(600)))
        .await
        .expect("sweep");
    assert_eq!(
        (after.due, after.processed),
        (0, 0),
        "all handled: the next run costs one query"
    );
}

#[tokio::test]
async fn a_thousand_due_items_with_a_budget_of_two_hundred_take_five_runs_none_twice() {
    // The in-memory store has the DynamoDB adapter's semantics (conditional versions, chain,
    // due order); moto deep-copies a table on every transaction, which makes 1,000 commits take
    // minutes. The DynamoDB due index is exercised at a smaller scale below.
    use presence_autopilot::fakes::InMemoryStore;
    use presence_autopilot::service::transition::{TransitionDeps, TransitionService};
    let sim = crate::support::sim::TestSim::start().await;
    let (genesys, clock) = sim.client((
        genesys_sim::seed::DEMO_CLIENT_ID,
        genesys_sim::seed::DEMO_CLIENT_SECRET,
    ));
    let shared_clock: Arc<dyn presence_autopilot::clock::Clock> = Arc::new(clock.clone());
    let store = Arc::new(InMemoryStore::new(shared_clock.clone()));
    let policy =
        presence_autopilot::policy::Policy::from_toml(presence_autopilot::policy::DEFAULT_POLICY)
            .expect("policy");
    let definitions = genesys
        .presence_definitions(Deadline::after(&clock, Duration::from_secs(10)))
        .await
        .expect("definitions");
    let targets = policy.resolve(&definitions).expect("targets");
    let transition = Arc::new(TransitionService::new(TransitionDeps {
        presence: Arc::new(genesys.clone()),
        routing: Arc::new(genesys.clone()),
        users: Arc::new(genesys.clone()),
        catalog: Arc::new(genesys.clone()),
        shifts: Arc::new(presence_autopilot::wfm::WfmShifts::new(
            genesys.clone(),
            shared_clock.clone(),
            Vec::new(),
        )),
        teams: Arc::new(presence_autopilot::genesys::GenesysTeams::new(
            genesys.clone(),
            shared_clock.clone(),
        )),
        state: store.clone(),
        audit: store.clone(),
        idempotency: store.clone(),
        clock: shared_clock.clone(),
        policy: Arc::new(policy.into()),
        targets: Arc::new(presence_autopilot::service::transition::Targets::resolved(
            targets,
        )),
        policy_refresh: None,
        idempotency_ttl: Duration::from_secs(86_400),
        presence_fresh_for: Duration::from_secs(1),
    }));
    let schedules = Planner::start(200).await.check.schedules;
    let check = ScheduleCheck {
        policy: transition.deps().policy.clone(),
        transition,
        schedules,
        state: store.clone(),
        shifts: None,
        clock: shared_clock,
        budget: 200,
    };
    let users = seed_missed_ends(
        &sim,
        &genesys,
        store.as_ref(),
        presence_autopilot::clock::Clock::now(&clock),
        1000,
        Deadline::after(&clock, Duration::from_secs(60)),
    )
    .await;

    sweep_runs(&check, &clock, 5, 200).await;

    let once = users
        .iter()
        .filter(|u| {
            store
                .audit_records(u)
                .iter()
                .map(|r| r.kind)
                .collect::<Vec<_>>()
                == [DecisionKind::Restored]
        })
        .count();
    assert_eq!(once, 1000, "every user restored exactly once");
    let state = sim.server.sim.lock();
    let writes = |user: &UserId| {
        state
            .mutations
            .iter()
            .filter(|m| m.user_id == user.as_str())
            .count()
    };
    assert!(
        users.iter().all(|u| writes(u) == 2),
        "each user written twice: the seeded override, then one restore"
    );
    let bulk_writes = state
        .requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path == "/api/v2/users/presences/bulk")
        .count();
    // 20 seeded the overrides; the sweep's five runs of 200 restore with four writes of 50 each.
    assert_eq!(bulk_writes, 20 + 5 * 4, "the sweep restores in bulk");
    assert_eq!(
        state
            .requests
            .iter()
            .filter(|r| r.method == "PATCH")
            .count(),
        0
    );
}

#[tokio::test]
async fn the_sweep_reads_the_dynamodb_due_index_in_budgeted_runs() {
    let p = Planner::start(10).await;
    let users = seed_missed_ends(
        &p.h.sim,
        &p.h.genesys,
        p.h.store.as_ref(),
        p.h.now(),
        30,
        p.h.deadline(),
    )
    .await;

    sweep_runs(&p.check, &p.h.clock, 3, 10).await;

    for user in &users {
        assert_eq!(
            p.h.audit_kinds(user.as_str()).await,
            vec![DecisionKind::Restored],
            "{user}: exactly once"
        );
    }
}

#[tokio::test]
async fn a_second_transition_within_the_cache_ttl_makes_no_wfm_call() {
    let p = Planner::start(200).await;
    let wfm_calls = || {
        p.h.sim
            .server
            .sim
            .lock()
            .requests
            .iter()
            .filter(|r| r.path.contains("/workforcemanagement/"))
            .count()
    };

    p.h.service
        .handle_json(
            &p.h.calendar("Calendar Event Started", "e-1", ada(), "m-1", -1, 30),
            p.h.deadline(),
        )
        .await
        .expect("first");
    let after_first = wfm_calls();
    assert!(
        after_first >= 2,
        "the first transition asks WFM (unit, codes, schedule): {after_first}"
    );
    p.h.service
        .handle_json(
            &p.h.calendar("Calendar Event Started", "e-2", ada(), "m-2", -1, 45),
            p.h.deadline(),
        )
        .await
        .expect("second");
    p.h.service
        .handle_json(
            &p.h.calendar("Calendar Event Ended", "e-3", ada(), "m-1", -1, 30),
            p.h.deadline(),
        )
        .await
        .expect("end");
    p.h.service
        .handle_json(
            &p.h.calendar("Calendar Event Ended", "e-4", ada(), "m-2", -1, 45),
            p.h.deadline(),
        )
        .await
        .expect("end");
    p.advance(60);
    let third =
        p.h.service
            .handle_json(
                &p.h.calendar("Calendar Event Started", "e-5", ada(), "m-3", -1, 30),
                p.h.deadline(),
            )
            .await
            .expect("third");

    assert_eq!(third.decision, "applied");
    assert_eq!(wfm_calls(), after_first, "served from the shift cache");
}

trait NanosecondZero {
    fn with_nanosecond_zero(self) -> Self;
}

impl NanosecondZero for DateTime<Utc> {
    fn with_nanosecond_zero(self) -> Self {
        DateTime::from_timestamp(self.timestamp(), 0).unwrap_or(self)
    }
}
