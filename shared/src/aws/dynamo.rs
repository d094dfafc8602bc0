//! One DynamoDB table for user state, the audit chain and idempotency records.
//! The key design and every access pattern are documented in `docs/data-model.md`; keep the two
//! in step.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::BuildError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, LocalSecondaryIndex, Projection, ProjectionType, Put,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TimeToLiveSpecification,
    TransactWriteItem,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::sdk_error;
use crate::clock::{Clock, Deadline};
use crate::model::UserId;
use crate::ports::{
    AuditLog, Begin, Committed, Conflict, IdempotencyStore, Lease, StateStore, StoreError,
};
use crate::state::{
    AuditEntry, AuditRecord, ChainBreak, ChainHead, ChainReport, TriggerId, UserState,
    verify_records,
};

type Item = HashMap<String, AttributeValue>;

/// Index names, also used by `infra/` and `docs/data-model.md`.
pub const INDEX_BY_TRIGGER: &str = "gsi1-by-trigger";
pub const INDEX_DUE: &str = "gsi2-due";
pub const INDEX_AUDIT_BY_TIME: &str = "lsi1-audit-by-time";
/// The TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expiresAt";

const STATE_SK: &str = "STATE";
const HEAD_SK: &str = "AUDITHEAD";
const AUDIT_SK_PREFIX: &str = "AUDIT#";
const IDEMPOTENCY_SK: &str = "IDEMPOTENCY";
const DUE_PARTITION: &str = "DUE";
const IN_PROGRESS: &str = "INPROGRESS";
const COMPLETED: &str = "COMPLETED";

fn user_pk(user: &UserId) -> String {
    format!("USER#{user}")
}

