//! `autopilot`: the command line for the people on call. It reads the stack's table, queues and
//! Genesys through the same adapters as the functions, and acts only through the same write
//! protocol (an operator release is an audited decision like any other).
//!
//! Exit codes: 0 done; 1 done, and what it found is wrong (a broken chain, a message not
//! replayed, a subscriber that refused); 2 the command cannot run as asked (usage, unknown
//! user, missing setting); 3 a service failed (AWS, Genesys).

mod act;
mod context;
mod dlq;
mod forecast;
mod gather;
mod inspect;
mod output;
mod policy;
mod policy_diff;
mod team;

use std::io::Write;

use chrono_tz::Tz;
use clap::{Args, Parser, Subcommand, ValueEnum};

pub use context::Operations;

/// What went wrong, by what the person can do about it.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command cannot run as asked.
    #[error("{0}")]
    Usage(String),
    /// A service answered with a failure or not at all.
    #[error("{0}")]
    Service(String),
    /// The output could not be written (a closed pipe).
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Service(_) | Self::Output(_) => 3,
        }
    }
}

impl From<crate::ports::StoreError> for CliError {
    fn from(error: crate::ports::StoreError) -> Self {
        Self::Service(error.to_string())
    }
}

impl From<crate::ports::MessagingError> for CliError {
    fn from(error: crate::ports::MessagingError) -> Self {
        Self::Service(error.to_string())
    }
}

impl From<crate::ports::SecretError> for CliError {
    fn from(error: crate::ports::SecretError) -> Self {
        Self::Service(error.to_string())
    }
}

impl From<crate::ports::PlatformError> for CliError {
    fn from(error: crate::ports::PlatformError) -> Self {
        Self::Service(format!("Genesys Cloud: {error}"))
    }
}

impl From<crate::ports::FloorError> for CliError {
    fn from(error: crate::ports::FloorError) -> Self {
        match error {
            crate::ports::FloorError::UnknownTeam { team, known } => {
                Self::Usage(format!("--team {team:?}: the policy's teams are {known}"))
            }
            crate::ports::FloorError::Platform(error) => error.into(),
            crate::ports::FloorError::Store(error) => error.into(),
        }
    }
}

/// How a command's answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Tables and sentences for people.
    Table,
    /// One JSON document, for scripts.
    Json,
}

/// Whether the command found everything as it should be (exit 0) or something wrong (exit 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Fine,
    Found,
}

