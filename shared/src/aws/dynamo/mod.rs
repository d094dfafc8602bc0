//! One DynamoDB table for user state, the audit chain, idempotency records and the shift cache.
//! The key design and every access pattern are documented in `docs/data-model.md`; keep the two
//! in step.
//!
//! This module holds the table handle, the key layout and the attribute helpers; each port's
//! implementation lives in its own submodule.

mod audit;
mod due;
mod idempotency;
mod read_ahead;
mod schema;
mod shifts;
mod state;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::sdk_error;
use crate::clock::Clock;
use crate::model::UserId;
use crate::ports::StoreError;
use crate::state::TriggerId;

type Item = HashMap<String, AttributeValue>;

/// Index names, also used by `infra/` and `docs/data-model.md`.
pub const INDEX_BY_TRIGGER: &str = "gsi1-by-trigger";
pub const INDEX_DUE: &str = "gsi2-due";
pub const INDEX_AUDIT_BY_TIME: &str = "lsi1-audit-by-time";
/// The TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expiresAt";

// Sort keys under `USER#<id>`, and the one under `IDEMP#<key>`.
const STATE_SK: &str = "STATE";
const HEAD_SK: &str = "AUDITHEAD";
const AUDIT_SK_PREFIX: &str = "AUDIT#";
const SHIFTS_SK: &str = "SHIFTS";
const IDEMPOTENCY_SK: &str = "IDEMPOTENCY";

fn user_pk(user: &UserId) -> String {
    format!("USER#{user}")
}

fn audit_sk(seq: u64) -> String {
    // Zero-padded so the sort key orders like the number.
    format!("{AUDIT_SK_PREFIX}{seq:012}")
}

/// Partition key of the by-trigger index.
fn trigger_pk(trigger: &TriggerId) -> String {
    format!("TRIGGER#{trigger}")
}

fn idempotency_pk(key: &str) -> String {
    format!("IDEMP#{key}")
}

/// Fixed-width UTC with milliseconds: sorts lexicographically like time.
fn time_key(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn json_attr<T: Serialize>(value: &T) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(value)
        .map(AttributeValue::S)
        .map_err(|err| StoreError::Invalid(format!("cannot serialize: {err}")))
}

/// A value stored as its bare serde string (enums, newtypes), not as JSON.
fn serde_plain<T: Serialize>(value: &T) -> Result<String, StoreError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => Ok(text),
        _ => Err(StoreError::Invalid(
            "expected a value that serializes to a string".to_owned(),
        )),
    }
}

fn build_error(err: BuildError) -> StoreError {
    StoreError::Invalid(format!("request could not be built: {err}"))
}

/// Single-item write errors that can report a failed condition expression.
trait ConditionCheck {
    fn condition_failed(&self) -> bool;
}

impl ConditionCheck for PutItemError {
    fn condition_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionCheck for UpdateItemError {
    fn condition_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionCheck for DeleteItemError {
    fn condition_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

/// A failed condition is the caller's typed loss (`lost`: a version conflict or a lost lease),
/// not an SDK fault; every other failure goes through `sdk_error`.
fn condition_failure<E, R>(
    operation: &'static str,
    err: SdkError<E, R>,
    lost: impl FnOnce() -> StoreError,
) -> StoreError
where
    E: ConditionCheck + ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if err.as_service_error().is_some_and(E::condition_failed) {
        lost()
    } else {
        sdk_error(operation, err)
    }
}

/// Reads typed attributes of one stored item; every failure names the item and the field.
struct Reader<'a> {
    item: &'a Item,
    what: String,
}

impl<'a> Reader<'a> {
    fn new(item: &'a Item, what: impl Into<String>) -> Self {
        Self {
            item,
            what: what.into(),
        }
    }

    fn corrupt(&self, field: &str, reason: &str) -> StoreError {
        StoreError::Corrupt {
            item: self.what.clone(),
            field: field.to_owned(),
            reason: reason.to_owned(),
        }
    }

