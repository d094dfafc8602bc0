use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::*;
use crate::clock::ManualClock;
use crate::decide::forecast::tests::{TIER_ONE, four_agents};
use crate::fakes::FakeQueue;
use crate::fakes::floor::{FakeFloor, FakePolicyStore};

/// After the forecast's hand-counted tier-1 team (capped at 50% of those on queue): a second
/// team capped at 5 (never reached); the default profile has no cap and is not looked at.
const LEADS: &str = r#"
[[profiles]]
name = "leads"
groups = ["g-leads"]

[profiles.guard]
max_off_queue = 5
"#;

fn time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("time").to_utc()
}

struct World {
    lookahead: Lookahead,
    floor: FakeFloor,
    queue: FakeQueue,
}

/// The afternoon before the hand-counted morning (2026-12-08, UTC).
fn world(zone: Tz) -> World {
    let floor = FakeFloor::default();
    floor.set_team("tier-1", four_agents().to_vec());
    floor.set_team("leads", four_agents()[..1].to_vec());
    let queue = FakeQueue::default();
    let policy = crate::policy::DEFAULT_POLICY.to_owned() + TIER_ONE + LEADS;
    let lookahead = Lookahead {
        policy: Arc::new(FakePolicyStore::holding(&policy)),
        floor: Arc::new(floor.clone()),
        queue: Arc::new(queue.clone()),
        clock: Arc::new(ManualClock::starting_at(time("2026-12-07T16:00:00Z"))),
        zone,
    };
    World {
        lookahead,
        floor,
        queue,
    }
}

fn deadline(world: &World) -> Deadline {
    Deadline::after(
        world.lookahead.clock.as_ref(),
        std::time::Duration::from_secs(60),
    )
}

/// Hand count (operator::forecast's test): 10:00 and 10:15 have two of tier-1 in meetings that
/// apply ("sync", "review") against a cap of one (50% of the two on queue); nothing else is over.
#[tokio::test]
async fn a_team_over_its_cap_tomorrow_is_told_which_intervals_and_meetings() {
    let world = world(chrono_tz::UTC);
    let report = world.lookahead.run(deadline(&world)).await.expect("run");

    assert_eq!(report.date.to_string(), "2026-12-08");
    let looked: Vec<(&str, usize, usize, bool)> = report
        .teams
        .iter()
        .map(|t| {
            (
                t.team.as_str(),
                t.members,
                t.intervals_over_cap,
                t.notification_id.is_some(),
            )
        })
        .collect();
    assert_eq!(looked, [("tier-1", 4, 2, true), ("leads", 1, 0, false)]);
    assert_eq!(
        world.floor.asked()[0],
        (
            "tier-1".to_owned(),
            time("2026-12-08T00:00:00Z"),
            time("2026-12-09T00:00:00Z")
        )
    );

    let sent = world.queue.sent();
    assert_eq!(sent.len(), 1, "one notice, for the team over its cap");
    let notice = &sent[0];
    assert_eq!(notice.kind, NotificationKind::Lookahead);
    assert_eq!(notice.user_id, UserId::unattributed());
    assert_eq!(
        notice.sequence, 739_958,
        "the day's number: 2026-12-08 is day 739,958 (0001-01-01 is day 1)"
    );
    let payload: LookaheadPayload =
        serde_json::from_value(notice.payload.clone()).expect("payload");
    assert_eq!(payload.team, "tier-1");
    assert_eq!(payload.members, 4);
    let intervals: Vec<(String, u32, u32, u32, Vec<&str>)> = payload
        .intervals
        .iter()
        .map(|i| {
            (
                format!("{}–{}", i.start.format("%H:%M"), i.end.format("%H:%M")),
                i.on_queue,
                i.off_queue,
                i.cap,
                i.meetings
                    .iter()
                    .map(|m| m.calendar_event_id.as_str())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        intervals,
        [
            ("10:00–10:15".to_owned(), 2, 2, 1, vec!["sync", "review"]),
            ("10:15–10:30".to_owned(), 2, 2, 1, vec!["sync", "review"]),
        ]
    );
    assert_eq!(payload.intervals[0].meetings[0].agent, "agent1@example.com");
    assert_eq!(
        report.teams[0].notification_id.as_deref(),
        Some(notice.notification_id.to_string().as_str())
    );
}

/// The schedule fires at least once: a second run of the same day sends the same id, which
/// dispatch's markers and the receivers dedupe on.
#[tokio::test]
async fn a_second_run_for_the_same_day_sends_the_same_notice() {
    let world = world(chrono_tz::UTC);
    world.lookahead.run(deadline(&world)).await.expect("first");
    world.lookahead.run(deadline(&world)).await.expect("second");
    let sent = world.queue.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].notification_id, sent[1].notification_id);
    assert_eq!(sent[0], sent[1]);
}