impl Verdict {
    /// `Found` when any of the things looked at is wrong.
    pub fn by_problems(problems: usize) -> Self {
        if problems == 0 {
            Self::Fine
        } else {
            Self::Found
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "autopilot",
    version,
    about = "Look into and operate Presence Autopilot: why an agent's presence changed, the audit trail, dead-letter queues, subscriptions",
    after_help = "Exit codes: 0 done; 1 done, and something is wrong (broken chain, message not replayed, subscriber refused); 2 cannot run as asked; 3 a service failed.\nAWS credentials come from the SDK's usual chain; --endpoint-url (or AWS_ENDPOINT_URL) points it at a local stand-in."
)]
pub struct Cli {
    #[command(flatten)]
    pub stack: StackArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the stack's resources are; the same variables the functions read.
#[derive(Debug, Clone, Args)]
pub struct StackArgs {
    /// The state table (user state, audit chain, connections).
    #[arg(long, env = "TABLE_NAME", global = true)]
    pub table: Option<String>,
    /// The Secrets Manager id of the Genesys OAuth client (names presences; `release` writes).
    #[arg(long, env = "GENESYS_SECRET_ID", global = true)]
    pub genesys_secret_id: Option<String>,
    /// The calendar sync queue (`subscriptions resync`).
    #[arg(long, env = "SYNC_QUEUE_URL", global = true)]
    pub sync_queue_url: Option<String>,
    /// The stack's event bus (replaying bus events).
    #[arg(long, env = "EVENT_BUS_NAME", global = true)]
    pub event_bus_name: Option<String>,
    /// The CloudFormation stack name: the settings above not given are read from its outputs;
    /// its dead-letter queues are named `<stack>-<LogicalId>-…`.
    #[arg(long, env = "AUTOPILOT_STACK", global = true)]
    pub stack: Option<String>,
    /// The time zone times are shown and read in (IANA name).
    #[arg(long, env = "AUTOPILOT_TIMEZONE", default_value = "UTC", global = true)]
    pub zone: Tz,
    /// AWS endpoint override (a local stand-in); read by the AWS SDK's config.
    #[arg(long, env = "AWS_ENDPOINT_URL", global = true)]
    pub endpoint_url: Option<String>,
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub output: Format,
    /// The stack's outputs, when `--stack` was given and a setting was not (`with_outputs`).
    #[arg(skip)]
    pub outputs: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Why an agent's presence changed (or did not) around a moment, in plain words.
    Why {
        /// Genesys user id, or the agent's e-mail.
        user: String,
        /// The moment: RFC 3339, `YYYY-MM-DD HH:MM` or `HH:MM` (today) in --zone; default now.
        #[arg(long)]
        at: Option<String>,
        /// How many hours either side of the moment to tell.
        #[arg(long, default_value_t = 4)]
        hours: u32,
    },
    /// An agent's audit records, or `audit verify` of the hash chains.
    Audit(AuditArgs),
    /// The stored state of an agent: our override, active triggers, deferral, version.
    State { user: String },
    /// End our override now, by the same protocol as a trigger's end, audited with your name.
    Release {
        user: String,
        /// Who is releasing (default: the AWS caller identity).
        #[arg(long, env = "AUTOPILOT_OPERATOR")]
        operator: Option<String>,
        /// The policy file the functions use (its presence names are resolved as they do).
        #[arg(long, env = "POLICY_PATH")]
        policy: Option<std::path::PathBuf>,
    },
    /// An agent's day as a picture: a self-contained HTML page.
    Day {
        user: String,
        /// The day, `YYYY-MM-DD` in --zone; default today.
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
        /// Where to write the page; default `autopilot-day-<user>-<date>.html`.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// The stack's dead-letter queues.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// The notification subscribers (webhooks).
    Subscribers {
        #[command(subcommand)]
        action: SubscribersAction,
    },
    /// The calendar subscriptions (Microsoft Graph subscriptions, Google channels).
    Subscriptions {
        #[command(subcommand)]
        action: SubscriptionsAction,
    },
    /// A team's meeting load per 15-minute interval over the next days, under the policy in
    /// force: on queue (WFM), off queue for meetings, the cap, and the intervals over it with
    /// the meetings that cause them (exit 1 when any).
    Forecast {
        /// The policy profile that is the team (`default`: agents no profile selects).
        #[arg(long)]
        team: String,
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// The SSM parameter (default: `/<--stack>/policy`, as the template names it).
        #[arg(long, env = "POLICY_PARAMETER")]
        parameter: Option<String>,
        /// Also write the forecast as a self-contained page (a heatmap; each day's agents on a
        /// click).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Who in a team is off queue because of us now (since, until, holding a guard slot) and
    /// who is waiting, with what WFM schedules for each now.
    Team {
        /// The policy profile that is the team (`default`: agents no profile selects).
        #[arg(long)]
        team: String,
        /// The SSM parameter (default: `/<--stack>/policy`, as the template names it).
        #[arg(long, env = "POLICY_PARAMETER")]
        parameter: Option<String>,
        /// Also write the team's day as a self-contained page (a lane per agent: WFM, the
        /// known meetings, our override, a waiting start).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// A policy file, before the functions load it.
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyAction {
    /// Validates FILE as the functions load it, then resolves its presence names against the
    /// org (exit 1 when refused, naming the key).
    Check {
        file: std::path::PathBuf,
        /// Only the file: no Genesys Cloud call.
        #[arg(long)]
        offline: bool,
    },
    /// Checks FILE as `check` does (against the org too), then stores it as the next version of
    /// the stack's policy parameter; the functions take it within `PolicyRefreshSeconds`.
    Push {
        file: std::path::PathBuf,
        /// The SSM parameter (default: `/<--stack>/policy`, as the template names it).
        #[arg(long, env = "POLICY_PARAMETER")]
        parameter: Option<String>,
    },
    /// Replays the connected agents' known meetings of the next days under the policy in
    /// force and under FILE; lists the meetings decided differently (exit 1 when any).
    Diff {
        file: std::path::PathBuf,
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// The SSM parameter (default: `/<--stack>/policy`, as the template names it).
        #[arg(long, env = "POLICY_PARAMETER")]
        parameter: Option<String>,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub verify: Option<AuditCommand>,
    /// Genesys user id, or the agent's e-mail.
    pub user: Option<String>,
    /// From (default: 24 hours before --to).
    #[arg(long)]
    pub from: Option<String>,
    /// To (default: now).
    #[arg(long)]
    pub to: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Re-reads the hash chain and names the first broken record.
    Verify {
        #[arg(required_unless_present = "all")]
        user: Option<String>,
        /// Every agent with an audit trail.
        #[arg(long, conflicts_with = "user")]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// Each dead-letter queue of the stack, its depth and where a replay sends to.
    List,
    /// The messages waiting in one queue (they stay there).
    Show {
        /// The queue: its logical id (e.g. BurstDLQ), name or URL.
        queue: String,
        #[arg(long, default_value_t = 10)]
        max: usize,
    },
    /// Sends the messages back where they came from, then deletes them from the DLQ.
    Replay {
        queue: String,
        #[arg(long, default_value_t = 100)]
        max: usize,
        /// At most this many messages a second.
        #[arg(long, default_value_t = 5)]
        per_second: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum SubscribersAction {
    /// Sends one signed test delivery (kind `test`) to a webhook subscriber and shows its answer.
    Test {
        /// The webhook's `id` in the subscribers document.
        name: String,
        /// The Secrets Manager id of the subscribers document.
        #[arg(long, env = "SUBSCRIBERS_SECRET_ID")]
        subscribers_secret_id: Option<String>,
        /// Local development only: allow loopback URLs, as webhook-dispatch's ALLOW_LOOPBACK_HTTP.
        #[arg(long, env = "ALLOW_LOOPBACK_HTTP")]
        allow_loopback_http: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SubscriptionsAction {
    /// Every connected agent: provider, subscription, last sync, last error.
    List,
    /// Asks for a full calendar round for one agent now.
    Resync { user: String },
}

/// Runs one command; the answer goes to `out`, progress to standard error.
pub async fn run(cli: Cli, ops: &Operations, out: &mut dyn Write) -> Result<Verdict, CliError> {
    let format = cli.stack.output;
    match cli.command {
        Command::Why { user, at, hours } => {
            inspect::why(ops, &user, at.as_deref(), hours, format, out).await
        }
        Command::Audit(args) => match args.verify {
            Some(AuditCommand::Verify { user, all }) => {
                inspect::verify(ops, user.as_deref(), all, format, out).await
            }
            None => {
                let user = args.user.ok_or_else(|| {
                    CliError::Usage("audit: name a user, or `audit verify`".into())
                })?;
                inspect::audit(
                    ops,
                    &user,
                    args.from.as_deref(),
                    args.to.as_deref(),
                    format,
                    out,
                )
                .await
            }
        },
        Command::State { user } => inspect::state(ops, &user, format, out).await,
        Command::Day {
            user,
            date,
            out: path,
        } => inspect::day(ops, &user, date, path, format, out).await,
        Command::Release {
            user,
            operator,
            policy,
        } => {
            act::release(
                ops,
                &user,
                operator.as_deref(),
                policy.as_deref(),
                format,
                out,
            )
            .await
        }
        Command::Subscribers {
            action:
                SubscribersAction::Test {
                    name,
                    subscribers_secret_id,
                    allow_loopback_http,
                },
        } => {
            let subscribers_secret_id = ops.stack.subscribers_secret(subscribers_secret_id);
            let secret = context::setting(
                &subscribers_secret_id,
                "--subscribers-secret-id / SUBSCRIBERS_SECRET_ID",
            )?;
            act::test_subscriber(ops, &name, secret, allow_loopback_http, format, out).await
        }
        Command::Subscriptions { action } => match action {
            SubscriptionsAction::List => act::subscriptions(ops, format, out).await,
            SubscriptionsAction::Resync { user } => act::resync(ops, &user, format, out).await,
        },
        Command::Dlq { action } => dlq::run(ops, action, format, out).await,
        Command::Team {
            team,
            parameter,
            out: page,
        } => {
            let parameter = policy_parameter(parameter, ops)?;
            let asked = team::Asked {
                team: &team,
                parameter: &parameter,
                page: page.as_deref(),
            };
            team::team(ops, &asked, format, out).await
        }
        Command::Forecast {
            team,
            days,
            parameter,
            out: page,
        } => {
            let parameter = policy_parameter(parameter, ops)?;
            let asked = forecast::Asked {
                team: &team,
                days,
                parameter: &parameter,
                page: page.as_deref(),
            };
            forecast::forecast(ops, &asked, format, out).await
        }
        Command::Policy { action } => run_policy(action, ops, format, out).await,
    }
}

/// `autopilot policy check|push|diff`.
async fn run_policy(
    action: PolicyAction,
    ops: &Operations,
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, CliError> {
    match action {
        PolicyAction::Check { file, offline } => {
            policy::check(ops, &file, offline, format, out).await
        }
        PolicyAction::Push { file, parameter } => {
            let parameter = policy_parameter(parameter, ops)?;
            policy::push(ops, &file, &parameter, format, out).await
        }
        PolicyAction::Diff {
            file,
            days,
            parameter,
        } => {
            let parameter = policy_parameter(parameter, ops)?;
            policy_diff::diff(ops, &file, days, &parameter, format, out).await
        }
    }
}

/// The policy's SSM parameter: named, or the template's name for the stack.
fn policy_parameter(named: Option<String>, ops: &Operations) -> Result<String, CliError> {
    match (named, &ops.stack.stack) {
        (Some(name), _) => Ok(name),
        (None, Some(stack)) => Ok(ops
            .stack
            .outputs
            .get("PolicyParameterName")
            .cloned()
            .unwrap_or_else(|| format!("/{stack}/policy"))),
        (None, None) => Err(CliError::Usage(
            "the policy parameter: give --parameter / POLICY_PARAMETER or --stack / AUTOPILOT_STACK"
                .to_owned(),
        )),
    }
}