    fn opt_s(&self, field: &str) -> Result<Option<&'a str>, StoreError> {
        match self.item.get(field) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(value)) => Ok(Some(value)),
            Some(_) => Err(self.corrupt(field, "expected a string")),
        }
    }

    fn s(&self, field: &str) -> Result<&'a str, StoreError> {
        self.opt_s(field)?
            .ok_or_else(|| self.corrupt(field, "missing"))
    }

    fn opt_n(&self, field: &str) -> Result<Option<i64>, StoreError> {
        match self.item.get(field) {
            None => Ok(None),
            Some(AttributeValue::N(value)) => value
                .parse()
                .map(Some)
                .map_err(|_| self.corrupt(field, "not an integer")),
            Some(_) => Err(self.corrupt(field, "expected a number")),
        }
    }

    fn u64(&self, field: &str) -> Result<u64, StoreError> {
        let value = self
            .opt_n(field)?
            .ok_or_else(|| self.corrupt(field, "missing"))?;
        u64::try_from(value).map_err(|_| self.corrupt(field, "negative"))
    }

    fn time(&self, field: &str) -> Result<DateTime<Utc>, StoreError> {
        DateTime::parse_from_rfc3339(self.s(field)?)
            .map(|t| t.to_utc())
            .map_err(|_| self.corrupt(field, "not an RFC 3339 time"))
    }

    fn json<T: DeserializeOwned>(&self, field: &str) -> Result<T, StoreError> {
        serde_json::from_str(self.s(field)?).map_err(|err| self.corrupt(field, &err.to_string()))
    }

    fn opt_json<T: DeserializeOwned>(&self, field: &str) -> Result<Option<T>, StoreError> {
        self.opt_s(field)?
            .map(|raw| {
                serde_json::from_str(raw).map_err(|err| self.corrupt(field, &err.to_string()))
            })
            .transpose()
    }

    /// A plain string attribute read through serde (enums, newtypes).
    fn parsed<T: DeserializeOwned>(&self, field: &str) -> Result<Option<T>, StoreError> {
        self.opt_s(field)?
            .map(|raw| {
                serde_json::from_value(serde_json::Value::String(raw.to_owned()))
                    .map_err(|err| self.corrupt(field, &err.to_string()))
            })
            .transpose()
    }
}

/// The table handle: the DynamoDB adapter of `StateStore`, `AuditLog`, `IdempotencyStore` and
/// `ShiftCache`.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    clock: Arc<dyn Clock>,
    audit_retention: Duration,
    max_chain_attempts: u32,
    /// Shared by clones: a clone serves the same transitions.
    read_ahead: Arc<read_ahead::ReadAhead>,
}

impl DynamoStore {
    pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(400 * 24 * 3600);
    /// Enough for 50 writers racing on one user's head (each round one of them wins).
    pub const DEFAULT_MAX_CHAIN_ATTEMPTS: u32 = 100;

    pub fn new(client: Client, table: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            table: table.into(),
            clock,
            audit_retention: Self::DEFAULT_AUDIT_RETENTION,
            max_chain_attempts: Self::DEFAULT_MAX_CHAIN_ATTEMPTS,
            read_ahead: Arc::default(),
        }
    }

    pub fn with_audit_retention(mut self, retention: Duration) -> Self {
        self.audit_retention = retention;
        self
    }

    pub fn with_max_chain_attempts(mut self, attempts: u32) -> Self {
        self.max_chain_attempts = attempts.max(1);
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn epoch_after(&self, duration: Duration) -> i64 {
        let ttl = chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
        (self.now() + ttl).timestamp()
    }

    fn key(pk: String, sk: &str) -> Item {
        HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
    }

    /// A consistent GetItem of one key.
    async fn get_item(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| sdk_error("GetItem", err))?;
        Ok(out.item)
    }

    /// Runs a Query to the end (following LastEvaluatedKey) and maps each item.
    async fn query_all<T>(
        &self,
        request: QueryFluentBuilder,
        map: impl Fn(&Item) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = request
                .clone()
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|err| sdk_error("Query", err))?;
            for item in page.items() {
                out.push(map(item)?);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(out),
            }
        }
    }
}