fn audit_sk(seq: u64) -> String {
    // Zero-padded so the sort key orders like the number.
    format!("{AUDIT_SK_PREFIX}{seq:012}")
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

fn build_error(err: BuildError) -> StoreError {
    StoreError::Invalid(format!("request could not be built: {err}"))
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

/// The DynamoDB adapter of `StateStore`, `AuditLog` and `IdempotencyStore`.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    clock: Arc<dyn Clock>,
    audit_retention: Duration,
    max_chain_attempts: u32,
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

    /// Creates the table with its indexes and TTL, as `infra/` does (used by tests and `make dev`).
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        let string_attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let all = || {
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build()
        };
        let gsi = |name: &str, pk: &str, sk: &str| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(pk, KeyType::Hash)?)
                .key_schema(key(sk, KeyType::Range)?)
                .projection(all())
                .build()
        };
        client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash).map_err(build_error)?)
            .key_schema(key("sk", KeyType::Range).map_err(build_error)?)
            .set_attribute_definitions(Some(
                ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "lsi1sk"]
                    .into_iter()
                    .map(string_attr)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(build_error)?,
            ))
            .global_secondary_indexes(
                gsi(INDEX_BY_TRIGGER, "gsi1pk", "gsi1sk").map_err(build_error)?,
            )
            .global_secondary_indexes(gsi(INDEX_DUE, "gsi2pk", "gsi2sk").map_err(build_error)?)
            .local_secondary_indexes(
                LocalSecondaryIndex::builder()
                    .index_name(INDEX_AUDIT_BY_TIME)
                    .key_schema(key("pk", KeyType::Hash).map_err(build_error)?)
                    .key_schema(key("lsi1sk", KeyType::Range).map_err(build_error)?)
                    .projection(all())
                    .build()
                    .map_err(build_error)?,
            )
            .send()
            .await
            .map_err(|err| sdk_error("CreateTable", err))?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(TTL_ATTRIBUTE)
                    .build()
                    .map_err(build_error)?,
            )
            .send()
            .await
            .map_err(|err| sdk_error("UpdateTimeToLive", err))?;
        Ok(())
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

    // ---- state ----

    fn state_item(state: &UserState) -> Result<Item, StoreError> {
        let mut item = Self::key(user_pk(&state.user_id), STATE_SK);
        item.insert("userId".to_owned(), s(state.user_id.as_str()));
        item.insert("version".to_owned(), n(state.version));
        item.insert("updatedAt".to_owned(), s(time_key(state.updated_at)));
        item.insert("state".to_owned(), json_attr(state)?);
        // Sparse index: only users with something due appear in the sweep's query.
        if let Some(due) = state.due_at {
            item.insert("gsi2pk".to_owned(), s(DUE_PARTITION));
            item.insert(
                "gsi2sk".to_owned(),
                s(format!("{}#{}", time_key(due), state.user_id)),
            );
        }
        Ok(item)
    }

    /// The put of `state` as its next version, conditional on the version it was read at.
    fn state_put(&self, state: &UserState) -> Result<(UserState, Put), StoreError> {
        let mut next = state.clone();
        next.version = state.version + 1;
        next.updated_at = self.now();
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(Self::state_item(&next)?));
        let put = if state.version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("#version = :expected")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":expected", n(state.version))
        };
        Ok((next, put.build().map_err(build_error)?))
    }

    fn conflict(state: &UserState) -> StoreError {
        Conflict {
            user_id: state.user_id.clone(),
            expected_version: state.version,
        }
        .into()
    }

    fn read_state(item: &Item) -> Result<UserState, StoreError> {
        let reader = Reader::new(item, "user state");
        let mut state: UserState = reader.json("state")?;
        // The top-level attribute is the one conditions check, so it is the truth.
        state.version = reader.u64("version")?;
        Ok(state)
    }

    // ---- audit ----

    fn audit_item(&self, record: &AuditRecord) -> Result<Item, StoreError> {
        let at = time_key(record.at);
        let mut item = Self::key(user_pk(&record.user_id), &audit_sk(record.seq));
        item.insert("userId".to_owned(), s(record.user_id.as_str()));
        item.insert("seq".to_owned(), n(record.seq));
        item.insert("at".to_owned(), s(at.clone()));
        item.insert("kind".to_owned(), s(serde_plain(&record.kind)?));
        item.insert("details".to_owned(), json_attr(&record.details)?);
        item.insert("prevHash".to_owned(), s(record.prev_hash.clone()));
        item.insert("hash".to_owned(), s(record.hash.clone()));
        item.insert(
            TTL_ATTRIBUTE.to_owned(),
            n(self.epoch_after(self.audit_retention)),
        );
        item.insert("lsi1sk".to_owned(), s(format!("{at}#{:012}", record.seq)));
        if let Some(reason) = &record.reason {
            item.insert("reason".to_owned(), s(reason.clone()));
        }
        if let Some(event) = &record.event_id {
            item.insert("eventId".to_owned(), s(event.clone()));
        }
        if let Some(before) = &record.before {
            item.insert("before".to_owned(), json_attr(before)?);
        }
        if let Some(after) = &record.after {
            item.insert("after".to_owned(), json_attr(after)?);
        }
        if let Some(trigger) = &record.trigger_id {
            item.insert("triggerId".to_owned(), s(trigger.as_str()));
            item.insert("gsi1pk".to_owned(), s(format!("TRIGGER#{trigger}")));
            item.insert(
                "gsi1sk".to_owned(),
                s(format!("{at}#{}#{:012}", record.user_id, record.seq)),
            );
        }
        Ok(item)
    }

    fn read_audit(item: &Item) -> Result<AuditRecord, StoreError> {
        let what = match item.get("sk") {
            Some(AttributeValue::S(sk)) => format!("audit record {sk}"),
            _ => "audit record".to_owned(),
        };
        let r = Reader::new(item, what);
        Ok(AuditRecord {
            user_id: UserId::parse(r.s("userId")?)
                .map_err(|err| r.corrupt("userId", &err.to_string()))?,
            seq: r.u64("seq")?,
            at: r.time("at")?,
            trigger_id: r.parsed::<TriggerId>("triggerId")?,
            event_id: r.opt_s("eventId")?.map(str::to_owned),
            kind: r
                .parsed("kind")?
                .ok_or_else(|| r.corrupt("kind", "missing"))?,
            reason: r.opt_s("reason")?.map(str::to_owned),
            before: r.opt_json("before")?,
            after: r.opt_json("after")?,
            details: r.json("details")?,
            prev_hash: r.s("prevHash")?.to_owned(),
            hash: r.s("hash")?.to_owned(),
        })
    }

    async fn read_head(&self, user: &UserId) -> Result<Option<ChainHead>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(user_pk(user), HEAD_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| sdk_error("GetItem", err))?;
        out.item
            .map(|item| {
                let r = Reader::new(&item, "audit chain head");
                Ok(ChainHead {
                    seq: r.u64("seq")?,
                    hash: r.s("hash")?.to_owned(),
                })
            })
            .transpose()
    }

    /// The head moves from `previous` to `record`, on condition nobody moved it meanwhile.
    fn head_put(
        &self,
        previous: Option<&ChainHead>,
        record: &AuditRecord,
    ) -> Result<Put, StoreError> {
        let mut item = Self::key(user_pk(&record.user_id), HEAD_SK);
        item.insert("seq".to_owned(), n(record.seq));
        item.insert("hash".to_owned(), s(record.hash.clone()));
        item.insert("at".to_owned(), s(time_key(record.at)));
        let put = Put::builder().table_name(&self.table).set_item(Some(item));
        let put = match previous {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(head) => put
                .condition_expression("#seq = :seq AND #hash = :hash")
                .expression_attribute_names("#seq", "seq")
                .expression_attribute_names("#hash", "hash")
                .expression_attribute_values(":seq", n(head.seq))
                .expression_attribute_values(":hash", s(head.hash.clone())),
        };
        put.build().map_err(build_error)
    }

    /// Appends `entry` to its user's chain, together with an optional state put, in one
    /// transaction: [state?, record, head]. Retries (bounded, jittered) while only the head moved.
    async fn append_chained(
        &self,
        entry: AuditEntry,
        state: Option<&UserState>,
    ) -> Result<(Option<UserState>, AuditRecord), StoreError> {
        let user = entry.user_id.clone();
        for attempt in 1..=self.max_chain_attempts {
            let head = self.read_head(&user).await?;
            let record = AuditRecord::link(entry.clone(), head.as_ref(), self.now());
            let mut items = Vec::with_capacity(3);
            let mut next_state = None;
            if let Some(state) = state {
                let (next, put) = self.state_put(state)?;
                next_state = Some(next);
                items.push(TransactWriteItem::builder().put(put).build());
            }
            let record_put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(self.audit_item(&record)?))
                // Second guard: even if a head were lost, a seq is never written twice.
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(build_error)?;
            items.push(TransactWriteItem::builder().put(record_put).build());
            items.push(
                TransactWriteItem::builder()
                    .put(self.head_put(head.as_ref(), &record)?)
                    .build(),
            );

            let result = self
                .client
                .transact_write_items()
                .client_request_token(transaction_token(&record, next_state.as_ref()))
                .set_transact_items(Some(items))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok((next_state, record)),
                Err(err) => err,
            };
            let retry = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancel)) => {
                    let failed = |index: usize| {
                        cancel
                            .cancellation_reasons()
                            .get(index)
                            .and_then(|reason| reason.code())
                            .is_some_and(|code| code == "ConditionalCheckFailed")
                    };
                    if let Some(state) = state
                        && failed(0)
                    {
                        return Err(Self::conflict(state));
                    }
                    // Anything else cancelled (head moved, record key taken, a concurrent
                    // transaction on the same items) is cured by re-reading the head.
                    true
                }
                _ => false,
            };
            if !retry {
                return Err(sdk_error("TransactWriteItems", err));
            }
            // Jitter spreads the losers so the next round has fewer contenders.
            let cap_ms = 5 * u64::from(attempt.min(10));
            self.clock
                .sleep(Duration::from_millis(fastrand::u64(1..=cap_ms)))
                .await;
        }
        Err(StoreError::ChainContended {
            user_id: user,
            attempts: self.max_chain_attempts,
        })
    }

    /// Runs a Query to the end (following LastEvaluatedKey) and maps each item.
    async fn query_all<T>(
        &self,
        request: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
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

    // ---- idempotency ----

    async fn read_idempotency(&self, key: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(idempotency_pk(key), IDEMPOTENCY_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| sdk_error("GetItem", err))?;
        Ok(out.item)
    }

    fn existing_idempotency(item: &Item) -> Result<Begin, StoreError> {
        let r = Reader::new(item, "idempotency record");
        match r.s("status")? {
            COMPLETED => Ok(Begin::AlreadyCompleted(r.json("outcome")?)),
            IN_PROGRESS => {
                let ms = r.opt_n("inProgressExpiry")?.unwrap_or(0);
                let until = DateTime::from_timestamp_millis(ms)
                    .ok_or_else(|| r.corrupt("inProgressExpiry", "out of range"))?;
                Ok(Begin::InProgress { until })
            }
            _ => Err(r.corrupt("status", "unknown status")),
        }
    }
}

