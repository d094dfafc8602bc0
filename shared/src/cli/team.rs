//! `autopilot team --team NAME`: who in a team is off queue because of us right now (since
//! when, until when, holding a guard slot), and who is waiting (a start deferred for a call or
//! held by the guard), with what WFM schedules for each now.

use std::io::Write;

use futures::StreamExt as _;
use serde_json::json;

use super::gather;
use super::output::{json, table};
use super::{CliError, Format, Operations, Verdict};
use crate::decide::ShiftView;
use crate::policy::Cap;
use crate::ports::StateStore;
use crate::state::UserState;

/// State reads in flight at once.
const READS: usize = 16;

pub async fn team(
    ops: &Operations,
    team: &str,
    parameter: &str,
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, CliError> {
    let policy = gather::policy_in_force(ops, parameter).await?;
    let now = ops.now();
    let members = gather::team(
        ops,
        &policy,
        team,
        (now, now + chrono::Duration::minutes(15)),
    )
    .await?;
    let store = ops.store()?;
    let states: Vec<Result<Option<UserState>, CliError>> = futures::stream::iter(&members)
        .map(|m| {
            let store = &store;
            async move { Ok(store.get(&m.agent.user).await?) }
        })
        .buffered(READS)
        .collect()
        .await;
    let mut rows = Vec::new();
    let (mut off, mut waiting, mut on_queue) = (0u32, 0u32, 0u32);
    for (member, state) in members.iter().zip(states) {
        let state = state?;
        let activity = member.schedule.as_ref().and_then(|s| s.view_at(now));
        if activity
            == Some(ShiftView::Activity(
                crate::model::ActivityCategory::OnQueueWork,
            ))
        {
            on_queue += 1;
        }
        let applied = state.as_ref().and_then(|s| s.applied.as_ref());
        let waits = state
            .as_ref()
            .and_then(|s| s.deferred_until.filter(|_| s.applied.is_none()));
        off += u32::from(applied.is_some());
        waiting += u32::from(waits.is_some());
        rows.push(json!({
            "userId": member.agent.user,
            "email": member.agent.email,
            "offQueueByUs": applied.is_some(),
            "since": applied.and_then(|a| a.set_at),
            "until": applied.map(|a| a.until),
            "holdsSlot": state.as_ref().and_then(|s| s.slot.clone()),
            "waitingUntil": waits,
            "scheduledNow": activity.map(|a| match a {
                ShiftView::Activity(category) => format!("{category:?}"),
                ShiftView::NoShift => "no shift".to_owned(),
            }),
        }));
    }
    let cap = policy
        .profile(team)
        .and_then(|p| p.guard.as_ref())
        .map(|g| match g.cap {
            Cap::Agents(agents) => agents,
            Cap::PercentOnQueue(percent) => {
                u32::try_from(u64::from(on_queue) * u64::from(percent) / 100).unwrap_or(u32::MAX)
            }
        });
    if format == Format::Json {
        json(
            out,
            &json!({"team": team, "policy": policy.version, "at": now, "members": members.len(),
                    "offQueueByUs": off, "waiting": waiting, "cap": cap, "agents": rows}),
        )?;
        return Ok(Verdict::Fine);
    }
    let summary = format!(
        "team {team}: {} members; {off} off queue because of us, {waiting} waiting ({})",
        members.len(),
        cap.map_or_else(|| "no guard".to_owned(), |c| format!("cap {c}"))
    );
    write_text(ops, &summary, &rows, out)?;
    Ok(Verdict::Fine)
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
