//! A team's meeting load per 15-minute interval, before it happens (`autopilot forecast`, the
//! daily look-ahead). For
//! each interval: how many of the team WFM schedules on queue, how many the calendar would take
//! off queue under the policy in force (its rules, the WFM activity at each meeting's start),
//! the share, and whether that is over the team's staffing-guard cap, with the meetings that
//! make it so. Pure: the caller gathers the team, their schedules and their known meetings.

use chrono::{DateTime, Duration, DurationRound, Utc};

use super::replay::{Agent, Meeting, Replayed, replay};
use crate::decide::{ShiftView, ShiftWindow};
use crate::model::ActivityCategory;
use crate::policy::{Cap, Policy};

/// The forecast's grain.
pub const INTERVAL: Duration = Duration::minutes(15);

/// One member of the team: their published schedule over the range (None: WFM does not
/// schedule them) and their known meetings (empty: no calendar connected).
#[derive(Debug, Clone)]
pub struct Member {
    pub agent: Agent,
    pub schedule: Option<ShiftWindow>,
    pub meetings: Vec<Meeting>,
}

/// A meeting that takes a member off queue in an interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taking {
    pub agent: String,
    pub trigger: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub presence: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    pub start: DateTime<Utc>,
    /// Members WFM schedules on queue (`OnQueueWork`) at the interval's start.
    pub on_queue: u32,
    /// Members the calendar would take off queue then (their meeting would apply).
    pub taken: Vec<Taking>,
    /// The team's guard cap then (None: the team has no guard).
    pub cap: Option<u32>,
}

impl Interval {
    pub fn off_queue(&self) -> u32 {
        u32::try_from(self.taken.len()).unwrap_or(u32::MAX)
    }

    /// More meetings than the guard lets through: some will wait on queue.
    pub fn over_cap(&self) -> bool {
        self.cap.is_some_and(|cap| self.off_queue() > cap)
    }

    /// Off queue for the calendar as a share of those scheduled on queue (None: nobody is).
    pub fn share(&self) -> Option<f64> {
        (self.on_queue > 0).then(|| f64::from(self.off_queue()) / f64::from(self.on_queue))
    }
}

