//! `autopilot forecast --team NAME [--days 7]`: the team's meeting load per 15-minute interval
//! under the policy in force (operator::forecast), from what we store (the connector's mirror)
//! and the published WFM schedules. Changes nothing. Exit 1 when an interval is over the cap.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::gather;
use super::output::{json, table};
use super::{CliError, Format, Operations, Verdict};
use crate::decide::forecast::{Interval, Member, forecast as intervals_of};
use crate::operator::forecast_page::{ForecastPage, render_forecast};
use crate::policy::Policy;

const MAX_DAYS: u32 = 31;

/// What the command was asked.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub team: &'a str,
    pub days: u32,
    pub parameter: &'a str,
    /// Where to write the page, if asked.
    pub page: Option<&'a std::path::Path>,
}

pub async fn forecast(
    ops: &Operations,
    asked: &Asked<'_>,
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, CliError> {
    let Asked {
        team,
        days,
        parameter,
        page,
    } = *asked;
    if days == 0 || days > MAX_DAYS {
        return Err(CliError::Usage(format!("--days: 1 to {MAX_DAYS}")));
    }
    let policy = gather::policy_in_force(ops, parameter).await?;
    let (from, to) = (
        ops.now(),
        ops.now() + chrono::Duration::days(i64::from(days)),
    );
    let members: Vec<Member> = gather::team(ops, &policy, team, (from, to))
        .await?
        .into_iter()
        .map(Member::from)
        .collect();
    let connected = members.iter().filter(|m| m.agent.email.is_some()).count();
    let intervals = intervals_of(&policy, team, &members, (from, to));
    let over: Vec<&Interval> = intervals.iter().filter(|i| i.over_cap()).collect();
    if let Some(path) = page {
        let html = render_forecast(&ForecastPage {
            team,
            policy: &policy.version,
            members: members.len(),
            zone: ops.zone(),
            generated: ops.now(),
            intervals: &intervals,
        });
        std::fs::write(path, html)
            .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    }
    if format == Format::Json {
        let listed: Vec<_> = intervals.iter().map(interval_json).collect();
        json(
            out,
            &json!({"team": team, "policy": policy.version, "from": from, "to": to,
                    "members": members.len(), "withCalendar": connected,
                    "intervalsOverCap": over.len(), "intervals": listed}),
        )?;
    } else {
        write_text(ops, (team, &policy), (&members, connected), &intervals, out)?;
    }
    Ok(if over.is_empty() {
        Verdict::Fine
    } else {
        Verdict::Found
    })
}

fn interval_json(interval: &Interval) -> serde_json::Value {
    json!({
        "start": interval.start,
        "onQueue": interval.on_queue,
        "offQueue": interval.off_queue(),
        "cap": interval.cap,
        "share": interval.share(),
        "overCap": interval.over_cap(),
        "meetings": interval.taken.iter().map(|t| json!({
            "agent": t.agent, "calendarEventId": t.trigger, "start": t.start, "end": t.end,
            "presence": t.presence,
        })).collect::<Vec<_>>(),
    })
}

/// A line per day (the peak, the intervals over the cap), then each interval over the cap with
/// the meetings that cause it.
fn write_text(
    ops: &Operations,
    (team, policy): (&str, &Policy),
    (members, connected): (&[Member], usize),
    intervals: &[Interval],
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let zone = ops.zone();
    let local = |t: DateTime<Utc>, format: &str| t.with_timezone(&zone).format(format).to_string();
    writeln!(
        out,
        "team {team}: {} members ({connected} with a calendar connected), policy {}",
        members.len(),
        policy.version
    )?;
    let mut days: BTreeMap<String, (u32, u32, usize)> = BTreeMap::new();
    for interval in intervals {
        let day = days
            .entry(local(interval.start, "%a %Y-%m-%d"))
            .or_default();
        day.0 = day.0.max(interval.off_queue());
        day.1 = day.1.max(interval.on_queue);
        day.2 += usize::from(interval.over_cap());
    }
    let rows = days.iter().map(|(day, (off, on, over))| {
        vec![
            day.clone(),
            off.to_string(),
            on.to_string(),
            over.to_string(),
        ]
    });
    let headers = [
        "day",
        "most off queue for meetings",
        "most on queue (WFM)",
        "15-min intervals over the cap",
    ];
    writeln!(out, "{}", table(&headers, rows))?;
    let over: Vec<&Interval> = intervals.iter().filter(|i| i.over_cap()).collect();
    if over.is_empty() {
        writeln!(out, "no interval over the cap")?;
        return Ok(());
    }
    let rows = over.iter().map(|i| {
        let causes: Vec<String> = i
            .taken
            .iter()
            .map(|t| {
                format!(
                    "{} {} ({}–{})",
                    t.agent,
                    t.trigger,
                    local(t.start, "%H:%M"),
                    local(t.end, "%H:%M")
                )
            })
            .collect();
        vec![
            local(i.start, "%a %H:%M %Z"),
            format!(
                "{} of {} (cap {})",
                i.off_queue(),
                i.on_queue,
                i.cap.unwrap_or_default()
            ),
            causes.join("\n"),
        ]
    });
    writeln!(
        out,
        "{}",
        table(&["interval", "off queue", "meetings"], rows)
    )?;
    Ok(())
}
