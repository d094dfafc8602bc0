//! The `lookahead` use case: once a day, each team with a staffing cap has its next day
//! forecast (operator::forecast) under the policy in force; the intervals over the cap, with the
//! meetings causing them, go to the team's subscribers as one `lookahead` notification through
//! the webhook queue (signed and retried there like every other). Reads only; a second run for
//! the same day sends the same notification id, which dispatch does not deliver twice.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::clock::{Clock, Deadline};
use crate::decide::forecast::{INTERVAL, Interval, forecast};
use crate::model::UserId;
use crate::policy::{Policy, PolicyError};
use crate::ports::{
    FloorError, MessagingError, NotificationQueue, PolicySource, SendOutcome, StoreError, TeamFloor,
};
use crate::state::{
    LOOKAHEAD_LISTED_MEETINGS, LookaheadInterval, LookaheadMeeting, LookaheadPayload, Notification,
    NotificationId, NotificationKind,
};

/// Everything the look-ahead talks to.
#[derive(Debug)]
pub struct Lookahead {
    pub policy: Arc<dyn PolicySource>,
    pub floor: Arc<dyn TeamFloor>,
    pub queue: Arc<dyn NotificationQueue>,
    pub clock: Arc<dyn Clock>,
    /// Where "tomorrow" is: the zone the template's schedule runs in.
    pub zone: Tz,
}

/// What one run did, per team with a cap.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LookaheadReport {
    pub date: NaiveDate,
    pub policy: String,
    pub teams: Vec<TeamReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamReport {
    pub team: String,
    pub members: usize,
    pub intervals_over_cap: usize,
    /// The notification sent (none when nothing is over the cap).
    pub notification_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LookaheadError {
    #[error("policy store: {0}")]
    PolicyStore(#[source] StoreError),
    #[error("the stored policy does not load: {0}")]
    Policy(#[source] PolicyError),
    #[error("team {team}: {source}")]
    Floor {
        team: String,
        #[source]
        source: FloorError,
    },
    #[error("notification queue: {0}")]
    Queue(#[source] MessagingError),
    #[error("notification queue refused team {team}'s notice: {code}")]
    Refused { team: String, code: String },
}

impl LookaheadError {
    /// A retry of the whole run is safe: what was sent is sent again under the same id.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::PolicyStore(err) => err.is_retryable(),
            Self::Policy(_) => false,
            Self::Floor { source, .. } => source.is_retryable(),
            Self::Queue(_) | Self::Refused { .. } => true,
        }
    }
}

impl Lookahead {
    /// Forecasts tomorrow (in `zone`) for every team with a cap and sends the notices.
    pub async fn run(&self, deadline: Deadline) -> Result<LookaheadReport, LookaheadError> {
        let stored = self
            .policy
            .fetch()
            .await
            .map_err(LookaheadError::PolicyStore)?;
        let policy = Policy::from_toml(&stored.text).map_err(LookaheadError::Policy)?;
        let (date, range) = next_day(self.clock.now(), self.zone);
        let mut teams = Vec::new();
        for team in capped_teams(&policy) {
            teams.push(
                self.look_at(&policy, &team, (date, range), deadline)
                    .await?,
            );
        }
        Ok(LookaheadReport {
            date,
            policy: policy.version.clone(),
            teams,
        })
    }

    /// One team: its forecast, and its notice when an interval is over the cap.
    async fn look_at(
        &self,
        policy: &Policy,
        team: &str,
        (date, range): (NaiveDate, (DateTime<Utc>, DateTime<Utc>)),
        deadline: Deadline,
    ) -> Result<TeamReport, LookaheadError> {
        let floor_error = |source| LookaheadError::Floor {
            team: team.to_owned(),
            source,
        };
        let members = self
            .floor
            .team(policy, team, range, deadline)
            .await
            .map_err(floor_error)?;
        let over: Vec<Interval> = forecast(policy, team, &members, range)
            .into_iter()
            .filter(Interval::over_cap)
            .collect();
        let mut report = TeamReport {
            team: team.to_owned(),
            members: members.len(),
            intervals_over_cap: over.len(),
            notification_id: None,
        };
        if over.is_empty() {
            return Ok(report);
        }
        let payload = LookaheadPayload {
            team: team.to_owned(),
            date,
            time_zone: self.zone.name().to_owned(),
            policy: policy.version.clone(),
            members: u32::try_from(members.len()).unwrap_or(u32::MAX),
            intervals: over.iter().map(notice_interval).collect(),
        };
        let notification = team_notice(team, range.0, &payload);
        let sent = self
            .queue
            .send(std::slice::from_ref(&notification))
            .await
            .map_err(LookaheadError::Queue)?;
        if let Some(SendOutcome::Failed { code, .. }) = sent.into_iter().next() {
            return Err(LookaheadError::Refused {
                team: team.to_owned(),
                code,
            });
        }
        tracing::info!(team, intervals = over.len(), notification_id = %notification.notification_id, "look-ahead sent");
        report.notification_id = Some(notification.notification_id.to_string());
        Ok(report)
    }
}

/// The teams a look-ahead is about: the profiles with a staffing guard.
fn capped_teams(policy: &Policy) -> Vec<String> {
    policy
        .all_profiles()
        .filter(|p| p.guard.is_some())
        .map(|p| p.profile.clone())
        .collect()
}

/// The day after `now`'s in `zone`, from its local midnight to the next (23 or 25 hours on a
/// change of clocks).
pub fn next_day(now: DateTime<Utc>, zone: Tz) -> (NaiveDate, (DateTime<Utc>, DateTime<Utc>)) {
    let today = now.with_timezone(&zone).date_naive();
    let date = today.succ_opt().unwrap_or(today);
    let start_of = |day: NaiveDate| {
        let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
        // A zone whose clocks skip midnight starts the day at the first moment that exists.
        zone.from_local_datetime(&midnight)
            .earliest()
            .unwrap_or_else(|| zone.from_utc_datetime(&midnight))
            .with_timezone(&Utc)
    };
    let next = date.succ_opt().unwrap_or(date);
    (date, (start_of(date), start_of(next)))
}

fn notice_interval(interval: &Interval) -> LookaheadInterval {
    let listed = interval.taken.len().min(LOOKAHEAD_LISTED_MEETINGS);
    LookaheadInterval {
        start: interval.start,
        end: interval.start + INTERVAL,
        on_queue: interval.on_queue,
        off_queue: interval.off_queue(),
        cap: interval.cap.unwrap_or_default(),
        unlisted_meetings: u32::try_from(interval.taken.len() - listed).unwrap_or(u32::MAX),
        meetings: interval
            .taken
            .iter()
            .take(listed)
            .map(|t| LookaheadMeeting {
                agent: t.agent.clone(),
                calendar_event_id: t.trigger.clone(),
                start: t.start,
                end: t.end,
                presence: t.presence.clone(),
            })
            .collect(),
    }
}

/// The team's notice for the day starting at `day_start`: the same id for the same team and day;
/// its sequence is the day's number, so a team's notices order by day (receivers that keep the
/// last sequence per user and team drop a stale one).
fn team_notice(team: &str, day_start: DateTime<Utc>, payload: &LookaheadPayload) -> Notification {
    Notification {
        notification_id: NotificationId::for_team(team, day_start, NotificationKind::Lookahead),
        user_id: UserId::unattributed(),
        changed_at: day_start,
        sequence: u64::try_from(chrono::Datelike::num_days_from_ce(&payload.date)).unwrap_or(0),
        kind: NotificationKind::Lookahead,
        payload: serde_json::to_value(payload).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests;
