//! What every command starts from: the adapters for the stack the settings name, built once,
//! and the readings of what a person typed (a user, a moment).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::{CliError, StackArgs};
use crate::aws::connections::DynamoConnections;
use crate::aws::dynamo::DynamoStore;
use crate::aws::secrets::secrets_manager_source;
use crate::clock::{Clock, Deadline, SystemClock};
use crate::compose::genesys_client;
use crate::genesys::GenesysClient;
use crate::model::UserId;
use crate::operator::explain::PresenceNames;
use crate::ports::{ConnectionStore, SecretSource, UserDirectory};

/// How long one Genesys call may take from the command line.
const CALL_BUDGET: Duration = Duration::from_secs(30);

/// The stack as the commands see it.
#[derive(Debug)]
pub struct Operations {
    pub aws: aws_config::SdkConfig,
    pub stack: StackArgs,
    pub clock: Arc<dyn Clock>,
    genesys: Option<GenesysClient>,
}

impl Operations {
    /// Builds the clients; nothing is read over the network until a command asks.
    pub fn new(aws: aws_config::SdkConfig, stack: StackArgs) -> Result<Self, CliError> {
        Self::with_clock(aws, stack, Arc::new(SystemClock))
    }

    pub fn with_clock(
        aws: aws_config::SdkConfig,
        stack: StackArgs,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, CliError> {
        let genesys = match &stack.genesys_secret_id {
            Some(secret_id) => {
                let secrets: Arc<dyn SecretSource> = Arc::new(secrets_manager_source(
                    aws_sdk_secretsmanager::Client::new(&aws),
                    clock.clone(),
                    Duration::from_secs(300),
                ));
                Some(
                    genesys_client(secrets, secret_id, clock.clone())
                        .map_err(|e| CliError::Usage(e.to_string()))?,
                )
            }
            None => None,
        };
        Ok(Self {
            aws,
            stack,
            clock,
            genesys,
        })
    }

    pub fn zone(&self) -> Tz {
        self.stack.zone
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn deadline(&self) -> Deadline {
        Deadline::after(self.clock.as_ref(), CALL_BUDGET)
    }

    pub fn table(&self) -> Result<&str, CliError> {
        setting(&self.stack.table, "--table / TABLE_NAME")
    }

    pub fn store(&self) -> Result<DynamoStore, CliError> {
        Ok(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&self.aws),
            self.table()?,
            self.clock.clone(),
        ))
    }

    pub fn connections(&self) -> Result<DynamoConnections, CliError> {
        Ok(DynamoConnections::new(
            aws_sdk_dynamodb::Client::new(&self.aws),
            self.table()?,
        ))
    }

    pub fn genesys(&self) -> Result<&GenesysClient, CliError> {
        self.genesys.as_ref().ok_or_else(|| {
            CliError::Usage(
                "this needs Genesys Cloud: set --genesys-secret-id / GENESYS_SECRET_ID".into(),
            )
        })
    }

    /// Presence names from Genesys when it is configured; ids stand for them otherwise.
    pub async fn presence_names(&self) -> PresenceNames {
        let Some(genesys) = &self.genesys else {
            return PresenceNames::new();
        };
        match genesys.presence_definitions(self.deadline()).await {
            Ok(definitions) => definitions
                .into_iter()
                .filter_map(|d| {
                    let label = d.name.or_else(|| d.language_labels.get("en_US").cloned())?;
                    Some((d.id, label))
                })
                .collect(),
            Err(error) => {
                eprintln!("note: presence names unavailable ({error}); showing ids");
                PresenceNames::new()
            }
        }
    }

