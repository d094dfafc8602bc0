use std::collections::{BTreeMap, HashSet};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::DateTime;

use super::{
    DeadLetterKind, DeadLetterService, KnownQueue, Pacer, ReplayOptions, ReplayOutcome,
    ReplayReport, find, resolve_target,
};
use crate::clock::{Clock, ManualClock};
use crate::ports::{BusEvent, DeadLetter, DeadLetterQueue, DeadLetters, ReplayTarget, StoreError};

const SOURCE: &str = "https://sqs/1/s-BurstQueue-2";

/// A DLQ in memory: `peek` hides what it returns unless `redeliver` (as if the visibility
/// timeout already ran out); failures scripted by message id; every call logged in order.
#[derive(Debug, Default)]
struct Fake {
    letters: Mutex<Vec<(DeadLetter, bool)>>,
    redeliver: bool,
    fail_resend: HashSet<String>,
    fail_delete: HashSet<String>,
    fail_peek_after: Option<usize>,
    calls: Mutex<Vec<String>>,
}

impl Fake {
    fn with(count: usize) -> Self {
        let letters = (0..count).map(|i| (letter(i, &format!("b{i}")), true));
        Self {
            letters: Mutex::new(letters.collect()),
            ..Self::default()
        }
    }

    fn log(&self, call: String) -> usize {
        let mut calls = self.calls.lock().expect("lock");
        calls.push(call);
        calls.iter().filter(|c| c.starts_with("peek")).count()
    }

    fn calls(&self, prefix: &str) -> Vec<String> {
        let calls = self.calls.lock().expect("lock");
        calls
            .iter()
            .filter(|c| c.starts_with(prefix))
            .cloned()
            .collect()
    }

    fn left(&self) -> Vec<String> {
        let letters = self.letters.lock().expect("lock");
        letters.iter().map(|(l, _)| l.message_id.clone()).collect()
    }
}

fn failure(operation: &'static str) -> StoreError {
    let message = "scripted".to_owned();
    StoreError::Sdk { operation, message }
}

#[async_trait]
impl DeadLetters for Fake {
    async fn list(&self, _prefix: &str) -> Result<Vec<DeadLetterQueue>, StoreError> {
        Ok(vec![queue("s-BurstQueue-2", &[]), dlq()])
    }

    async fn peek(&self, _url: &str, max: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let peeks = self.log(format!("peek {max}"));
        if self.fail_peek_after.is_some_and(|n| peeks > n) {
            return Err(failure("ReceiveMessage"));
        }
        let mut letters = self.letters.lock().expect("lock");
        let mut taken = Vec::new();
        for (l, visible) in letters.iter_mut().filter(|(_, v)| *v).take(max) {
            *visible = self.redeliver;
            taken.push(l.clone());
        }
        Ok(taken)
    }

    async fn resend(&self, to: &ReplayTarget, l: &DeadLetter) -> Result<String, StoreError> {
        self.log(format!("resend {} to {to}", l.message_id));
        if self.fail_resend.contains(&l.message_id) {
            return Err(failure("SendMessage"));
        }
        Ok(format!("new-{}", l.message_id))
    }

    async fn delete(&self, _url: &str, l: &DeadLetter) -> Result<(), StoreError> {
        self.log(format!("delete {}", l.message_id));
        if self.fail_delete.contains(&l.message_id) {
            return Err(failure("DeleteMessage"));
        }
        let mut letters = self.letters.lock().expect("lock");
        letters.retain(|(kept, _)| kept.message_id != l.message_id);
        Ok(())
    }

    async fn release(&self, _url: &str, l: &DeadLetter) -> Result<(), StoreError> {
        self.log(format!("release {}", l.message_id));
        let mut letters = self.letters.lock().expect("lock");
        for (kept, visible) in letters.iter_mut() {
            *visible |= kept.message_id == l.message_id;
        }
        Ok(())
    }
}

fn letter(i: usize, body: &str) -> DeadLetter {
    DeadLetter {
        message_id: format!("m{i}"),
        receipt_handle: format!("handle-{i}"),
        body: body.to_owned(),
        attributes: BTreeMap::new(),
        receive_count: 2,
        first_sent: None,
        group_id: None,
        deduplication_id: None,
    }
}

fn queue(name: &str, sources: &[&str]) -> DeadLetterQueue {
    let sources = sources.iter().map(|s| (*s).to_owned()).collect();
    let url = format!("https://sqs/1/{name}");
    let name = name.to_owned();
    DeadLetterQueue {
        name,
        url,
        depth: 0,
        sources,
    }
}

fn dlq() -> DeadLetterQueue {
    queue("s-BurstDLQ-1", &[SOURCE])
}

fn known(name: &str, sources: &[&str]) -> KnownQueue {
    let kind = DeadLetterKind::classify(name).expect("a DLQ name");
    let queue = queue(name, sources);
    KnownQueue { kind, queue }
}

fn clock() -> ManualClock {
    ManualClock::starting_at(DateTime::from_timestamp(1_770_000_000, 0).expect("time"))
}