/// "Tomorrow" is the schedule's zone's: at 16:00 UTC it is already 2026-12-08 in Auckland.
#[tokio::test]
async fn tomorrow_is_the_zones_next_day() {
    let world = world(chrono_tz::Pacific::Auckland);
    let report = world.lookahead.run(deadline(&world)).await.expect("run");
    assert_eq!(report.date.to_string(), "2026-12-09");
    assert_eq!(
        world.floor.asked()[0],
        (
            "tier-1".to_owned(),
            time("2026-12-08T11:00:00Z"),
            time("2026-12-09T11:00:00Z")
        )
    );
    // The hand-counted meetings end before that day begins there (11:00 UTC).
    assert!(world.queue.sent().is_empty());
}

#[test]
fn a_day_with_a_change_of_clocks_has_its_own_length() {
    let paris = chrono_tz::Europe::Paris;
    let (date, (from, to)) = next_day(time("2027-03-27T15:00:00Z"), paris);
    assert_eq!(date.to_string(), "2027-03-28");
    assert_eq!((to - from).num_hours(), 23);
    let (_, (from, to)) = next_day(time("2027-10-30T15:00:00Z"), paris);
    assert_eq!((to - from).num_hours(), 25);
}

/// Genesys down: the run fails as retryable (the schedule's retry runs it again), nothing sent.
#[tokio::test]
async fn an_unreadable_floor_fails_the_run_for_a_retry() {
    let world = world(chrono_tz::UTC);
    world.floor.set_unavailable(true);
    let error = world
        .lookahead
        .run(deadline(&world))
        .await
        .expect_err("unavailable");
    assert!(error.is_retryable(), "{error}");
    assert!(error.to_string().contains("tier-1"), "{error}");
    assert!(world.queue.sent().is_empty());
}

/// A notice the queue refuses fails the run (retryable): never reported as sent.
#[tokio::test]
async fn a_refused_notice_is_not_reported_sent() {
    let world = world(chrono_tz::UTC);
    let day_start = time("2026-12-08T00:00:00Z");
    world.queue.fail(NotificationId::for_team(
        "tier-1",
        day_start,
        NotificationKind::Lookahead,
    ));
    let error = world
        .lookahead
        .run(deadline(&world))
        .await
        .expect_err("refused");
    assert!(matches!(error, LookaheadError::Refused { .. }), "{error}");
    assert!(error.is_retryable());
}

/// A large team's notice stays small: each interval lists the first meetings and counts the
/// rest (a notice must fit one queue message; a Slack post must stay readable).
#[tokio::test]
async fn a_large_teams_notice_lists_the_first_meetings_and_counts_the_rest() {
    use crate::decide::forecast::tests::{meeting, member};
    use crate::model::ActivityCategory;
    let world = world(chrono_tz::UTC);
    let team: Vec<_> = (0..30)
        .map(|n| {
            let id = format!("m{n}");
            member(
                n,
                ActivityCategory::Meeting,
                vec![meeting(&id, (10, 0), (10, 30), None)],
            )
        })
        .collect();
    world.floor.set_team("tier-1", team);
    world.lookahead.run(deadline(&world)).await.expect("run");
    let sent = world.queue.sent();
    let payload: LookaheadPayload =
        serde_json::from_value(sent[0].payload.clone()).expect("payload");
    let listed: Vec<(u32, usize, u32)> = payload
        .intervals
        .iter()
        .map(|i| (i.off_queue, i.meetings.len(), i.unlisted_meetings))
        .collect();
    assert_eq!(listed, [(30, 8, 22), (30, 8, 22)]);
}