    /// A Genesys user id as typed, or the agent an e-mail names: the calendar roster first,
    /// then Genesys.
    pub async fn user(&self, typed: &str) -> Result<UserId, CliError> {
        let typed = typed.trim();
        if !typed.contains('@') {
            return UserId::parse(typed).map_err(|e| CliError::Usage(format!("user: {e}")));
        }
        let connected = self.connections()?.list().await?;
        if let Some(found) = connected
            .iter()
            .find(|c| c.email.eq_ignore_ascii_case(typed))
        {
            return Ok(found.user_id.clone());
        }
        match &self.genesys {
            Some(genesys) => genesys
                .user_by_email(typed, self.deadline())
                .await?
                .ok_or_else(|| {
                    CliError::Usage(format!("no Genesys Cloud user has the e-mail {typed}"))
                }),
            None => Err(CliError::Usage(format!(
                "no connected agent has the e-mail {typed}; give the Genesys user id, or set GENESYS_SECRET_ID to look it up"
            ))),
        }
    }

    /// A moment as typed: RFC 3339, or a local `YYYY-MM-DD HH:MM[:SS]`, or `HH:MM` today.
    pub fn moment(&self, typed: &str) -> Result<DateTime<Utc>, CliError> {
        parse_moment(typed, self.zone(), self.now())
    }
}

/// The outputs `--stack NAME` reads.
const FROM_OUTPUTS: [&str; 6] = [
    "TableName",
    "GenesysOAuthSecretArn",
    "SyncQueueUrl",
    "EventBusName",
    "SubscribersSecretArn",
    "PolicyParameterName",
];

impl StackArgs {
    /// With `--stack NAME`, every setting not given (`--table`, `--genesys-secret-id`,
    /// `--sync-queue-url`, `--event-bus-name`, the subscribers secret) is read from the stack's
    /// outputs, with one `DescribeStacks`. A stack that cannot be read is said on stderr and the
    /// settings stay unset: a command that needs one then names it.
    pub async fn with_outputs(mut self, aws: &aws_config::SdkConfig) -> Self {
        let Some(stack) = self.stack.clone() else {
            return self;
        };
        let given = [
            &self.table,
            &self.genesys_secret_id,
            &self.sync_queue_url,
            &self.event_bus_name,
        ];
        if given.iter().all(|s| s.is_some()) {
            return self;
        }
        let client = aws_sdk_cloudformation::Client::new(aws);
        match crate::aws::stack_outputs::stack_outputs(&client, &stack).await {
            Ok(outputs) => self.apply_outputs(outputs),
            Err(error) => {
                eprintln!("autopilot: --stack {stack}: its outputs were not read ({error})")
            }
        }
        self
    }

    /// Fills each setting not given from the stack's output of it.
    fn apply_outputs(&mut self, outputs: std::collections::BTreeMap<String, String>) {
        self.outputs = outputs
            .into_iter()
            .filter(|(key, _)| FROM_OUTPUTS.contains(&key.as_str()))
            .collect();
        let output = |key: &str| self.outputs.get(key).cloned();
        self.table = self.table.clone().or_else(|| output("TableName"));
        self.genesys_secret_id = self
            .genesys_secret_id
            .clone()
            .or_else(|| output("GenesysOAuthSecretArn"));
        self.sync_queue_url = self
            .sync_queue_url
            .clone()
            .or_else(|| output("SyncQueueUrl"));
        self.event_bus_name = self
            .event_bus_name
            .clone()
            .or_else(|| output("EventBusName"));
    }

    /// The subscribers secret: as given, else the stack's output.
    pub fn subscribers_secret(&self, given: Option<String>) -> Option<String> {
        given.or_else(|| self.outputs.get("SubscribersSecretArn").cloned())
    }
}

pub fn setting<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, CliError> {
    value
        .as_deref()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| CliError::Usage(format!("this needs {name} (or --stack NAME)")))
}