fn service(fake: Fake, clock: &ManualClock) -> (Arc<Fake>, DeadLetterService) {
    let fake = Arc::new(fake);
    let clock = Arc::new(clock.clone());
    let queues = fake.clone();
    (fake, DeadLetterService { queues, clock })
}

fn options(max_messages: usize, per_second: u32) -> ReplayOptions {
    let per_second = NonZeroU32::new(per_second).expect("non-zero");
    ReplayOptions {
        max_messages,
        per_second,
    }
}

fn to_source() -> ReplayTarget {
    ReplayTarget::Queue {
        url: SOURCE.to_owned(),
    }
}

async fn replay(fake: Fake, options: ReplayOptions) -> (Arc<Fake>, ReplayReport) {
    let (fake, service) = service(fake, &clock());
    let report = service.replay_to(&dlq(), &to_source(), &options).await;
    (fake, report.expect("replay"))
}

#[test]
fn queues_are_known_by_the_logical_id_in_their_name_and_found_by_it() {
    for kind in DeadLetterKind::ALL {
        let name = format!("my-stack-{}-1X2Y", kind.logical_id());
        assert_eq!(DeadLetterKind::classify(&name), Some(kind), "{name}");
    }
    for other in ["my-stack-BurstQueue-1X", "s-Burst-DLQ-1X", "BurstDLQs"] {
        assert_eq!(DeadLetterKind::classify(other), None, "{other}");
    }
    let all = vec![known("s-BurstDLQ-1", &[]), known("s-EventsDLQ-2", &[])];
    assert_eq!(
        find(&all, "eventsdlq").map(|q| q.kind).ok(),
        Some(DeadLetterKind::Events)
    );
    assert!(find(&all, "s-BurstDLQ-1").is_ok());
    assert!(find(&all, "https://sqs/1/s-BurstDLQ-1").is_ok());
    let missing = find(&all, "SchedulerDLQ").expect_err("absent").to_string();
    assert!(
        missing.contains("known: s-BurstDLQ-1, s-EventsDLQ-2"),
        "{missing}"
    );
}

#[test]
fn targets_are_the_source_queue_the_burst_queue_or_the_bus() {
    let burst = known("s-BurstDLQ-1", &[SOURCE]);
    let scheduler = known("s-SchedulerDLQ-2", &[]);
    let events = known("s-EventsDLQ-3", &[]);
    let all = vec![burst.clone(), scheduler.clone(), events.clone()];

    assert_eq!(resolve_target(&all, &burst, None).ok(), Some(to_source()));
    assert_eq!(
        resolve_target(&all, &scheduler, None).ok(),
        Some(to_source())
    );
    let name = "presence-autopilot".to_owned();
    let bus = resolve_target(&all, &events, Some(&name)).ok();
    assert_eq!(bus, Some(ReplayTarget::Bus { name }));
    let no_bus = resolve_target(&all, &events, Some(" ")).expect_err("no bus");
    assert!(no_bus.to_string().contains("EVENT_BUS_NAME"), "{no_bus}");
    let alone = resolve_target(&[], &scheduler, None).expect_err("no burst DLQ");
    assert!(alone.to_string().contains("no BurstDLQ"), "{alone}");
    // A failed stream batch is a description, not a message: nothing to send again.
    let relay = known("s-OutboxRelayDLQ-4", &[]);
    let bus_name = "presence-autopilot".to_owned();
    let refused = resolve_target(&all, &relay, Some(&bus_name)).expect_err("not replayable");
    assert!(refused.to_string().contains("Outbox relay"), "{refused}");
}

#[tokio::test]
async fn a_dlq_without_a_source_is_refused_before_any_message_is_received() {
    let (fake, service) = service(Fake::with(1), &clock());
    let orphan = known("s-NotificationsDLQ-1", &[]);

    let refused = service
        .replay(
            std::slice::from_ref(&orphan),
            &orphan,
            None,
            &options(10, 10),
        )
        .await
        .expect_err("no target")
        .to_string();

    assert!(
        refused.contains("source queue of s-NotificationsDLQ-1"),
        "{refused}"
    );
    assert!(fake.calls("").is_empty());
}

#[tokio::test]
async fn each_letter_is_deleted_only_after_its_resend() {
    let (fake, report) = replay(Fake::with(2), options(100, 10)).await;

    assert_eq!((report.replayed(), report.stopped), (2, None));
    let to = format!("to queue {SOURCE}");
    let expected = [
        "peek 10".to_owned(),
        format!("resend m0 {to}"),
        "delete m0".to_owned(),
        format!("resend m1 {to}"),
        "delete m1".to_owned(),
        "peek 10".to_owned(),
    ];
    assert_eq!(fake.calls(""), expected);
    assert!(fake.left().is_empty());
}

#[tokio::test]
async fn failures_keep_the_letter_visible_and_say_what_happened() {
    let mut fake = Fake::with(3);
    fake.fail_resend.insert("m0".to_owned());
    fake.fail_delete.insert("m1".to_owned());

    let (fake, report) = replay(fake, options(100, 10)).await;

    let counts = (
        report.replayed(),
        report.not_sent(),
        report.sent_not_deleted(),
    );
    assert_eq!(counts, (1, 1, 1), "{report:?}");
    assert_eq!(
        fake.calls("delete"),
        ["delete m0", "delete m1", "delete m2"][1..]
    );
    assert_eq!(
        fake.calls("release"),
        ["release m0"],
        "visible again at once"
    );
    assert_eq!(fake.left(), ["m0", "m1"]);
    assert!(
        report.summary().contains("idempotent"),
        "{}",
        report.summary()
    );
}