/// The team's intervals from `from` (rounded down to the quarter hour) to `to`, decided by
/// `team`'s profile of `policy` (the members are the caller's: that profile's agents).
pub fn forecast(
    policy: &Policy,
    team: &str,
    members: &[Member],
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Vec<Interval> {
    let cap = policy
        .profile(team)
        .and_then(|profile| profile.guard.as_ref())
        .map(|guard| guard.cap);
    // Each member's meetings that would apply, decided once at their start.
    let applying: Vec<(&Member, Vec<Taking>)> = members
        .iter()
        .map(|member| {
            let agent = member
                .agent
                .email
                .clone()
                .unwrap_or_else(|| member.agent.user.to_string());
            let taking = member
                .meetings
                .iter()
                .filter_map(|meeting| match replay(policy, &member.agent, meeting) {
                    Replayed::Set { presence, .. } => Some(Taking {
                        agent: agent.clone(),
                        trigger: meeting.entry.trigger_id.as_str().to_owned(),
                        start: meeting.entry.start,
                        end: meeting.entry.end,
                        presence,
                    }),
                    Replayed::Skipped { .. } => None,
                })
                .collect();
            (member, taking)
        })
        .collect();
    let mut intervals = Vec::new();
    let mut at = from.duration_trunc(INTERVAL).unwrap_or(from);
    while at < to {
        let on_queue = members
            .iter()
            .filter(|m| {
                m.schedule.as_ref().and_then(|s| s.view_at(at))
                    == Some(ShiftView::Activity(ActivityCategory::OnQueueWork))
            })
            .count();
        let on_queue = u32::try_from(on_queue).unwrap_or(u32::MAX);
        let taken: Vec<Taking> = applying
            .iter()
            .filter_map(|(_, meetings)| {
                // One member counts once, by the meeting that began first.
                meetings
                    .iter()
                    .filter(|t| t.start <= at && at < t.end)
                    .min_by_key(|t| t.start)
                    .cloned()
            })
            .collect();
        intervals.push(Interval {
            start: at,
            on_queue,
            taken,
            cap: cap.map(|cap| match cap {
                Cap::Agents(agents) => agents,
                Cap::PercentOnQueue(percent) => {
                    u32::try_from(u64::from(on_queue) * u64::from(percent) / 100)
                        .unwrap_or(u32::MAX)
                }
            }),
        });
        at += INTERVAL;
    }
    intervals
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::decide::ScheduledSpan;
    use crate::events::{CalendarEntry, Response, ShowAs, UserRef};
    use crate::model::UserId;
    use crate::state::{TriggerId, TriggerKind};

    pub(crate) fn at(hour: u32, minute: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-12-08T{hour:02}:{minute:02}:00Z"))
            .expect("time")
            .to_utc()
    }

    pub(crate) fn span(
        from: (u32, u32),
        to: (u32, u32),
        category: ActivityCategory,
    ) -> ScheduledSpan {
        ScheduledSpan {
            start: at(from.0, from.1),
            end: at(to.0, to.1),
            category,
        }
    }

    pub(crate) fn meeting(
        id: &str,
        from: (u32, u32),
        to: (u32, u32),
        subject: Option<&str>,
    ) -> Meeting {
        Meeting {
            entry: CalendarEntry {
                user: UserRef {
                    user_id: None,
                    email: None,
                },
                trigger_id: TriggerId::parse(id).expect("id"),
                kind: TriggerKind::Meeting,
                start: at(from.0, from.1),
                end: at(to.0, to.1),
                show_as: ShowAs::Busy,
                all_day: false,
                cancelled: false,
                response: Response::Accepted,
                subject: subject.map(str::to_owned),
                zone: None,
                categories: Vec::new(),
                others: Some(3),
                organizer: None,
            },
            shift: None,
        }
    }

    /// Each member's day: on queue 9:00–12:00 but for a 10:00–11:00 block of `block`.
    pub(crate) fn member(n: u32, block: ActivityCategory, meetings: Vec<Meeting>) -> Member {
        let schedule = ShiftWindow {
            from: at(0, 0),
            to: at(23, 59),
            fetched_at: at(0, 0),
            spans: vec![
                span((9, 0), (10, 0), ActivityCategory::OnQueueWork),
                span((10, 0), (11, 0), block),
                span((11, 0), (12, 0), ActivityCategory::OnQueueWork),
            ],
            zone: None,
        };
        // The shift at each meeting's start, as the caller reads it from the schedule.
        let meetings = meetings
            .into_iter()
            .map(|mut m| {
                m.shift = schedule.view_at(m.entry.start);
                m
            })
            .collect();
        Member {
            agent: Agent {
                user: UserId::parse(&format!("00000000-0000-4000-8000-{n:012}")).expect("id"),
                email: Some(format!("agent{n}@example.com")),
                groups: ["g-t1".to_owned()].into(),
                management_unit: None,
            },
            schedule: Some(schedule),
            meetings,
        }
    }

    /// The hand count's policy after the built-in one: a tier-1 team (group g-t1) capped at 50%
    /// of those on queue, and a rule that skips training.
    pub(crate) const TIER_ONE: &str = r#"
[[rules]]
name = "no-training"
subject_contains = "training"
skip = "training is planned in WFM"

[[profiles]]
name = "tier-1"
groups = ["g-t1"]

[profiles.guard]
max_percent_on_queue = 50
"#;

    pub(crate) fn tier_one_policy() -> Policy {
        Policy::from_toml(&(crate::policy::DEFAULT_POLICY.to_owned() + TIER_ONE)).expect("valid")
    }

    /// The hand count's team: four agents of tier-1.
    pub(crate) fn four_agents() -> [Member; 4] {
        [
            member(
                1,
                ActivityCategory::Meeting,
                vec![
                    meeting("early", (9, 0), (9, 30), None),
                    meeting("sync", (10, 0), (10, 30), None),
                ],
            ),
            member(
                2,
                ActivityCategory::Meeting,
                vec![meeting("review", (10, 0), (11, 0), None)],
            ),
            member(
                3,
                ActivityCategory::OnQueueWork,
                vec![meeting(
                    "course",
                    (10, 0),
                    (11, 0),
                    Some("Product training"),
                )],
            ),
            member(4, ActivityCategory::OnQueueWork, Vec::new()),
        ]
    }

    /// A known morning of a four-agent team with a cap of 50% of those on queue. Hand count:
    /// - 9:00: four on queue; a meeting during on-queue work is not applied (WFM disallows) → 0.
    /// - 10:00: agents 1–2 in a Meeting block (on queue: 3, 4 → cap 1), both with a meeting that
    ///   applies; agent 3's "Training" is skipped by a rule → 2 off queue, over the cap of 1.
    /// - 10:30: agent 1's meeting ended → 1 off queue, at the cap.
    /// - 11:00: everyone on queue again (cap 2), nobody off.
    #[test]
    fn a_known_morning_matches_the_hand_count() {
        let policy = tier_one_policy();
        let team = four_agents();
        let intervals = forecast(&policy, "tier-1", &team, (at(9, 5), at(11, 15)));
        let counted: Vec<(String, u32, u32, Option<u32>, bool)> = intervals
            .iter()
            .map(|i| {
                (
                    i.start.format("%H:%M").to_string(),
                    i.on_queue,
                    i.off_queue(),
                    i.cap,
                    i.over_cap(),
                )
            })
            .collect();
        let expected = [
            ("09:00", 4, 0, Some(2), false),
            ("09:15", 4, 0, Some(2), false),
            ("09:30", 4, 0, Some(2), false),
            ("09:45", 4, 0, Some(2), false),
            ("10:00", 2, 2, Some(1), true),
            ("10:15", 2, 2, Some(1), true),
            ("10:30", 2, 1, Some(1), false),
            ("10:45", 2, 1, Some(1), false),
            ("11:00", 4, 0, Some(2), false),
        ];
        let expected: Vec<(String, u32, u32, Option<u32>, bool)> = expected
            .iter()
            .map(|(t, q, o, c, x)| ((*t).to_owned(), *q, *o, *c, *x))
            .collect();
        assert_eq!(counted, expected);
        let causes: Vec<&str> = intervals[4]
            .taken
            .iter()
            .map(|t| t.trigger.as_str())
            .collect();
        assert_eq!(causes, ["sync", "review"]);
        assert_eq!(intervals[4].share(), Some(1.0));
    }
}
