//! The `schedule-check` use case: everything about time. Planning turns upserted calendar
//! events into one-time EventBridge Scheduler schedules that fire the start and end at
//! `transition`; the sweep (every minute) re-evaluates due deferrals, restores overrides whose
//! end never came, and keeps the shift cache fresh. Decisions go through `TransitionService`:
//! there is no second copy of the rules.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::clock::{Clock, Deadline};
use crate::decide::entry_skip;
use crate::events::{
    self, CALENDAR_EVENT_ENDED, CALENDAR_EVENT_STARTED, CalendarAction, CalendarEntry, EventError,
    FOCUS_ENDED, FOCUS_STARTED, InboundEvent, ParsedEvent,
};
use crate::model::UserId;
use crate::ports::{
    MessagingError, PlannedSchedule, Schedules, ShiftRefresh, StateStore, StoreError,
};
use crate::service::transition::{Edge, TransitionError, Transitions, bounded_event_id};
use crate::state::{TriggerKind, UserState};
use crate::telemetry::{self, Unit};

/// The sweep stops taking new items when less than this is left before the deadline.
const SWEEP_MARGIN: Duration = Duration::from_secs(2);
/// A due user's state, as read, and the edge that is due.
type Due = (UserState, Edge);
/// Due users whose state a sweep run reads at once.
const SWEEP_CONCURRENCY: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum ScheduleCheckError {
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Schedules(#[from] MessagingError),
}

impl ScheduleCheckError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transition(error) => error.is_retryable(),
            Self::Store(error) => error.is_retryable(),
            Self::Schedules(error) => error.is_retryable(),
        }
    }
}

/// What planning did with one calendar event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanOutcome {
    pub event_id: Option<String>,
    pub user_id: Option<String>,
    /// `planned`, `removed`, `started` (the start was already due), `rejected`.
    pub action: String,
    pub reason: Option<String>,
    pub schedules: Vec<PlannedInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedInfo {
    pub name: String,
    pub at: DateTime<Utc>,
    pub detail_type: String,
}

/// One sweep run's numbers (also emitted as EMF metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    /// Items the due query returned (at most the budget).
    pub due: usize,
    pub processed: usize,
    /// Due items not reached in this run (deadline); they stay due for the next.
    pub left: usize,
    pub errors: usize,
    /// The budget was used up: more may be due.
    pub more: bool,
    pub shifts_refreshed: usize,
}

impl SweepReport {
    /// A due user that failed: logged, counted; it stays due for the next run.
    fn fail(&mut self, user: &UserId, error: &ScheduleCheckError) {
        self.errors += 1;
        tracing::error!(user_id = %user, %error, "sweep item failed; it stays due");
    }
}

#[derive(Debug)]
pub struct ScheduleCheck {
    /// Decisions (the sweep's re-evaluations), users by e-mail, audited refusals.
    pub transition: Arc<dyn Transitions>,
    /// The same policy the transition decides by (skips, subjects, the end grace).
    /// The policy in force (the transition service's, refreshed with it).
    pub policy: Arc<crate::policy::LivePolicy>,
    pub schedules: Arc<dyn Schedules>,
    pub state: Arc<dyn StateStore>,
    pub shifts: Option<Arc<dyn ShiftRefresh>>,
    pub clock: Arc<dyn Clock>,
    /// Due items handled per sweep run at most.
    pub budget: usize,
}

