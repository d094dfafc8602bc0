//! What the policy commands read: the policy in force, and the floor (operator::floor) with a
//! progress bar on stderr while it is read.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{CliError, Operations};
use crate::clock::Deadline;
use crate::genesys::GenesysTeams;
use crate::model::UserId;
use crate::operator::floor::{FloorMember, StoredFloor};
use crate::policy::Policy;
use crate::wfm::WfmShifts;

/// How long reading a whole floor may take (each Genesys call has its own, shorter timeout).
const FLOOR_BUDGET: Duration = Duration::from_secs(600);

/// The policy in force: the stack's parameter, as the functions load it.
pub async fn policy_in_force(ops: &Operations, parameter: &str) -> Result<Policy, CliError> {
    use crate::ports::PolicySource as _;
    let stored = crate::aws::ssm::SsmPolicy::new(aws_sdk_ssm::Client::new(&ops.aws), parameter)
        .fetch()
        .await
        .map_err(|e| CliError::Service(format!("policy parameter {parameter}: {e}")))?;
    Policy::from_toml(&stored.text).map_err(|e| {
        CliError::Service(format!(
            "the policy in force ({parameter}) does not load: {e}"
        ))
    })
}

fn stored_floor(ops: &Operations) -> Result<StoredFloor, CliError> {
    let genesys = ops.genesys()?;
    Ok(StoredFloor {
        connections: Arc::new(ops.connections()?),
        teams: Arc::new(GenesysTeams::new(genesys.clone(), ops.clock.clone())),
        schedules: WfmShifts::new(genesys.clone(), ops.clock.clone(), Vec::new()),
    })
}

/// A bar on stderr when it is a terminal (indicatif hides it otherwise), none in the answer.
fn progress_bar() -> indicatif::ProgressBar {
    let progress = indicatif::ProgressBar::no_length();
    progress.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} agents' meetings read")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    progress
}

/// The agents of `team` (a profile of `policy`) over the range.
pub async fn team(
    ops: &Operations,
    policy: &Policy,
    team: &str,
    range: (DateTime<Utc>, DateTime<Utc>),
) -> Result<Vec<FloorMember>, CliError> {
    let progress = progress_bar();
    let deadline = Deadline::after(ops.clock.as_ref(), FLOOR_BUDGET);
    let read = stored_floor(ops)?
        .team_members(policy, team, range, deadline, &|| progress.inc(1))
        .await;
    progress.finish_and_clear();
    Ok(read?)
}

/// The connected agents and `extra`, over the range, as the policies' selectors see them.
pub async fn floor(
    ops: &Operations,
    policies: &[&Policy],
    extra: &[UserId],
    range: (DateTime<Utc>, DateTime<Utc>),
) -> Result<Vec<FloorMember>, CliError> {
    let progress = progress_bar();
    let deadline = Deadline::after(ops.clock.as_ref(), FLOOR_BUDGET);
    let read = stored_floor(ops)?
        .floor(policies, extra, range, deadline, &|| progress.inc(1))
        .await;
    progress.finish_and_clear();
    Ok(read?)
}
