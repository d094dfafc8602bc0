//! `autopilot policy diff FILE --days N`: the connected agents' known meetings of the next days
//! (the calendar connector's mirror), each with its WFM activity at the start (one schedule
//! search per business unit and 100 agents), decided under the policy in force (the stack's
//! parameter) and under FILE; the meetings whose effect differs, per agent. Changes nothing.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::output::{json, table};
use super::policy::{read, refused};
use super::{CliError, Format, Operations, Verdict};
use crate::aws::ssm::SsmPolicy;
use crate::events::{InboundEvent, parse_value};
use crate::genesys::GenesysTeams;
use crate::model::UserId;
use crate::operator::policy_diff::{Agent, Meeting, differences};
use crate::policy::Policy;
use crate::ports::{ConnectionStore, PolicySource, TeamDirectory};
use crate::wfm::WfmShifts;

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
    let week = known_meetings(ops, [&current, &proposed], days).await?;
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

/// Each connected agent with their mirrored meetings starting in the next `days`, their
/// membership of the groups either policy names (and their management unit when one selects
/// by it), and the WFM activity at each start.
async fn known_meetings(
    ops: &Operations,
    policies: [&Policy; 2],
    days: u32,
) -> Result<Vec<(Agent, Vec<Meeting>)>, CliError> {
    let genesys = ops.genesys()?;
    let service = |e: &dyn std::fmt::Display| CliError::Service(e.to_string());
    let (from, to) = (
        ops.now(),
        ops.now() + chrono::Duration::days(i64::from(days)),
    );
    let store = ops.connections()?;
    let connections = store.list().await?;
    let users: Vec<UserId> = connections.iter().map(|c| c.user_id.clone()).collect();
    let teams = GenesysTeams::new(genesys.clone(), ops.clock.clone());
    let groups: BTreeSet<String> = policies.iter().flat_map(|p| p.groups_named()).collect();
    let mut members = HashMap::new();
    for group in &groups {
        let found = teams
            .group_members(group, ops.deadline())
            .await
            .map_err(|e| service(&e))?;
        members.insert(group.clone(), found);
    }
    let by_unit = policies.iter().any(|p| p.selects_by_management_unit());
    let windows = WfmShifts::new(genesys.clone(), ops.clock.clone(), Vec::new())
        .windows(&users, from, to, ops.deadline())
        .await
        .map_err(|e| service(&e))?;
    let mut week = Vec::new();
    for connection in connections {
        let user = connection.user_id;
        let mut meetings = Vec::new();
        for mirrored in store.mirror(&user).await?.into_values() {
            let event = json!({"id": "policy-diff", "detail-type": "Calendar Event Upserted",
                               "source": "autopilot", "detail": mirrored.detail});
            let Ok(parsed) = parse_value(event) else {
                continue; // refused when it arrived; nothing the policy decides
            };
            let InboundEvent::Calendar { entry, .. } = parsed.event else {
                continue;
            };
            if entry.start < from || entry.start >= to {
                continue;
            }
            let shift = windows.get(&user).and_then(|w| w.view_at(entry.start));
            meetings.push(Meeting { entry, shift });
        }
        meetings.sort_by_key(|m| m.entry.start);
        let management_unit = if by_unit {
            teams
                .management_unit(&user, ops.deadline())
                .await
                .map_err(|e| service(&e))?
        } else {
            None
        };
        let in_groups: HashSet<String> = members
            .iter()
            .filter(|(_, found)| found.contains(&user))
            .map(|(group, _)| group.clone())
            .collect();
        week.push((
            Agent {
                user,
                email: Some(connection.email),
                groups: in_groups,
                management_unit,
            },
            meetings,
        ));
    }
    Ok(week)
}