/// The `ClientRequestToken` of one append: the same for every SDK retry of this transaction (so
/// a retry of a transaction that had in fact committed is answered with its success, not
/// cancelled by its own first write), different for any other transaction. The record's chain
/// hash already covers the user, seq, previous hash, time and content.
fn transaction_token(record: &AuditRecord, state: Option<&UserState>) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    digest.update(record.hash.as_bytes());
    if let Some(state) = state {
        digest.update(state.version.to_be_bytes());
    }
    // DynamoDB accepts 1 to 36 characters.
    format!("{:x}", digest.finalize())[..36].to_owned()
}

fn serde_plain<T: Serialize>(value: &T) -> Result<String, StoreError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => Ok(text),
        _ => Err(StoreError::Invalid(
            "expected a value that serializes to a string".to_owned(),
        )),
    }
}

#[async_trait]
impl StateStore for DynamoStore {
    async fn get(&self, user: &UserId) -> Result<Option<UserState>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(user_pk(user), STATE_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| sdk_error("GetItem", err))?;
        out.item.as_ref().map(Self::read_state).transpose()
    }

    async fn put(&self, state: &UserState) -> Result<UserState, StoreError> {
        let (next, put) = self.state_put(state)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(put.item))
            .set_condition_expression(put.condition_expression)
            .set_expression_attribute_names(put.expression_attribute_names)
            .set_expression_attribute_values(put.expression_attribute_values)
            .send()
            .await;
        match result {
            Ok(_) => Ok(next),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Err(Self::conflict(state))
            }
            Err(err) => Err(sdk_error("PutItem", err)),
        }
    }

    async fn commit(&self, state: &UserState, audit: AuditEntry) -> Result<Committed, StoreError> {
        if audit.user_id != state.user_id {
            return Err(StoreError::Invalid(
                "audit entry is for another user".to_owned(),
            ));
        }
        let (next, record) = self.append_chained(audit, Some(state)).await?;
        let next = next.ok_or_else(|| StoreError::Invalid("state was not written".to_owned()))?;
        Ok(Committed {
            state: next,
            audit: record,
        })
    }

    async fn due(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(UserId, DateTime<Utc>)>, StoreError> {
        // DynamoDB rejects Limit = 0.
        if limit == 0 {
            return Ok(Vec::new());
        }
        // gsi2sk is "<due>#<userId>"; '~' sorts after every character of a user id.
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_DUE)
            .key_condition_expression("gsi2pk = :due AND gsi2sk <= :before")
            .expression_attribute_values(":due", s(DUE_PARTITION))
            .expression_attribute_values(":before", s(format!("{}#~", time_key(before))))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|err| sdk_error("Query", err))?;
        out.items()
            .iter()
            .map(|item| {
                let state = Self::read_state(item)?;
                let due = state.due_at.ok_or_else(|| StoreError::Corrupt {
                    item: "user state".to_owned(),
                    field: "dueAt".to_owned(),
                    reason: "indexed as due but has no dueAt".to_owned(),
                })?;
                Ok((state.user_id, due))
            })
            .collect()
    }
}

