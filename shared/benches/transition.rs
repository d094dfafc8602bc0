//! CPU time of the pure stages of one transition: parse the event, decide, build the audit record
//! (hash chain link) and the notification payload. Not a whole transition: no signing, HTTP,
//! AWS/Genesys JSON or logging is timed here. `make bench` runs it in release mode.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use presence_autopilot::decide::{Context, ShiftView, Trigger, decide};
use presence_autopilot::events::{InboundEvent, parse_json};
use presence_autopilot::model::{
    ActivityCategory, PresenceDefinitionId, PresenceSnapshot, RoutingStatus, SystemPresence, UserId,
};
use presence_autopilot::policy::{DEFAULT_POLICY, Policy, ResolvedTargets, Target};
use presence_autopilot::state::{
    AuditEntry, AuditRecord, DecisionKind, Notification, NotificationKind, UserState,
};

const STARTED: &str = include_str!("../../tests/fixtures/calendar-event-started.json");
const ENDED: &str = include_str!("../../tests/fixtures/calendar-event-ended.json");

fn id(value: &str) -> PresenceDefinitionId {
    PresenceDefinitionId::parse(value).expect("valid id")
}

/// Median and 99th percentile of `rounds` timings of `iterations` calls each, per call.
fn measure(name: &str, rounds: usize, iterations: u32, mut work: impl FnMut()) -> Duration {
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..iterations {
                work();
            }
            started.elapsed() / iterations
        })
        .collect();
    samples.sort();
    let median = samples[samples.len() / 2];
    let p99 = samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
    println!(
        "| {name} | {:.2} µs | {:.2} µs |",
        median.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
    );
    median
}

fn main() {
    let policy = Policy::from_toml(DEFAULT_POLICY).expect("policy");
    let mut targets = ResolvedTargets::default();
    targets.insert(
        policy.meeting.presence.clone(),
        Target {
            definition_id: id("bbdff279-7ae1-48ea-bade-7831d7234c64"),
            system_presence: SystemPresence::Meeting,
        },
    );
    targets.insert(
        policy.focus.presence.clone(),
        Target {
            definition_id: id("0b5a4c1e-6f2d-4c3b-9a8e-5d7f1e2c3b4a"),
            system_presence: SystemPresence::Busy,
        },
    );
    let user = UserId::parse("9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f").expect("uuid");
    let start_at: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-03-19T14:01:00Z")
        .expect("time")
        .to_utc();
    let current = PresenceSnapshot {
        definition_id: id("6a3af858-942f-489d-9700-5f9bcdcdae9b"),
        system_presence: SystemPresence::Available,
        message: String::new(),
        modified_date: start_at - chrono::Duration::hours(1),
    };
    let state = UserState::new(user.clone(), start_at);
    let routing = RoutingStatus::OffQueue;
    let head = AuditRecord::link(
        AuditEntry::new(user.clone(), DecisionKind::Applied),
        None,
        start_at,
    )
    .head();

    println!("| stage (per event) | median | p99 |");
    println!("|---|---|---|");
    measure("parse EventBridge event", 200, 200, || {
        black_box(parse_json(black_box(STARTED)).expect("parses"));
    });
    let parsed = parse_json(STARTED).expect("parses");
    let InboundEvent::Calendar { entry, .. } = &parsed.event else {
        panic!("calendar event")
    };
    let cx = Context {
        now: start_at,
        policy: &policy,
        targets: &targets,
        state: &state,
        email: Some("ada@example.com"),
        current: Some(&current),
        routing: Some(&routing),
        shift: Some(ShiftView::Activity(ActivityCategory::Meeting)),
        zone: Some(chrono_tz::Tz::Europe__Paris),
        guard: None,
    };
    measure("decide (start → Apply)", 200, 500, || {
        black_box(decide(black_box(&Trigger::Started(entry)), black_box(&cx)));
    });
    measure("audit record + hash link", 200, 200, || {
        let mut audit = AuditEntry::new(user.clone(), DecisionKind::Applied);
        audit.reason = Some("start".to_owned());
        black_box(AuditRecord::link(audit, Some(&head), start_at));
    });
    measure("notification id + payload", 200, 500, || {
        black_box(Notification::for_change(
            user.clone(),
            start_at,
            2,
            NotificationKind::PresenceApplied,
            serde_json::json!({"k": 1}),
        ));
    });
    let total = measure(
        "pure stages of a start (parse + decide + audit hash + payload)",
        200,
        100,
        || {
            let parsed = parse_json(STARTED).expect("parses");
            let InboundEvent::Calendar { entry, .. } = &parsed.event else {
                return;
            };
            let decided = decide(&Trigger::Started(entry), &cx);
            let audit = AuditEntry::new(user.clone(), DecisionKind::Applied);
            black_box(AuditRecord::link(audit, Some(&head), start_at));
            black_box(Notification::for_change(
                user.clone(),
                start_at,
                2,
                NotificationKind::PresenceApplied,
                serde_json::json!({"k": 1}),
            ));
            black_box(decided);
        },
    );
    measure("parse + decide an end", 200, 200, || {
        let parsed = parse_json(ENDED).expect("parses");
        let InboundEvent::Calendar { entry, .. } = &parsed.event else {
            return;
        };
        black_box(decide(&Trigger::Ended(entry), &cx));
    });
    println!();
    println!(
        "pure stages of a start, no I/O, signing, HTTP or logging: {:.2} µs (target <= 500 µs)",
        total.as_secs_f64() * 1e6
    );
}
