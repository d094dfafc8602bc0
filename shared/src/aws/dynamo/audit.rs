//! `AuditLog`: a hash chain per user. Records are `USER#<id>` / `AUDIT#<seq>`; the head
//! (`AUDITHEAD`) is the last record's seq and hash, moved in the same transaction as each append.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::{
    AUDIT_SK_PREFIX, DynamoStore, HEAD_SK, INDEX_AUDIT_BY_TIME, INDEX_BY_TRIGGER, Item, Reader,
    TTL_ATTRIBUTE, audit_sk, build_error, json_attr, n, s, serde_plain, time_key, trigger_pk,
    user_pk,
};
use crate::aws::sdk_error;
use crate::model::UserId;
use crate::ports::{AuditLog, AuditQueries, EventMark, StoreError};
use crate::state::{
    AuditEntry, AuditRecord, ChainBreak, ChainHead, ChainReport, TriggerId, UserState,
    verify_records,
};

impl DynamoStore {
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
            item.insert("gsi1pk".to_owned(), s(trigger_pk(trigger)));
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
        let item = self.get_item(Self::key(user_pk(user), HEAD_SK)).await?;
        item.as_ref().map(Self::read_head_item).transpose()
    }

    pub(super) fn read_head_item(item: &Item) -> Result<ChainHead, StoreError> {
        let r = Reader::new(item, "audit chain head");
        Ok(ChainHead {
            seq: r.u64("seq")?,
            hash: r.s("hash")?.to_owned(),
        })
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
    pub(super) async fn append_chained(
        &self,
        entry: AuditEntry,
        state: Option<&UserState>,
        mark: Option<&EventMark>,
    ) -> Result<(Option<UserState>, AuditRecord), StoreError> {
        let user = entry.user_id.clone();
        for attempt in 1..=self.max_chain_attempts {
            // The first round may link to the head read with the state (the transaction's
            // condition on the head makes a stale one cost a round, never a fork).
            let ahead = if attempt == 1 {
                self.read_ahead.take_head(&user)
            } else {
                None
            };
            let head = match ahead {
                Some(head) => head,
                None => self.read_head(&user).await?,
            };
            let record = AuditRecord::link(entry.clone(), head.as_ref(), self.now());
            let (next_state, items, slot_at) =
                self.chain_items(state, head.as_ref(), &record, mark)?;
            let result = self
                .client
                .transact_write_items()
                .client_request_token(transaction_token(&record, next_state.as_ref()))
                .set_transact_items(Some(items))
                .send()
                .await;
            match result {
                Ok(_) => return Ok((next_state, record)),
                Err(err) => retryable(err, state, mark, slot_at)?,
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

    /// The items of one append transaction, in the order `retryable` relies on, the state
    /// they write and where the guard's update is: [state?, record, head, guard?, event record?].
    fn chain_items(
        &self,
        state: Option<&UserState>,
        head: Option<&ChainHead>,
        record: &AuditRecord,
        mark: Option<&EventMark>,
    ) -> Result<ChainItems, StoreError> {
        let mut items = Vec::with_capacity(5);
        let mut next_state = None;
        if let Some(state) = state {
            let (next, put) = self.state_put(state)?;
            next_state = Some(next);
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let record_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.audit_item(record)?))
            // Second guard: even if a head were lost, a seq is never written twice.
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_error)?;
        items.push(TransactWriteItem::builder().put(record_put).build());
        items.push(
            TransactWriteItem::builder()
                .put(self.head_put(head, record)?)
                .build(),
        );
        let mut slot_at = None;
        if let Some(update) = state.map(|s| self.slot_update(s)).transpose()?.flatten() {
            items.push(TransactWriteItem::builder().update(update).build());
            slot_at = Some(items.len() - 1);
        }
        if let Some(mark) = mark {
            items.push(
                TransactWriteItem::builder()
                    .put(self.mark_put(mark)?)
                    .build(),
            );
        }
        Ok((next_state, items, slot_at))
    }
}

/// An append transaction's items, the state they write and the guard update's index.
type ChainItems = (Option<UserState>, Vec<TransactWriteItem>, Option<usize>);

/// `Ok` when another round may succeed; otherwise the error the append ends with.
fn retryable<R>(
    err: SdkError<TransactWriteItemsError, R>,
    state: Option<&UserState>,
    mark: Option<&EventMark>,
    slot_at: Option<usize>,
) -> Result<(), StoreError>
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let Some(failed) = crate::aws::failed_conditions(&err) else {
        return Err(sdk_error("TransactWriteItems", err));
    };
    // The state put is item 0 when present: its condition failing is a version conflict.
    if let Some(state) = state
        && failed.first() == Some(&true)
    {
        return Err(DynamoStore::conflict(state));
    }
    if let (Some(state), Some(at)) = (state, slot_at)
        && failed.get(at) == Some(&true)
    {
        return Err(DynamoStore::over_cap(state));
    }
    // The event record is the last item when present: someone else holds or completed it.
    if let Some(mark) = mark
        && failed.last() == Some(&true)
    {
        return Err(DynamoStore::mark_lost(mark));
    }
    // Anything else cancelled (head moved, record key taken, a concurrent transaction on the
    // same items) is cured by re-reading the head.
    Ok(())
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

#[async_trait]
impl AuditLog for DynamoStore {
    async fn append_marked(
        &self,
        entry: AuditEntry,
        mark: Option<&EventMark>,
    ) -> Result<AuditRecord, StoreError> {
        Ok(self.append_chained(entry, None, mark).await?.1)
    }
}

#[async_trait]
impl AuditQueries for DynamoStore {
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
            .expression_attribute_values(":trigger", s(trigger_pk(trigger)));
        self.query_all(request, Self::read_audit).await
    }

    async fn users(&self) -> Result<Vec<UserId>, StoreError> {
        let mut users = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :head")
                .expression_attribute_values(":head", s(HEAD_SK))
                .projection_expression("pk")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|err| sdk_error("Scan", err))?;
            for item in page.items() {
                let reader = Reader::new(item, "audit head");
                let pk = reader.s("pk")?;
                let id = pk.strip_prefix("USER#").unwrap_or(pk);
                users.push(UserId::parse(id).map_err(|e| reader.corrupt("pk", &e.to_string()))?);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        users.sort();
        Ok(users)
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