#[async_trait]
impl AuditLog for DynamoStore {
    async fn append(&self, entry: AuditEntry) -> Result<AuditRecord, StoreError> {
        Ok(self.append_chained(entry, None).await?.1)
    }

    async fn by_user(
        &self,
        user: &UserId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        // lsi1sk is "<at>#<seq>": BETWEEN from AND to keeps from <= at < to, because a record
        // at exactly `to` sorts after the bare `to` string.
        let request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_AUDIT_BY_TIME)
            .key_condition_expression("pk = :pk AND lsi1sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", s(user_pk(user)))
            .expression_attribute_values(":from", s(time_key(from)))
            .expression_attribute_values(":to", s(time_key(to)));
        self.query_all(request, Self::read_audit).await
    }

    async fn by_trigger(&self, trigger: &TriggerId) -> Result<Vec<AuditRecord>, StoreError> {
        let request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_BY_TRIGGER)
            .key_condition_expression("gsi1pk = :trigger")
            .expression_attribute_values(":trigger", s(format!("TRIGGER#{trigger}")));
        self.query_all(request, Self::read_audit).await
    }

    async fn verify_chain(
        &self,
        user: &UserId,
    ) -> Result<Result<ChainReport, ChainBreak>, StoreError> {
        // Head first: records appended after this read are beyond head.seq and ignored below.
        let head = self.read_head(user).await?;
        let request = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(user_pk(user)))
            .expression_attribute_values(":prefix", s(AUDIT_SK_PREFIX))
            .consistent_read(true);
        let items = self.query_all(request, |item| Ok(item.clone())).await?;
        let mut records = Vec::with_capacity(items.len());
        for item in &items {
            match Self::read_audit(item) {
                Ok(record) => records.push(record),
                // A record we cannot even read was tampered with too; but an earlier break
                // (found by verifying the readable prefix) is the first bad record.
                Err(StoreError::Corrupt { field, reason, .. }) => {
                    let seq = match item.get("sk") {
                        Some(AttributeValue::S(sk)) => sk
                            .strip_prefix(AUDIT_SK_PREFIX)
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0),
                        _ => 0,
                    };
                    if let Err(earlier) = verify_records(user, &records, None)
                        && !matches!(earlier, ChainBreak::HeadMismatch { .. })
                    {
                        return Ok(Err(earlier));
                    }
                    return Ok(Err(ChainBreak::Unreadable { seq, field, reason }));
                }
                Err(other) => return Err(other),
            }
        }
        if let Some(head) = &head
            && let Some(end) = records.iter().position(|r| r.seq > head.seq)
            && usize::try_from(head.seq).is_ok_and(|seq| seq == end)
        {
            records.truncate(end);
        }
        Ok(verify_records(user, &records, head.as_ref()))
    }
}

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn begin(
        &self,
        key: &str,
        deadline: Deadline,
        ttl: Duration,
    ) -> Result<Begin, StoreError> {
        // A record released between our failed put and our read is gone: try again (bounded).
        for _ in 0..3 {
            let token = ulid::Ulid::new().to_string();
            let mut item = Self::key(idempotency_pk(key), IDEMPOTENCY_SK);
            item.insert("status".to_owned(), s(IN_PROGRESS));
            item.insert(TTL_ATTRIBUTE.to_owned(), n(self.epoch_after(ttl)));
            item.insert(
                "inProgressExpiry".to_owned(),
                n(deadline.0.timestamp_millis()),
            );
            item.insert("owner".to_owned(), s(token.clone()));
            let now = self.now();
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                // Powertools' condition, verbatim in meaning.
                .condition_expression(
                    "attribute_not_exists(pk) OR #expiry < :now \
                     OR (#status = :inprogress AND #inProgressExpiry < :now_ms)",
                )
                .expression_attribute_names("#expiry", TTL_ATTRIBUTE)
                .expression_attribute_names("#status", "status")
                .expression_attribute_names("#inProgressExpiry", "inProgressExpiry")
                .expression_attribute_values(":now", n(now.timestamp()))
                .expression_attribute_values(":now_ms", n(now.timestamp_millis()))
                .expression_attribute_values(":inprogress", s(IN_PROGRESS))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let err = match result {
                Ok(_) => {
                    return Ok(Begin::Started(Lease {
                        key: key.to_owned(),
                        token,
                    }));
                }
                Err(err) => err,
            };
            let existing = match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    match failed.item() {
                        Some(item) => Some(item.clone()),
                        None => self.read_idempotency(key).await?,
                    }
                }
                _ => return Err(sdk_error("PutItem", err)),
            };
            if let Some(item) = existing {
                return Self::existing_idempotency(&item);
            }
        }
        Err(StoreError::Sdk {
            operation: "PutItem",
            message: format!("idempotency key {key} kept changing under us"),
        })
    }

    async fn complete(
        &self,
        lease: &Lease,
        outcome: &serde_json::Value,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(idempotency_pk(&lease.key), IDEMPOTENCY_SK)))
            .update_expression(
                "SET #status = :completed, #outcome = :outcome, #expiry = :expiry \
                 REMOVE #inProgressExpiry",
            )
            .condition_expression("#owner = :token")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#outcome", "outcome")
            .expression_attribute_names("#expiry", TTL_ATTRIBUTE)
            .expression_attribute_names("#inProgressExpiry", "inProgressExpiry")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":outcome", json_attr(outcome)?)
            .expression_attribute_values(":expiry", n(self.epoch_after(ttl)))
            .expression_attribute_values(":token", s(lease.token.clone()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Err(StoreError::LeaseLost {
                    key: lease.key.clone(),
                })
            }
            Err(err) => Err(sdk_error("UpdateItem", err)),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(idempotency_pk(&lease.key), IDEMPOTENCY_SK)))
            .condition_expression("#owner = :token AND #status = :inprogress")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":token", s(lease.token.clone()))
            .expression_attribute_values(":inprogress", s(IN_PROGRESS))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(DeleteItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Err(StoreError::LeaseLost {
                    key: lease.key.clone(),
                })
            }
            Err(err) => Err(sdk_error("DeleteItem", err)),
        }
    }
}

