//! `autopilot policy diff FILE --days N`: the connected agents' known meetings of the next days
//! (the calendar connector's mirror), each with its WFM activity at the start (one schedule
//! search per business unit and 100 agents), decided under the policy in force (the stack's
//! parameter) and under FILE; the meetings whose effect differs, per agent. Changes nothing.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::gather;
use super::output::{json, table};
use super::policy::{read, refused};
use super::{CliError, Format, Operations, Verdict};
use crate::decide::replay::{Agent, Meeting, differences};
use crate::policy::Policy;

/// A week is the usual question; a month is the most a schedule search is asked for here.
const MAX_DAYS: u32 = 31;

pub async fn diff(
    ops: &Operations,
    file: &Path,
    days: u32,
    parameter: &str,
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, CliError> {
    if days == 0 || days > MAX_DAYS {
        return Err(CliError::Usage(format!("--days: 1 to {MAX_DAYS}")));
    }
    let proposed = match Policy::from_toml(&read(file)?) {
        Ok(policy) => policy,
        Err(error) => return refused(file, "the file", &error.to_string(), format, out),
    };
    let current = gather::policy_in_force(ops, parameter).await?;
    let (from, to) = (
        ops.now(),
        ops.now() + chrono::Duration::days(i64::from(days)),
    );
    let week: Vec<(Agent, Vec<Meeting>)> =
        gather::floor(ops, &[&current, &proposed], &[], (from, to))
            .await?
            .into_iter()
            .filter(|member| member.connected)
            .map(|member| (member.agent, member.meetings))
            .collect();
    let replayed: usize = week.iter().map(|(_, meetings)| meetings.len()).sum();
    let found = differences(&current, &proposed, &week);
    let unreplayable = [&current, &proposed].iter().any(|p| {
        p.all_profiles()
            .any(|p| p.rules.iter().any(|r| r.reads_subject()))
    });
    let replay = Replay {
        policies: (&current, &proposed),
        days,
        agents: week.len(),
        meetings: replayed,
        subjects_replayed: !unreplayable,
    };
    report(ops, &replay, &found, format, out)?;
    Ok(if found.is_empty() {
        Verdict::Fine
    } else {
        Verdict::Found
    })
}

/// What was replayed, for the report.
struct Replay<'a> {
    policies: (&'a Policy, &'a Policy),
    days: u32,
    agents: usize,
    meetings: usize,
    subjects_replayed: bool,
}

fn report(
    ops: &Operations,
    replay: &Replay<'_>,
    found: &[crate::decide::replay::Difference],
    format: Format,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if format == Format::Json {
        let listed: Vec<_> = found
            .iter()
            .map(|d| {
                json!({"userId": d.user, "email": d.email, "calendarEventId": d.trigger,
                       "start": d.start, "end": d.end,
                       "now": d.now.to_string(), "proposed": d.proposed.to_string()})
            })
            .collect();
        json(
            out,
            &json!({"inForce": replay.policies.0.version, "proposed": replay.policies.1.version, "days": replay.days,
                    "agents": replay.agents, "meetings": replay.meetings,
                    "subjectRulesReplayed": replay.subjects_replayed, "differences": listed}),
        )?;
    } else {
        let zone = ops.zone();
        writeln!(
            out,
            "{} meetings of {} agents over the next {} days, in force {} → proposed {}: {} decided differently",
            replay.meetings,
            replay.agents,
            replay.days,
            replay.policies.0.version,
            replay.policies.1.version,
            found.len()
        )?;
        if !replay.subjects_replayed {
            writeln!(
                out,
                "note: subjects are not stored, so rules on subjects match no known meeting here"
            )?;
        }
        if !found.is_empty() {
            let rows = found.iter().map(|d| {
                vec![
                    d.email.clone().unwrap_or_else(|| d.user.to_string()),
                    d.start
                        .with_timezone(&zone)
                        .format("%a %Y-%m-%d %H:%M %Z")
                        .to_string(),
                    d.now.to_string(),
                    d.proposed.to_string(),
                ]
            });
            writeln!(
                out,
                "{}",
                table(&["agent", "starts", "in force", "proposed"], rows)
            )?;
        }
    }
    Ok(())
}