pub fn parse_moment(typed: &str, zone: Tz, now: DateTime<Utc>) -> Result<DateTime<Utc>, CliError> {
    let typed = typed.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(typed) {
        return Ok(at.to_utc());
    }
    let local = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(typed, format).ok())
    .or_else(|| {
        ["%H:%M:%S", "%H:%M"].iter().find_map(|format| {
            let time = NaiveTime::parse_from_str(typed, format).ok()?;
            Some(now.with_timezone(&zone).date_naive().and_time(time))
        })
    })
    .ok_or_else(|| {
        CliError::Usage(format!(
            "time {typed:?}: expected RFC 3339, `YYYY-MM-DD HH:MM` or `HH:MM`"
        ))
    })?;
    zone.from_local_datetime(&local)
        .earliest()
        .map(|at| at.to_utc())
        .ok_or_else(|| CliError::Usage(format!("time {typed:?} does not exist in {zone}")))
}

/// The UTC bounds of one local day (23 or 25 hours on a DST change).
pub fn day_bounds(date: NaiveDate, zone: Tz) -> Result<(DateTime<Utc>, DateTime<Utc>), CliError> {
    let start_of = |day: NaiveDate| {
        zone.from_local_datetime(&day.and_time(NaiveTime::MIN))
            .earliest()
            .map(|at| at.to_utc())
            .ok_or_else(|| CliError::Usage(format!("{day} has no midnight in {zone}")))
    };
    let next = date
        .succ_opt()
        .ok_or_else(|| CliError::Usage(format!("date {date}: out of range")))?;
    Ok((start_of(date)?, start_of(next)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 15, 0, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn the_stacks_outputs_fill_only_the_settings_not_given() {
        use clap::Parser as _;
        let cli = super::super::Cli::try_parse_from([
            "autopilot",
            "--stack",
            "prod",
            "--table",
            "given-table",
            "state",
            "ada@example.com",
        ])
        .expect("parses");
        let mut stack = cli.stack;
        let outputs = [
            ("TableName", "prod-table"),
            ("GenesysOAuthSecretArn", "arn:genesys"),
            ("EventBusName", "prod-bus"),
            ("SubscribersSecretArn", "arn:subscribers"),
            ("DataKeyArn", "arn:key"),
        ];
        stack.apply_outputs(
            outputs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        assert_eq!(stack.table.as_deref(), Some("given-table"), "given wins");
        assert_eq!(stack.genesys_secret_id.as_deref(), Some("arn:genesys"));
        assert_eq!(stack.event_bus_name.as_deref(), Some("prod-bus"));
        assert_eq!(stack.sync_queue_url, None, "no such output: stays unset");
        assert_eq!(
            stack.subscribers_secret(None).as_deref(),
            Some("arn:subscribers")
        );
        assert_eq!(
            stack.subscribers_secret(Some("mine".to_owned())).as_deref(),
            Some("mine")
        );
        assert!(
            !stack.outputs.contains_key("DataKeyArn"),
            "only what it reads"
        );
    }

    #[test]
    fn moments_are_read_in_the_zone() {
        let paris: Tz = "Europe/Paris".parse().expect("zone");
        let at = |typed| parse_moment(typed, paris, now()).expect("moment");
        assert_eq!(
            at("10:02"),
            Utc.with_ymd_and_hms(2026, 12, 1, 9, 2, 0).unwrap()
        );
        assert_eq!(
            at("2026-07-01 10:02"),
            Utc.with_ymd_and_hms(2026, 7, 1, 8, 2, 0).unwrap()
        );
        assert_eq!(
            at("2026-12-01T10:02:00Z"),
            Utc.with_ymd_and_hms(2026, 12, 1, 10, 2, 0).unwrap()
        );
        let error = parse_moment("ten past", paris, now()).expect_err("refused");
        assert!(error.to_string().contains("\"ten past\""), "{error}");
    }

    #[test]
    fn a_day_in_autumn_has_25_hours() {
        let london: Tz = "Europe/London".parse().expect("zone");
        let date = NaiveDate::from_ymd_opt(2026, 10, 25).expect("date");
        let (from, to) = day_bounds(date, london).expect("bounds");
        assert_eq!((to - from).num_hours(), 25);
    }
}
