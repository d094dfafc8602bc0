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
use crate::aws::ssm::SsmPolicy;
use crate::operator::policy_diff::{Agent, Meeting, differences};
use crate::policy::Policy;
use crate::ports::PolicySource;

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
    let stored = SsmPolicy::new(aws_sdk_ssm::Client::new(&ops.aws), parameter)
        .fetch()
        .await
        .map_err(|e| CliError::Service(format!("policy parameter {parameter}: {e}")))?;
    let current = Policy::from_toml(&stored.text).map_err(|e| {
        CliError::Service(format!(
            "the policy in force ({parameter}) does not load: {e}"
        ))
    })?;
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
            &json!({"inForce": current.version, "proposed": proposed.version, "days": days,
                    "agents": week.len(), "meetings": replayed,
                    "subjectRulesReplayed": !unreplayable, "differences": listed}),
        )?;
    } else {
        let zone = ops.zone();
        writeln!(
            out,
            "{} meetings of {} agents over the next {days} days, in force {} → proposed {}: {} decided differently",
            replayed,
            week.len(),
            current.version,
            proposed.version,
            found.len()
        )?;
        if unreplayable {
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
    Ok(if found.is_empty() {
        Verdict::Fine
    } else {
        Verdict::Found
    })
}
