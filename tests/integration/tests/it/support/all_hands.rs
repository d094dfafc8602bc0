//! The all-hands of a real floor, on any store: every agent's meeting starts at 10:00 and ends at
//! 11:00, delivered as the burst queue does (batches of `BATCH`, a tenth of them twice, each
//! duplicate after the next batch). Of every hundred agents, five change their presence by hand
//! during the meeting, two are on a call at 10:00 (deferred; the sweep applies the start once the
//! call is over), one opted out. Each edge is counted against the API's minimum, and every
//! agent's outcomes, audit records and final presence are checked.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use genesys_sim::seed::{self, AVAILABLE, BUSY, MEETING as MEETING_PRESENCE};
use presence_autopilot::clock::{Clock, Deadline, ManualClock};
use presence_autopilot::fakes::calendar::FakeSchedules;
use presence_autopilot::model::UserId;
use presence_autopilot::policy::DEFAULT_POLICY;
use presence_autopilot::ports::{AuditQueries, StateStore};
use presence_autopilot::service::schedule_check::ScheduleCheck;
use presence_autopilot::service::transition::TransitionService;
use presence_autopilot::state::{DecisionKind, TriggerId};
use presence_autopilot::wfm::CachedShifts;
use serde_json::json;

use crate::support::moto::CallCounter;
use crate::support::sim::TestSim;

/// The burst queue's `BatchSize` (infra/template.yaml).
pub const BATCH: usize = 100;
/// Per invocation: the function's 120 s timeout (infra/template.yaml) less its answer margin.
pub const INVOCATION: Duration = Duration::from_secs(115);
/// A numeric parameter's default in infra/template.yaml (what a deploy gets unless told).
pub fn template_default(parameter: &str) -> usize {
    let template = include_str!("../../../../../infra/template.yaml");
    let mut lines = template
        .lines()
        .skip_while(|line| line.trim() != format!("{parameter}:"));
    lines
        .next()
        .unwrap_or_else(|| panic!("no parameter {parameter}"));
    lines
        .take_while(|line| line.starts_with("    "))
        .find_map(|line| line.trim().strip_prefix("Default: "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{parameter} has no numeric default"))
}
/// The sweep's schedule (`rate(1 minute)`).
const SWEEP_EVERY: Duration = Duration::from_secs(60);
const MEETING: &str = "town-hall";

/// What an agent does around the meeting, by index: every hundred agents alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Attends,
    /// Sets Busy by hand during the meeting: must not be restored.
    ChangesByHand,
    /// On a call at 10:00: deferred, applied by the sweep, restored at 11:00.
    OnCall,
    OptedOut,
}

impl Role {
    pub fn of(index: usize) -> Self {
        match index % 100 {
            3 | 23 | 43 | 63 | 83 => Self::ChangesByHand,
            7 | 57 => Self::OnCall,
            11 => Self::OptedOut,
            _ => Self::Attends,
        }
    }
}

/// Batches delivered twice (a tenth), as at-least-once delivery may.
fn delivered_twice(batch: usize) -> bool {
    batch % 10 == 4
}

/// The default policy with the opted-out agents (by user id) in its `opt_out` list.
pub fn policy_for(users: &[UserId]) -> String {
    let opted: Vec<String> = users
        .iter()
        .enumerate()
        .filter(|(index, _)| Role::of(*index) == Role::OptedOut)
        .map(|(_, user)| format!("{:?}", user.as_str()))
        .collect();
    let policy =
        DEFAULT_POLICY.replace("opt_out = []", &format!("opt_out = [{}]", opted.join(", ")));
    assert!(
        opted.is_empty() || policy != DEFAULT_POLICY,
        "the default policy has an `opt_out = []` line to fill"
    );
    policy
}

/// The ids of `agents` agents, by index (`id_prefix`: eight hex digits).
pub fn agent_ids(agents: usize, id_prefix: &str) -> Vec<UserId> {
    (0..agents)
        .map(|index| {
            UserId::parse(&format!("{id_prefix}-0000-4000-8000-{index:012}")).expect("uuid")
        })
        .collect()
}

/// `agents` users in the simulator's demo management unit, Available.
pub fn add_agents(sim: &TestSim, agents: usize, id_prefix: &str) -> Vec<UserId> {
    let users = agent_ids(agents, id_prefix);
    let mut state = sim.server.sim.lock();
    for (index, id) in users.iter().enumerate() {
        let user: seed::UserSeed = serde_json::from_value(json!({
            "id": id.as_str(), "name": format!("Agent {index}"),
            "email": format!("c{index}@example.com"),
            "managementUnitId": seed::DEMO_MANAGEMENT_UNIT,
        }))
        .expect("user seed");
        state.upsert_user(user).expect("user added");
    }
    users
}

/// What one step of the meeting cost.
#[derive(Debug)]
pub struct Edge {
    pub name: &'static str,
    pub agents: usize,
    /// The agents this step decided for (all at an edge; those on a call for the sweep).
    pub decided: usize,
    /// The fewest Genesys API calls the per-call limits allow for this step.
    pub minimum: usize,
    pub calls: usize,
    pub refused: usize,
    pub token_requests: usize,
    pub deliveries: usize,
    /// Answers a delivery gave from the stored outcome (duplicates).
    pub duplicates: usize,
    /// Simulated waits (the clock's), then real time spent.
    pub waits: Vec<Duration>,
    pub working: Duration,
    /// DynamoDB calls by operation, when the state is on the stand-in.
    pub dynamodb: BTreeMap<String, usize>,
}

impl Edge {
    pub fn waited(&self) -> Duration {
        self.waits.iter().sum()
    }

    /// The time the minimum calls take at the window's rate.
    pub fn floor(&self, (requests, seconds): (u32, u32)) -> Duration {
        Duration::from_secs_f64(self.minimum as f64 * f64::from(seconds) / f64::from(requests))
    }

    pub fn ratio(&self) -> f64 {
        self.calls as f64 / self.minimum.max(1) as f64
    }
}

/// The floor the meeting plays on: one transition container (one token), its sweep, the store
/// both use, and a clock whose waits the test controls.
pub struct Floor<'a> {
    pub sim: &'a TestSim,
    pub service: Arc<TransitionService>,
    pub shifts: Arc<CachedShifts>,
    pub state: Arc<dyn StateStore>,
    pub audit: Arc<dyn AuditQueries>,
    /// What the service runs on; its sleeps are the simulated time.
    pub clock: Arc<dyn Clock>,
    pub manual: ManualClock,
    pub users: Vec<UserId>,
    /// The table whose stand-in calls each step counts (None: state in memory).
    pub table: Option<String>,
}