#[tokio::test]
async fn a_letter_seen_again_in_one_run_is_sent_once() {
    let mut fake = Fake::with(2);
    fake.redeliver = true;
    fake.fail_resend.extend(["m0".to_owned(), "m1".to_owned()]);

    let (fake, report) = replay(fake, options(100, 10)).await;

    assert_eq!(report.not_sent(), 2);
    assert_eq!(fake.calls("resend").len(), 2, "{:?}", fake.calls(""));
    assert_eq!(fake.calls("release"), ["release m0", "release m1"]);
}

#[tokio::test]
async fn the_maximum_bounds_what_is_received() {
    let (fake, report) = replay(Fake::with(25), options(12, 100)).await;

    assert_eq!(report.replayed(), 12);
    assert_eq!(fake.calls("peek"), ["peek 10", "peek 2"]);
    assert_eq!(fake.left().len(), 13);
}

#[tokio::test]
async fn a_receive_failure_ends_the_run_and_keeps_the_report() {
    let mut fake = Fake::with(12);
    fake.fail_peek_after = Some(1);

    let (_, report) = replay(fake, options(100, 100)).await;

    assert_eq!(report.replayed(), 10);
    let stopped = report.stopped.unwrap_or_default();
    assert!(stopped.contains("ReceiveMessage failed"), "{stopped}");
}

#[tokio::test]
async fn bodies_that_are_not_events_never_reach_the_bus() {
    let event = r#"{"id":"e1","source":"presence-autopilot.calendar","detail-type":"X",
        "time":"2026-02-02T09:00:00Z","resources":["arn:x"],"detail":{"a":1}}"#;
    let broken = r#"{"source":"presence-autopilot.calendar","detail":{}}"#;
    let sweep = r#"{"source":"aws.events","detail-type":"Scheduled Event","detail":{}}"#;
    let fake = Fake::with(0);
    fake.letters.lock().expect("lock").extend(
        [broken, event, sweep]
            .iter()
            .enumerate()
            .map(|(i, b)| (letter(i, b), true)),
    );
    let (fake, service) = service(fake, &clock());
    let bus = ReplayTarget::Bus {
        name: "b".to_owned(),
    };

    let report = service
        .replay_to(&dlq(), &bus, &options(10, 10))
        .await
        .expect("replay");

    let errors: Vec<&str> = report
        .outcomes
        .iter()
        .filter_map(|o| match o {
            ReplayOutcome::NotSent { error, .. } => Some(error.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(report.replayed(), 1);
    assert!(errors[0].contains("`detail-type`: missing"), "{errors:?}");
    assert!(
        errors[1].contains("`source`: aws.events is reserved"),
        "{errors:?}"
    );
    assert_eq!(fake.calls("resend").len(), 1);
    assert_eq!(fake.left(), ["m0", "m2"]);
    let parsed = BusEvent::parse(event).expect("an event");
    assert_eq!(
        (parsed.resources, parsed.detail),
        (vec!["arn:x".to_owned()], serde_json::json!({"a": 1}))
    );
    assert_eq!(parsed.time.map(|t| t.timestamp()), Some(1_770_022_800));
}

#[tokio::test]
async fn the_pacer_waits_only_for_what_is_left_of_the_interval() {
    let clock = clock();
    let mut pacer = Pacer::new(&clock, NonZeroU32::new(4).expect("4"));

    for _ in 0..3 {
        pacer.ready().await;
    }
    clock.advance(Duration::from_secs(1));
    pacer.ready().await;
    clock.advance(Duration::from_millis(100));
    pacer.ready().await;

    let quarter = Duration::from_millis(250);
    assert_eq!(
        clock.sleeps(),
        [quarter, quarter, Duration::from_millis(150)]
    );
}

#[tokio::test]
async fn a_replay_sends_at_most_per_second_letters_a_second() {
    let clock = clock();
    let start = clock.now();
    let (_, service) = service(Fake::with(5), &clock);

    let report = service
        .replay_to(&dlq(), &to_source(), &options(100, 2))
        .await;

    assert_eq!(report.map(|r| r.replayed()).ok(), Some(5));
    assert_eq!(clock.sleeps(), [Duration::from_millis(500); 4]);
    assert_eq!((clock.now() - start).num_milliseconds(), 2_000);
}

#[tokio::test]
async fn show_leaves_every_letter_in_the_queue_and_visible() {
    let (fake, service) = service(Fake::with(2), &clock());

    let shown = service.show(&dlq(), 10).await.expect("show");
    let again = service.show(&dlq(), 10).await.expect("show again");

    assert_eq!(
        (shown.len(), again.len()),
        (2, 2),
        "released, so visible at once"
    );
    assert_eq!(fake.left().len(), 2);
}