/// Schedule names derive from user and trigger: planning the same event again moves the same
/// two schedules (names: at most 64 of `[0-9a-zA-Z-_.]`).
pub fn schedule_name(user: &UserId, trigger: &str, which: &str) -> String {
    let digest = Sha256::digest(format!("{user}\u{0}{trigger}").as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("pa-{hex}-{which}")
}

impl ScheduleCheck {
    /// Plans (or unplans) one `Calendar Event Upserted` / `Deleted` event, as the bus rule
    /// delivers it (read once, from the invocation's JSON).
    pub async fn plan_event(
        &self,
        event: serde_json::Value,
        deadline: Deadline,
    ) -> Result<PlanOutcome, ScheduleCheckError> {
        self.transition.refresh_policy(deadline).await;
        let event_id = event
            .get("id")
            .and_then(|id| id.as_str())
            .map(bounded_event_id);
        match events::parse_value(event) {
            Ok(parsed) => self.plan(&parsed, deadline).await,
            Err(error) => self.reject(event_id, None, &error).await,
        }
    }

    pub async fn plan(
        &self,
        parsed: &ParsedEvent,
        deadline: Deadline,
    ) -> Result<PlanOutcome, ScheduleCheckError> {
        let event_id = Some(parsed.event_id.clone());
        let InboundEvent::Calendar { action, entry } = &parsed.event else {
            let error = EventError {
                field: "detail-type".to_owned(),
                reason: "presence events go to transition".to_owned(),
            };
            return self.reject(event_id, None, &error).await;
        };
        let user = match self.transition.resolve_user(entry, deadline).await? {
            Ok(user) => user,
            Err(error) => return self.reject(event_id, None, &error).await,
        };
        let start_name = schedule_name(&user, entry.trigger_id.as_str(), "start");
        let end_name = schedule_name(&user, entry.trigger_id.as_str(), "end");
        let outcome =
            |action: &str, reason: Option<String>, schedules: Vec<PlannedInfo>| PlanOutcome {
                event_id: event_id.clone(),
                user_id: Some(user.to_string()),
                action: action.to_owned(),
                reason,
                schedules,
            };
        let now = self.clock.now();
        let skip = entry_skip(
            entry,
            &self.policy.current(),
            &user,
            entry.user.email.as_deref(),
        );
        let unplan = match action {
            CalendarAction::Deleted => Some("the event was deleted".to_owned()),
            CalendarAction::Upserted => skip
                .map(|reason| reason.describe())
                .or_else(|| (entry.end <= now).then(|| "the event is over".to_owned())),
            CalendarAction::Started | CalendarAction::Ended => {
                let error = EventError {
                    field: "detail-type".to_owned(),
                    reason: "start and end events go to transition".to_owned(),
                };
                return self.reject(event_id, Some(user), &error).await;
            }
        };
        if let Some(reason) = unplan {
            self.schedules.delete(&start_name).await?;
            self.schedules.delete(&end_name).await?;
            // A meeting removed while it runs ends now, through the same path as any end.
            if self.is_active(&user, entry).await? {
                self.transition
                    .handle(self.planned_event(&user, entry, false, "now"), deadline)
                    .await?;
            }
            return Ok(outcome("removed", Some(reason), Vec::new()));
        }
        let mut planned = Vec::new();
        let started_now = entry.start <= now;
        if started_now {
            // Already begun: no schedule for the past, the start is handled now.
            self.schedules.delete(&start_name).await?;
            self.transition
                .handle(self.planned_event(&user, entry, true, "now"), deadline)
                .await?;
        } else {
            // Moved to later after it began: it ends now (recorded as ended now, so the new
            // start is not taken for a stale one), and starts again when due.
            if self.is_active(&user, entry).await? {
                let mut ended = entry.clone();
                ended.end = now;
                ended.start = entry.start.min(now);
                self.transition
                    .handle(self.planned_event(&user, &ended, false, "now"), deadline)
                    .await?;
            }
            let event = self.planned_event(&user, entry, true, "at");
            planned.push(self.upsert(&user, &start_name, entry.start, &event).await?);
        }
        let end = self.planned_event(&user, entry, false, "at");
        planned.push(self.upsert(&user, &end_name, entry.end, &end).await?);
        Ok(outcome(
            if started_now { "started" } else { "planned" },
            None,
            planned,
        ))
    }

    async fn upsert(
        &self,
        user: &UserId,
        name: &str,
        at: DateTime<Utc>,
        event: &ParsedEvent,
    ) -> Result<PlannedInfo, ScheduleCheckError> {
        let (input, detail_type) = self.envelope(user, event);
        self.schedules
            .upsert(&PlannedSchedule {
                name: name.to_owned(),
                at,
                input,
            })
            .await?;
        Ok(PlannedInfo {
            name: name.to_owned(),
            at,
            detail_type,
        })
    }

    async fn is_active(&self, user: &UserId, entry: &CalendarEntry) -> Result<bool, StoreError> {
        Ok(self
            .state
            .get(user)
            .await?
            .is_some_and(|state| state.active_triggers.contains_key(&entry.trigger_id)))
    }

    /// The start or end event `transition` receives. Its id is derived from what it says, so a
    /// moved meeting fires under a new id and a repeated plan under the same one.
    fn planned_event(
        &self,
        user: &UserId,
        entry: &CalendarEntry,
        start: bool,
        when: &str,
    ) -> ParsedEvent {
        let which = if start { "start" } else { "end" };
        let digest = Sha256::digest(
            format!(
                "{user}\u{0}{}\u{0}{}\u{0}{}\u{0}{which}\u{0}{when}",
                entry.trigger_id,
                entry.start.timestamp(),
                entry.end.timestamp()
            )
            .as_bytes(),
        );
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        let mut planned = entry.clone();
        planned.user.user_id = Some(user.clone());
        let action = if start {
            CalendarAction::Started
        } else {
            CalendarAction::Ended
        };
        ParsedEvent {
            event_id: format!("planned-{hex}"),
            event: InboundEvent::Calendar {
                action,
                entry: planned,
            },
        }
    }

    /// The body of a planned event: Scheduler sends it to the burst queue when it fires.
    fn envelope(&self, user: &UserId, event: &ParsedEvent) -> (String, String) {
        let InboundEvent::Calendar { action, entry } = &event.event else {
            return (String::new(), String::new());
        };
        let detail_type = match (action, entry.kind) {
            (CalendarAction::Started, TriggerKind::Meeting) => CALENDAR_EVENT_STARTED,
            (CalendarAction::Started, TriggerKind::Focus) => FOCUS_STARTED,
            (_, TriggerKind::Meeting) => CALENDAR_EVENT_ENDED,
            (_, TriggerKind::Focus) => FOCUS_ENDED,
        };
        // The subject rides to the start only when a message shows it or a rule reads it
        // (the schedule holds it until it fires).
        let show_subject = self.policy.current().needs_subjects();
        // Our canonical event (docs/events.md): what the burst queue carries, whoever sent it.
        let body = json!({
            "id": event.event_id,
            "detail-type": detail_type,
            "source": "presence-autopilot.schedule-check",
            "time": self.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "detail": entry.canonical_detail(user, show_subject),
        });
        (body.to_string(), detail_type.to_owned())
    }

    /// One sweep run: due deferrals and missed ends, within the budget and the deadline. Each
    /// due user's state is read (a few at a time), then every one with an edge due is decided
    /// in one go, sharing bulk Genesys calls.
    pub async fn sweep(&self, deadline: Deadline) -> Result<SweepReport, ScheduleCheckError> {
        self.transition.refresh_policy(deadline).await;
        let now = self.clock.now();
        let due = self.state.due(now, self.budget).await?;
        let mut report = SweepReport {
            due: due.len(),
            more: due.len() >= self.budget,
            ..SweepReport::default()
        };
        let grace = chrono::Duration::from_std(self.policy.current().end_grace).unwrap_or_default();
        let looked: Vec<(UserId, Result<Option<Due>, ScheduleCheckError>)> =
            futures::stream::iter(due)
                .map(|(user, _)| async move {
                    let edge = self.due_edge(&user, now, grace).await;
                    (user, edge)
                })
                .buffer_unordered(SWEEP_CONCURRENCY)
                .collect()
                .await;
        let mut decide = Vec::new();
        let mut settled = Vec::new();
        for (user, looked) in looked {
            match looked {
                Ok(Some(due)) => decide.push(due),
                Ok(None) => settled.push(user),
                Err(error) => report.fail(&user, &error),
            }
        }
        if !decide.is_empty() && deadline.remaining(self.clock.as_ref()) < SWEEP_MARGIN {
            report.left = decide.len();
            decide.clear();
        }
        let users: Vec<UserId> = decide.iter().map(|(s, _)| s.user_id.clone()).collect();
        let results = self.transition.reevaluate_due(decide, deadline).await;
        for (user, result) in users.into_iter().zip(results) {
            match result {
                Ok(_) => settled.push(user),
                Err(error) => report.fail(&user, &ScheduleCheckError::from(error)),
            }
        }
        report.processed = settled.len();
        let still_active = self.still_active(settled).await;
        if let (Some(shifts), false) = (&self.shifts, still_active.is_empty()) {
            match shifts.refresh(&still_active, now, deadline).await {
                Ok(count) => report.shifts_refreshed = count,
                Err(error) => {
                    tracing::warn!(%error, "shift cache refresh failed; next run tries again")
                }
            }
        }
        telemetry::emit(
            &[("Function", "schedule-check")],
            &[
                ("SweepDue", report.due as f64, Unit::Count),
                ("SweepProcessed", report.processed as f64, Unit::Count),
                ("SweepLeft", report.left as f64, Unit::Count),
                ("SweepErrors", report.errors as f64, Unit::Count),
            ],
        );
        Ok(report)
    }

    /// What is due for `user`: a deferred start, a missed end (past its grace), or nothing (its
    /// due time is then forgotten).
    async fn due_edge(
        &self,
        user: &UserId,
        now: DateTime<Utc>,
        grace: chrono::Duration,
    ) -> Result<Option<Due>, ScheduleCheckError> {
        let Some(state) = self.state.get(user).await? else {
            return Ok(None);
        };
        if state.applied.is_none() && state.deferred_until.is_some_and(|at| at <= now) {
            return Ok(Some((state, Edge::Start)));
        }
        if state
            .active_triggers
            .values()
            .any(|t| t.ends_at + grace <= now)
        {
            return Ok(Some((state, Edge::End)));
        }
        self.clear_due(state).await?;
        Ok(None)
    }

    /// The users among `handled` whose triggers are still active, whose schedules the sweep
    /// keeps cached (best effort: a user whose state cannot be read is left out this run).
    async fn still_active(&self, handled: Vec<UserId>) -> Vec<UserId> {
        let states: Vec<Result<Option<UserState>, StoreError>> = futures::stream::iter(handled)
            .map(|user| async move { self.state.get(&user).await })
            .buffer_unordered(SWEEP_CONCURRENCY)
            .collect()
            .await;
        let mut active = Vec::new();
        for state in states {
            match state {
                Ok(Some(state)) if !state.active_triggers.is_empty() => active.push(state.user_id),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "state unreadable; its schedule is not refreshed")
                }
            }
        }
        active
    }

    /// A due time with nothing to do (e.g. the work was done by an event): forget it.
    async fn clear_due(&self, mut state: UserState) -> Result<(), StoreError> {
        state.due_at = None;
        match self.state.put(&state).await {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(other) => Err(other),
        }
    }
}

impl ScheduleCheck {
    /// Refuses a planning event: one `Rejected` audit record, as `transition` does.
    async fn reject(
        &self,
        event_id: Option<String>,
        user: Option<UserId>,
        error: &EventError,
    ) -> Result<PlanOutcome, ScheduleCheckError> {
        let recorded = self
            .transition
            .reject(event_id.clone(), user, error)
            .await?;
        Ok(PlanOutcome {
            event_id,
            user_id: recorded.user_id,
            action: "rejected".to_owned(),
            reason: Some(error.to_string()),
            schedules: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests;