// ---- shift cache ----

/// Sort key of a user's cached published schedule (`USER#<id>` / `SHIFTS`).
const SHIFTS_SK: &str = "SHIFTS";

#[async_trait]
impl crate::ports::ShiftCache for DynamoStore {
    async fn get(
        &self,
        users: &[UserId],
    ) -> Result<HashMap<UserId, crate::wfm::ShiftWindow>, StoreError> {
        let mut found = HashMap::new();
        // BatchGetItem takes at most 100 keys.
        for chunk in users.chunks(100) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|user| Self::key(user_pk(user), SHIFTS_SK))
                .collect();
            let mut request =
                aws_sdk_dynamodb::types::KeysAndAttributes::builder().consistent_read(false);
            for key in keys {
                request = request.keys(key);
            }
            let mut pending =
                HashMap::from([(self.table.clone(), request.build().map_err(build_error)?)]);
            // Unprocessed keys (throttling) are asked again, a bounded number of times.
            for _ in 0..5 {
                let out = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(pending))
                    .send()
                    .await
                    .map_err(|err| sdk_error("BatchGetItem", err))?;
                for item in out
                    .responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default()
                {
                    let reader = Reader::new(&item, "shift window");
                    let user = UserId::parse(reader.s("userId")?)
                        .map_err(|e| reader.corrupt("userId", &e.reason))?;
                    found.insert(user, reader.json("window")?);
                }
                pending = out.unprocessed_keys.unwrap_or_default();
                if pending.is_empty() {
                    break;
                }
            }
        }
        Ok(found)
    }

    async fn put(
        &self,
        user: &UserId,
        window: &crate::wfm::ShiftWindow,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut item = Self::key(user_pk(user), SHIFTS_SK);
        item.insert("userId".to_owned(), s(user.as_str()));
        item.insert("window".to_owned(), json_attr(window)?);
        item.insert(TTL_ATTRIBUTE.to_owned(), n(self.epoch_after(ttl)));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|err| sdk_error("PutItem", err))?;
        Ok(())
    }
}