/// Where each step's counts start.
struct Counters {
    requests: usize,
    waits: usize,
    table: Option<CallCounter>,
}

/// The three steps of the meeting, in order.
pub struct Meeting {
    pub start: Edge,
    pub sweep: Edge,
    pub end: Edge,
}

impl Floor<'_> {
    fn roles(&self) -> Vec<Role> {
        (0..self.users.len()).map(Role::of).collect()
    }

    fn count(&self, wanted: &[Role]) -> usize {
        self.roles().iter().filter(|r| wanted.contains(r)).count()
    }

    /// 10:00 → the calls end → a hand change each → 11:00; everything checked on the way.
    pub async fn play(&self) -> Meeting {
        let started_at = self.clock.now();
        for (user, role) in self.users.iter().zip(self.roles()) {
            if role == Role::OnCall {
                let mut sim = self.sim.server.sim.lock();
                sim.set_routing_status(user.as_str(), "INTERACTING");
            }
        }
        let start = self.edge("starts", "Started", started_at).await;
        let on_call_over = self.sweep_after_the_calls().await;
        for (user, role) in self.users.iter().zip(self.roles()) {
            if role == Role::ChangesByHand {
                let mut sim = self.sim.server.sim.lock();
                sim.set_presence("agent", "by hand", user.as_str(), Some(BUSY), None, "hand")
                    .expect("known user");
            }
        }
        let until_end = (started_at + chrono::Duration::minutes(60)) - self.clock.now();
        self.clock
            .sleep(until_end.to_std().expect("the end is ahead"))
            .await;
        let end = self.edge("ends", "Ended", started_at).await;
        self.check_the_record().await;
        self.check_every_presence();
        Meeting {
            start,
            sweep: on_call_over,
            end,
        }
    }

    /// One edge for every agent; every answer (duplicates too) checked against the agent's role.
    async fn edge(
        &self,
        name: &'static str,
        detail: &str,
        started_at: chrono::DateTime<chrono::Utc>,
    ) -> Edge {
        let expected: HashMap<String, &str> = self
            .users
            .iter()
            .enumerate()
            .map(|(i, _)| (event_id(i, detail), expected_outcome(Role::of(i), detail)))
            .collect();
        let events: Vec<String> = self
            .users
            .iter()
            .enumerate()
            .map(|(i, user)| edge_event(i, user, started_at, detail))
            .collect();
        let minimum = if detail == "Started" {
            self.minimum_starts()
        } else {
            self.minimum_ends()
        };
        let before = self.counters().await;
        let started = Instant::now();
        let (deliveries, duplicates) = self.deliver(events, &expected).await;
        let working = started.elapsed();
        let everyone = (name, self.users.len());
        self.measured(everyone, minimum, before, working, (deliveries, duplicates))
            .await
    }

    /// The fewest calls for the 10:00 edge: presence and routing of every agent who has not opted
    /// out (50 and 100 a call), the schedule (100 a call) and a bulk write (50) of those who can
    /// be applied now; the definitions, business units and activity codes once.
    fn minimum_starts(&self) -> usize {
        let read = self.count(&[Role::Attends, Role::ChangesByHand, Role::OnCall]);
        let applied = self.count(&[Role::Attends, Role::ChangesByHand]);
        read.div_ceil(50) + read.div_ceil(100) + applied.div_ceil(100) + applied.div_ceil(50) + 3
    }

    /// The fewest calls for 11:00: one bulk presence read of every agent we changed (50 a call),
    /// one bulk write (50) of those still ours.
    fn minimum_ends(&self) -> usize {
        let ours = self.count(&[Role::Attends, Role::ChangesByHand, Role::OnCall]);
        let restored = self.count(&[Role::Attends, Role::OnCall]);
        ours.div_ceil(50) + restored.div_ceil(50)
    }

    /// The agents on a call finish it; a minute later the sweep (as often as it is due) applies
    /// their deferred starts.
    async fn sweep_after_the_calls(&self) -> Edge {
        let on_call: Vec<&UserId> = self
            .users
            .iter()
            .zip(self.roles())
            .filter(|(_, role)| *role == Role::OnCall)
            .map(|(user, _)| user)
            .collect();
        for user in &on_call {
            self.sim
                .server
                .sim
                .lock()
                .set_routing_status(user.as_str(), "IDLE");
        }
        self.clock.sleep(Duration::from_secs(60)).await;
        let sweep = ScheduleCheck {
            transition: self.service.clone(),
            policy: self.service.deps().policy.clone(),
            schedules: Arc::new(FakeSchedules::default()),
            state: self.state.clone(),
            shifts: Some(self.shifts.clone()),
            clock: self.clock.clone(),
            budget: template_default("SweepBudget"),
        };
        let before = self.counters().await;
        let started = Instant::now();
        // The sweep runs every minute (infra/template.yaml) until every deferred start is
        // applied; a user it could not finish stays due for the next run.
        let mut runs = 0;
        loop {
            runs += 1;
            assert!(runs <= 10, "the sweep does not converge");
            let report = sweep
                .sweep(Deadline::after(self.clock.as_ref(), INVOCATION))
                .await
                .expect("swept");
            assert_eq!(report.left, 0, "{report:?}");
            if self.still_deferred(&on_call) == 0 {
                break;
            }
            self.clock.sleep(SWEEP_EVERY).await;
        }
        let working = started.elapsed();
        // A bulk presence read and write (50 a call) and a routing read (100) of them.
        let n = on_call.len();
        let minimum = n.div_ceil(50) + n.div_ceil(100) + n.div_ceil(50);
        self.measured(
            ("deferred starts (sweep)", n),
            minimum,
            before,
            working,
            (runs, 0),
        )
        .await
    }

    /// How many of `users` are not yet in the meeting, as Genesys holds them (read from the
    /// simulator itself, so the step's counts stay the code's).
    fn still_deferred(&self, users: &[&UserId]) -> usize {
        let sim = self.sim.server.sim.lock();
        users
            .iter()
            .filter(|user| sim.users[user.as_str()].presence.definition_id != MEETING_PRESENCE)
            .count()
    }

    async fn counters(&self) -> Counters {
        let table = match &self.table {
            Some(table) => Some(CallCounter::start(table).await),
            None => None,
        };
        Counters {
            requests: self.sim.server.sim.lock().requests.len(),
            waits: self.manual.sleeps().len(),
            table,
        }
    }

    async fn measured(
        &self,
        (name, decided): (&'static str, usize),
        minimum: usize,
        before: Counters,
        working: Duration,
        (deliveries, duplicates): (usize, usize),
    ) -> Edge {
        let Counters {
            requests: requests_before,
            waits: waits_before,
            table,
        } = before;
        let dynamodb = match table {
            Some(counter) => counter.take().await,
            None => BTreeMap::new(),
        };
        let requests = self.sim.server.sim.lock().requests[requests_before..].to_vec();
        let (tokens, api): (Vec<_>, Vec<_>) =
            requests.iter().partition(|r| r.path == "/oauth/token");
        Edge {
            name,
            agents: self.users.len(),
            decided,
            minimum,
            calls: api.len(),
            refused: api.iter().filter(|r| r.status == 429).count(),
            token_requests: tokens.len(),
            deliveries,
            duplicates,
            waits: self.manual.sleeps()[waits_before..].to_vec(),
            working,
            dynamodb,
        }
    }

    /// The events `BATCH` at a time; a tenth of the batches again after the next one; a record
    /// that failed retryably comes back in a later batch (SQS). Deliveries and duplicate answers.
    async fn deliver(
        &self,
        events: Vec<String>,
        expected: &HashMap<String, &str>,
    ) -> (usize, usize) {
        let batches: Vec<Vec<String>> = events.chunks(BATCH).map(<[String]>::to_vec).collect();
        let mut order: VecDeque<Vec<String>> = VecDeque::new();
        for (index, batch) in batches.iter().enumerate() {
            order.push_back(batch.clone());
            if index > 0 && delivered_twice(index - 1) {
                order.push_back(batches[index - 1].clone());
            }
        }
        if delivered_twice(batches.len() - 1) {
            order.push_back(batches[batches.len() - 1].clone());
        }
        let (mut deliveries, mut duplicates) = (0, 0);
        let limit = 2 * order.len() + 2;
        while let Some(batch) = order.pop_front() {
            deliveries += 1;
            assert!(deliveries <= limit, "the burst does not converge");
            let results = self
                .service
                .handle_batch(&batch, Deadline::after(self.clock.as_ref(), INVOCATION))
                .await;
            let mut again = Vec::new();
            for (body, result) in batch.into_iter().zip(results) {
                match result {
                    Ok(outcome) => {
                        let id = outcome.event_id.clone().expect("an event id");
                        assert_eq!(outcome.decision, expected[&id], "{outcome:?}");
                        duplicates += usize::from(outcome.duplicate);
                    }
                    Err(error) if error.is_retryable() => again.push(body),
                    Err(error) => panic!("lost: {error}"),
                }
            }
            if !again.is_empty() {
                order.push_back(again);
            }
        }
        (deliveries, duplicates)
    }

    /// The meeting's audit trail: one record per decision, none twice despite the duplicates.
    async fn check_the_record(&self) {
        let trigger = TriggerId::parse(MEETING).expect("id");
        let records = self.audit.by_trigger(&trigger).await.expect("audit");
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for record in &records {
            *kinds.entry(format!("{:?}", record.kind)).or_default() += 1;
        }
        let by_hand = self.count(&[Role::ChangesByHand]);
        let on_call = self.count(&[Role::OnCall]);
        let expected = Vec::from([
            (
                DecisionKind::Applied,
                self.count(&[Role::Attends, Role::ChangesByHand, Role::OnCall]),
            ),
            (DecisionKind::Deferred, on_call),
            (
                DecisionKind::Restored,
                self.count(&[Role::Attends, Role::OnCall]),
            ),
            (
                DecisionKind::Skipped,
                2 * self.count(&[Role::OptedOut]) + by_hand,
            ),
        ]);
        let expected: BTreeMap<String, usize> = expected
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(kind, n)| (format!("{kind:?}"), n))
            .collect();
        assert_eq!(kinds, expected, "audit records by kind");
        let writes = self.sim.server.sim.lock().mutations.len();
        assert_eq!(
            writes,
            by_hand
                + self.count(&[Role::Attends, Role::ChangesByHand, Role::OnCall])
                + self.count(&[Role::Attends, Role::OnCall]),
            "one write per apply and per restore, and the hand changes"
        );
    }

    /// Every agent as Genesys holds them after 11:00: back as before, or as they chose.
    fn check_every_presence(&self) {
        let sim = self.sim.server.sim.lock();
        for (index, user) in self.users.iter().enumerate() {
            let held = &sim.users[user.as_str()].presence.definition_id;
            let expected = match Role::of(index) {
                Role::ChangesByHand => BUSY,
                _ => AVAILABLE,
            };
            assert_eq!(held, expected, "agent {index} ({:?})", Role::of(index));
        }
    }
}

fn event_id(index: usize, detail: &str) -> String {
    format!("{MEETING}-{detail}-{index}")
}

/// What the event of an agent in `role` must come to.
fn expected_outcome(role: Role, detail: &str) -> &'static str {
    match (detail, role) {
        (_, Role::OptedOut) => "skipped",
        ("Started", Role::OnCall) => "deferred",
        ("Started", _) => "applied",
        (_, Role::ChangesByHand) => "skipped",
        _ => "restored",
    }
}

/// The meeting's start or end (`detail`: "Started" or "Ended") for one agent.
fn edge_event(
    index: usize,
    user: &UserId,
    started_at: chrono::DateTime<chrono::Utc>,
    detail: &str,
) -> String {
    json!({
        "version": "0", "id": event_id(index, detail), "detail-type": format!("Calendar Event {detail}"),
        "source": "presence-autopilot.test", "account": "123456789012", "time": started_at,
        "region": "us-east-1", "resources": [],
        "detail": {
            "userId": user.as_str(),
            "calendarEventId": MEETING,
            "start": started_at,
            "end": started_at + chrono::Duration::minutes(60),
            "showAs": "busy", "responseStatus": "accepted", "subject": "Town hall",
        }
    })
    .to_string()
}
