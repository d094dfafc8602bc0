//! The commands that only look: why, audit, audit verify, state, day.

use std::io::Write;
use std::path::PathBuf;

use chrono::{Duration, NaiveDate};
use futures::StreamExt;
use serde_json::json;

use super::context::day_bounds;
use super::output::{json, or_dash, table};
use super::{CliError, Format, Operations, Verdict};
use crate::operator::explain::{self, local, name_of};
use crate::operator::timeline::{DayPage, render_day};
use crate::ports::{AuditQueries, ConnectionStore, ShiftCache, StateStore};
use crate::state::AuditRecord;

pub async fn why(
    ops: &Operations,
    typed_user: &str,
    at: Option<&str>,
    hours: u32,
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, CliError> {
    let user = ops.user(typed_user).await?;
    let at = match at {
        Some(typed) => ops.moment(typed)?,
        None => ops.now(),
    };
    let store = ops.store()?;
    let around = Duration::hours(i64::from(hours.max(1)));
    let records = store.by_user(&user, at - around, at + around).await?;
    let state = StateStore::get(&store, &user).await?;
    let names = ops.presence_names().await;
    let mut told = explain::explain(&user, at, &records, state.as_ref(), &names, ops.zone());
    let connection = ops.connections()?.get(&user).await?;
    told.calendar = Some(explain::calendar_line(
        connection.as_ref(),
        ops.now(),
        ops.zone(),
    ));
    if format == Format::Json {
        json(out, &told)?;
        return Ok(Verdict::Fine);
    }
    writeln!(
        out,
        "{user} around {} ({}h either side):",
        local(at, ops.zone()),
        hours.max(1)
    )?;
    if told.decisions.is_empty() {
        writeln!(out, "  no decisions in that window")?;
    }
    for decision in &told.decisions {
        let marker = if Some(decision.seq) == told.in_force {
            "▶"
        } else {
            " "
        };
        writeln!(
            out,
            "{marker} {}  {}: {}",
            local(decision.at, ops.zone()),
            decision.trigger,
            decision.told
        )?;
        let seen: Vec<String> = [
            decision.shift.as_ref().map(|s| format!("shift {s}")),
            decision
                .routing_status
                .as_ref()
                .map(|r| format!("routing {r}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !seen.is_empty() {
            writeln!(out, "      (saw {})", seen.join(", "))?;
        }
    }
    if told.in_force.is_some() {
        writeln!(
            out,
            "▶ = the decision in force at {}",
            local(at, ops.zone())
        )?;
    }
    if let Some(calendar) = &told.calendar {
        writeln!(out, "calendar: {calendar}")?;
    }
    writeln!(out, "pending:")?;
    for line in &told.pending {
        writeln!(out, "  - {line}")?;
    }
    Ok(Verdict::Fine)
}

pub async fn audit(
    ops: &Operations,
    typed_user: &str,
    from: Option<&str>,
    to: Option<&str>,
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, CliError> {
    let user = ops.user(typed_user).await?;
    let to = match to {
        Some(typed) => ops.moment(typed)?,
        None => ops.now() + Duration::seconds(1),
    };
    let from = match from {
        Some(typed) => ops.moment(typed)?,
        None => to - Duration::hours(24),
    };
    let records = ops.store()?.by_user(&user, from, to).await?;
    if format == Format::Json {
        json(out, &records)?;
        return Ok(Verdict::Fine);
    }
    let names = ops.presence_names().await;
    let rows = records.iter().map(|r| audit_row(r, &names, ops));
    let headers = ["seq", "at", "kind", "trigger", "before → after", "reason"];
    writeln!(out, "{}", table(&headers, rows))?;
    writeln!(out, "{} record(s) of {user}", records.len())?;
    Ok(Verdict::Fine)
}

fn audit_row(
    record: &AuditRecord,
    names: &explain::PresenceNames,
    ops: &Operations,
) -> Vec<String> {
    let kind = serde_json::to_value(record.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{:?}", record.kind));
    let presence = |p: Option<&crate::state::PresenceRef>| or_dash(p.map(|p| name_of(p, names)));
    vec![
        record.seq.to_string(),
        record
            .at
            .with_timezone(&ops.zone())
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        kind,
        or_dash(record.details["trigger"].as_str()),
        format!(
            "{} → {}",
            presence(record.before.as_ref()),
            presence(record.after.as_ref())
        ),
        or_dash(record.reason.as_deref()),
    ]
}

/// Re-reads each chain; exit 1 names every user whose chain is broken, and where.
/// Chains verified at once by `audit verify --all`.
const VERIFY_CONCURRENCY: usize = 8;

pub async fn verify(
    ops: &Operations,
    typed_user: Option<&str>,
    all: bool,
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, CliError> {
    let store = ops.store()?;
    let users = match typed_user {
        Some(typed) if !all => vec![ops.user(typed).await?],
        _ => store.users().await?,
    };
    let progress = indicatif::ProgressBar::new(users.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} chains {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    // A few chains at a time: thousands of agents in minutes, not an hour, within the table's
    // read capacity. Results keep the users' order.
    let store = &store;
    let progress = &progress;
    let verdicts: Vec<_> = futures::stream::iter(&users)
        .map(|user| async move {
            let verdict = store.verify_chain(user).await;
            progress.inc(1);
            verdict
        })
        .buffered(VERIFY_CONCURRENCY)
        .collect()
        .await;
    progress.finish_and_clear();
    let mut results = Vec::with_capacity(users.len());
    for (user, verdict) in users.iter().zip(verdicts) {
        results.push(match verdict? {
            Ok(report) => json!({"userId": user, "intact": true, "records": report.records}),
            Err(broken) => json!({
                "userId": user,
                "intact": false,
                "firstBadSeq": broken.first_bad_seq(),
                "problem": broken.to_string(),
            }),
        });
    }
    let broken = results.iter().filter(|r| r["intact"] == false).count();
    if format == Format::Json {
        json(out, &json!({"chains": results, "broken": broken}))?;
    } else {
        for result in &results {
            match result["intact"].as_bool() {
                Some(true) => writeln!(
                    out,
                    "ok      {}: {} records, chain intact",
                    result["userId"].as_str().unwrap_or("?"),
                    result["records"]
                )?,
                _ => writeln!(
                    out,
                    "BROKEN  {}: first bad record {}: {}",
                    result["userId"].as_str().unwrap_or("?"),
                    result["firstBadSeq"],
                    result["problem"].as_str().unwrap_or("?")
                )?,
            }
        }
        writeln!(out, "{} chain(s) verified, {broken} broken", results.len())?;
    }
    Ok(Verdict::by_problems(broken))
}

pub async fn state(
    ops: &Operations,
    typed_user: &str,
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, CliError> {
    let user = ops.user(typed_user).await?;
    let store = ops.store()?;
    let Some(state) = StateStore::get(&store, &user).await? else {
        if format == Format::Json {
            json(out, &json!({"userId": user, "state": null}))?;
        } else {
            writeln!(
                out,
                "{user}: nothing stored (we never acted for this agent)"
            )?;
        }
        return Ok(Verdict::Fine);
    };
    if format == Format::Json {
        json(out, &json!({"userId": user, "state": state}))?;
        return Ok(Verdict::Fine);
    }
    let names = ops.presence_names().await;
    let zone = ops.zone();
    let name = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let mut rows = vec![
        vec!["version".to_owned(), state.version.to_string()],
        vec!["updated".to_owned(), local(state.updated_at, zone)],
    ];
    let applied = state.applied.as_ref().map_or_else(
        || "none".to_owned(),
        |a| {
            format!(
                "{} for trigger {} until {}{}",
                name(a.target.as_str()),
                a.trigger_id,
                local(a.until, zone),
                if a.tag.is_none() {
                    " (write not settled)"
                } else {
                    ""
                }
            )
        },
    );
    rows.push(vec!["our override".to_owned(), applied]);
    rows.push(vec![
        "restores to".to_owned(),
        or_dash(state.restore_to.as_ref().map(|p| name_of(p, &names))),
    ]);
    rows.push(vec![
        "changed by someone else".to_owned(),
        state.changed_by_other.to_string(),
    ]);
    for (id, trigger) in &state.active_triggers {
        rows.push(vec![
            format!("active trigger {id}"),
            format!("{:?} until {}", trigger.kind, local(trigger.ends_at, zone)),
        ]);
    }
    rows.push(vec![
        "deferred until".to_owned(),
        or_dash(state.deferred_until.map(|t| local(t, zone))),
    ]);
    rows.push(vec![
        "sweep looks at".to_owned(),
        or_dash(state.due_at.map(|t| local(t, zone))),
    ]);
    rows.push(vec![
        "ended triggers remembered".to_owned(),
        state.ended_triggers.len().to_string(),
    ]);
    rows.push(vec![
        "notifications of the last commit".to_owned(),
        state.outbox.len().to_string(),
    ]);
    writeln!(out, "{user}")?;
    writeln!(out, "{}", table(&["", ""], rows))?;
    Ok(Verdict::Fine)
}

pub async fn day(
    ops: &Operations,
    typed_user: &str,
    date: Option<NaiveDate>,
    path: Option<PathBuf>,
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, CliError> {
    let user = ops.user(typed_user).await?;
    let zone = ops.zone();
    let date = date.unwrap_or_else(|| ops.now().with_timezone(&zone).date_naive());
    let (from, to) = day_bounds(date, zone)?;
    let store = ops.store()?;
    let records = store.by_user(&user, from, to).await?;
    let schedule: Vec<_> = ShiftCache::get(&store, std::slice::from_ref(&user))
        .await?
        .remove(&user)
        .map(|window| window.spans)
        .unwrap_or_default()
        .into_iter()
        .filter(|span| span.end > from && span.start < to)
        .collect();
    let names = ops.presence_names().await;
    let label = typed_user.contains('@').then_some(typed_user);
    let page = render_day(&DayPage {
        user: &user,
        label,
        date,
        zone,
        records: &records,
        schedule: &schedule,
        presence_names: &names,
    });
    let path = path.unwrap_or_else(|| PathBuf::from(format!("autopilot-day-{user}-{date}.html")));
    std::fs::write(&path, page)
        .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))?;
    let decisions = records
        .iter()
        .filter(|r| explain::is_decision(r.kind))
        .count();
    if format == Format::Json {
        json(
            out,
            &json!({"userId": user, "date": date, "path": path, "decisions": decisions, "scheduleSpans": schedule.len()}),
        )?;
    } else {
        writeln!(
            out,
            "{} — {decisions} decision(s), {} schedule activit(ies) on {date}",
            path.display(),
            schedule.len()
        )?;
    }
    Ok(Verdict::Fine)
}
