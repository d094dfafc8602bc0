//! `autopilot team --team NAME`: who in a team is off queue because of us right now (since
//! when, until when, holding a guard slot), and who is waiting (a start deferred for a call or
//! held by the guard), with what WFM schedules for each now.

use std::io::Write;

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde_json::json;

use super::context::day_bounds;
use super::gather;
use super::output::{json, table};
use super::{CliError, Format, Operations, Verdict};
use crate::decide::ShiftView;
use crate::decide::replay::{Replayed, replay};
use crate::model::ActivityCategory;
use crate::operator::floor::FloorMember;
use crate::operator::team_page::{LaneMeeting, TeamLane, TeamPage, render_team};
use crate::policy::{Cap, Policy};
use crate::ports::StateStore;
use crate::state::UserState;

/// State reads in flight at once.
const READS: usize = 16;

/// What the command was asked.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub team: &'a str,
    pub parameter: &'a str,
    /// Where to write the team's day as a page, if asked.
    pub page: Option<&'a std::path::Path>,
}

pub async fn team(
    ops: &Operations,
    asked: &Asked<'_>,
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, CliError> {
    let policy = gather::policy_in_force(ops, asked.parameter).await?;
    let now = ops.now();
    let day = day_bounds(now.with_timezone(&ops.zone()).date_naive(), ops.zone())?;
    let members = gather::team(ops, &policy, asked.team, day).await?;
    let states = read_states(ops, &members).await?;
    let on_queue = members
        .iter()
        .filter(|m| activity_at(m, now) == Some(ShiftView::Activity(ActivityCategory::OnQueueWork)))
        .count();
    let cap = cap_now(&policy, asked.team, on_queue);
    if let Some(path) = asked.page {
        let lanes: Vec<TeamLane> = members
            .iter()
            .zip(&states)
            .map(|(m, s)| lane(&policy, m, s.as_ref()))
            .collect();
        let html = render_team(&TeamPage {
            team: asked.team,
            policy: &policy.version,
            zone: ops.zone(),
            now,
            day,
            cap,
            lanes: &lanes,
        });
        std::fs::write(path, html)
            .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    }
    let rows: Vec<serde_json::Value> = members
        .iter()
        .zip(&states)
        .map(|(m, s)| row(m, s.as_ref(), now))
        .collect();
    let off = rows.iter().filter(|r| r["offQueueByUs"] == true).count();
    let waiting = rows.iter().filter(|r| !r["waitingUntil"].is_null()).count();
    if format == Format::Json {
        json(
            out,
            &json!({"team": asked.team, "policy": policy.version, "at": now, "members": members.len(),
                    "offQueueByUs": off, "waiting": waiting, "cap": cap, "agents": rows}),
        )?;
        return Ok(Verdict::Fine);
    }
    let summary = format!(
        "team {}: {} members; {off} off queue because of us, {waiting} waiting ({})",
        asked.team,
        members.len(),
        cap.map_or_else(|| "no guard".to_owned(), |c| format!("cap {c}"))
    );
    write_text(ops, &summary, &rows, out)?;
    Ok(Verdict::Fine)
}

async fn read_states(
    ops: &Operations,
    members: &[FloorMember],
) -> Result<Vec<Option<UserState>>, CliError> {
    let store = ops.store()?;
    let store = &store;
    futures::stream::iter(members)
        .map(|m| async move { Ok(store.get(&m.agent.user).await?) })
        .buffered(READS)
        .collect::<Vec<Result<Option<UserState>, CliError>>>()
        .await
        .into_iter()
        .collect()
}

fn activity_at(member: &FloorMember, at: DateTime<Utc>) -> Option<ShiftView> {
    member.schedule.as_ref().and_then(|s| s.view_at(at))
}

/// The team's guard cap with `on_queue` of its members scheduled on queue (None: no guard).
fn cap_now(policy: &Policy, team: &str, on_queue: usize) -> Option<u32> {
    let on_queue = u64::try_from(on_queue).unwrap_or(u64::MAX);
    policy
        .profile(team)
        .and_then(|p| p.guard.as_ref())
        .map(|g| match g.cap {
            Cap::Agents(agents) => agents,
            Cap::PercentOnQueue(percent) => {
                u32::try_from(on_queue * u64::from(percent) / 100).unwrap_or(u32::MAX)
            }
        })
}

/// One agent now: what we hold them in, their slot, a waiting start, their WFM activity.
fn row(member: &FloorMember, state: Option<&UserState>, now: DateTime<Utc>) -> serde_json::Value {
    let applied = state.and_then(|s| s.applied.as_ref());
    let waits = state.and_then(|s| s.deferred_until.filter(|_| s.applied.is_none()));
    json!({
        "userId": member.agent.user,
        "email": member.agent.email,
        "offQueueByUs": applied.is_some(),
        "since": applied.and_then(|a| a.set_at),
        "until": applied.map(|a| a.until),
        "holdsSlot": state.and_then(|s| s.slot.clone()),
        "waitingUntil": waits,
        "scheduledNow": activity_at(member, now).map(|a| match a {
            ShiftView::Activity(category) => format!("{category:?}"),
            ShiftView::NoShift => "no shift".to_owned(),
        }),
    })
}

/// One agent's day for the page: WFM's activities, the known meetings as the policy decides
/// them, and what we hold now.
fn lane(policy: &Policy, member: &FloorMember, state: Option<&UserState>) -> TeamLane {
    let applied = state.and_then(|s| s.applied.as_ref());
    TeamLane {
        agent: member
            .agent
            .email
            .clone()
            .unwrap_or_else(|| member.agent.user.to_string()),
        activities: member
            .schedule
            .as_ref()
            .map(|s| s.spans.clone())
            .unwrap_or_default(),
        meetings: member
            .meetings
            .iter()
            .map(|meeting| {
                let decided = replay(policy, &member.agent, meeting);
                LaneMeeting {
                    start: meeting.entry.start,
                    end: meeting.entry.end,
                    applies: matches!(decided, Replayed::Set { .. }),
                    outcome: decided.to_string(),
                }
            })
            .collect(),
        ours: applied.map(|a| (a.set_at, a.until)),
        holds_slot: state.is_some_and(|s| s.slot.is_some()),
        waiting_until: state.and_then(|s| s.deferred_until.filter(|_| s.applied.is_none())),
    }
}

/// The summary, then a row per agent: what we hold them in now, their slot, their WFM activity.
fn write_text(
    ops: &Operations,
    summary: &str,
    rows: &[serde_json::Value],
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let zone = ops.zone();
    let time = |value: &serde_json::Value| {
        value
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or_else(
                || "-".to_owned(),
                |t| t.with_timezone(&zone).format("%a %H:%M %Z").to_string(),
            )
    };
    writeln!(out, "{summary}")?;
    let lines = rows.iter().map(|r| {
        let now_text = if r["offQueueByUs"] == true {
            format!(
                "off queue since {} until {}",
                time(&r["since"]),
                time(&r["until"])
            )
        } else if !r["waitingUntil"].is_null() {
            format!("waiting; looked at again {}", time(&r["waitingUntil"]))
        } else {
            "-".to_owned()
        };
        vec![
            r["email"]
                .as_str()
                .map_or_else(|| r["userId"].to_string(), str::to_owned),
            now_text,
            r["holdsSlot"]
                .as_str()
                .map_or_else(|| "-".to_owned(), |t| format!("holds a slot of {t}")),
            r["scheduledNow"].as_str().unwrap_or("-").to_owned(),
        ]
    });
    writeln!(
        out,
        "{}",
        table(&["agent", "now", "guard", "WFM now"], lines)
    )?;
    Ok(())
}
