//! `lookahead`: the daily look-ahead on AWS — the policy parameter, the connector's table, WFM
//! and the team directory through Genesys, and the notification queue webhook-dispatch reads.

use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;

use super::{BootError, genesys_client};
use crate::aws::connections::DynamoConnections;
use crate::aws::secrets::secrets_manager_source;
use crate::aws::sqs::SqsQueue;
use crate::aws::ssm::SsmPolicy;
use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, Env};
use crate::genesys::GenesysTeams;
use crate::operator::floor::StoredFloor;
use crate::ports::SecretSource;
use crate::service::lookahead::Lookahead;
use crate::wfm::WfmShifts;

/// What the look-ahead reads and where it sends (names match infra/template.yaml).
#[derive(Debug, Clone)]
pub struct LookaheadSettings {
    pub table_name: String,
    pub genesys_secret_id: String,
    pub policy_parameter: String,
    pub notifications_queue_url: String,
    pub wfm_business_unit_ids: Vec<String>,
    /// Where "tomorrow" is: the zone the schedule runs in.
    pub time_zone: Tz,
    pub secret_cache: Duration,
}

impl LookaheadSettings {
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let zone = env.required("LOOKAHEAD_TIME_ZONE")?;
        let time_zone = zone.parse::<Tz>().map_err(|_| ConfigError {
            variable: "LOOKAHEAD_TIME_ZONE",
            reason: format!("{zone:?} is not an IANA time zone (e.g. Europe/Paris)"),
        })?;
        Ok(Self {
            table_name: env.required("TABLE_NAME")?,
            genesys_secret_id: env.required("GENESYS_SECRET_ID")?,
            policy_parameter: env.required("POLICY_PARAMETER")?,
            notifications_queue_url: env.required("NOTIFICATIONS_QUEUE_URL")?,
            wfm_business_unit_ids: env.list("WFM_BUSINESS_UNIT_IDS"),
            time_zone,
            secret_cache: env.seconds("SECRET_CACHE_SECONDS", 300)?,
        })
    }
}

/// The look-ahead on `aws` (AWS, or the stand-in through `AWS_ENDPOINT_URL`) and `clock`.
pub fn lookahead_on(
    aws: &aws_config::SdkConfig,
    settings: &LookaheadSettings,
    clock: Arc<dyn Clock>,
) -> Result<Lookahead, BootError> {
    let secrets: Arc<dyn SecretSource> = Arc::new(secrets_manager_source(
        aws_sdk_secretsmanager::Client::new(aws),
        clock.clone(),
        settings.secret_cache,
    ));
    let genesys = genesys_client(secrets, &settings.genesys_secret_id, clock.clone())?;
    let floor = StoredFloor {
        connections: Arc::new(DynamoConnections::new(
            aws_sdk_dynamodb::Client::new(aws),
            &settings.table_name,
        )),
        teams: Arc::new(GenesysTeams::new(genesys.clone(), clock.clone())),
        schedules: WfmShifts::new(
            genesys,
            clock.clone(),
            settings.wfm_business_unit_ids.clone(),
        ),
    };
    Ok(Lookahead {
        policy: Arc::new(SsmPolicy::new(
            aws_sdk_ssm::Client::new(aws),
            &settings.policy_parameter,
        )),
        floor: Arc::new(floor),
        queue: Arc::new(SqsQueue::new(
            aws_sdk_sqs::Client::new(aws),
            &settings.notifications_queue_url,
            clock.clone(),
        )),
        clock,
        zone: settings.time_zone,
    })
}

/// The `lookahead` function's service, composed at cold start (reads nothing yet).
pub async fn lookahead(settings: &LookaheadSettings) -> Result<Lookahead, BootError> {
    lookahead_on(
        &crate::tls::aws_config().await,
        settings,
        Arc::new(SystemClock),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAIRS: [(&str, &str); 5] = [
        ("TABLE_NAME", "t"),
        ("GENESYS_SECRET_ID", "s"),
        ("POLICY_PARAMETER", "/stack/policy"),
        ("NOTIFICATIONS_QUEUE_URL", "http://q"),
        ("LOOKAHEAD_TIME_ZONE", "Europe/Paris"),
    ];

    #[test]
    fn settings_name_what_is_missing_or_wrong() {
        let settings = LookaheadSettings::from_env(&Env::from_pairs(&PAIRS)).expect("valid");
        assert_eq!(settings.time_zone, chrono_tz::Europe::Paris);
        let missing = LookaheadSettings::from_env(&Env::from_pairs(&PAIRS[..4])).expect_err("zone");
        assert_eq!(missing.variable, "LOOKAHEAD_TIME_ZONE");
        let mut wrong = PAIRS;
        wrong[4] = ("LOOKAHEAD_TIME_ZONE", "Paris");
        let error = LookaheadSettings::from_env(&Env::from_pairs(&wrong)).expect_err("zone");
        assert!(error.reason.contains("IANA"), "{}", error.reason);
    }
}
