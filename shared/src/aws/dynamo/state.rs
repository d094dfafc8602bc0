//! `StateStore`: one item per user (`USER#<id>` / `STATE`), written under optimistic versioning.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::{
    DynamoStore, Item, Reader, STATE_SK, build_error, condition_failure, due, json_attr, n, s,
    time_key, user_pk,
};
use crate::aws::sdk_error;
use crate::model::UserId;
use crate::ports::{Committed, Conflict, EventMark, EventRecord, StateStore, StoreError};
use crate::state::{AuditEntry, UserState};

impl DynamoStore {
    fn state_item(state: &UserState) -> Result<Item, StoreError> {
        let mut item = Self::key(user_pk(&state.user_id), STATE_SK);
        item.insert("userId".to_owned(), s(state.user_id.as_str()));
        item.insert("version".to_owned(), n(state.version));
        item.insert("updatedAt".to_owned(), s(time_key(state.updated_at)));
        item.insert("state".to_owned(), json_attr(state)?);
        due::index_keys(&mut item, state);
        Ok(item)
    }

    /// The put of `state` as its next version, conditional on the version it was read at.
    pub(super) fn state_put(&self, state: &UserState) -> Result<(UserState, Put), StoreError> {
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

    pub(super) fn conflict(state: &UserState) -> StoreError {
        Conflict {
            user_id: state.user_id.clone(),
            expected_version: state.version,
        }
        .into()
    }

    /// The error of a write whose event record was held or completed by someone else.
    pub(super) fn mark_lost(mark: &EventMark) -> StoreError {
        StoreError::LeaseLost {
            key: mark.lease.key.clone(),
        }
    }

    pub(super) fn read_state(item: &Item) -> Result<UserState, StoreError> {
        let reader = Reader::new(item, "user state");
        let mut state: UserState = reader.json("state")?;
        // The top-level attribute is the one conditions check, so it is the truth.
        state.version = reader.u64("version")?;
        Ok(state)
    }
}

#[async_trait]
impl StateStore for DynamoStore {
    async fn get_for_event(
        &self,
        user: &UserId,
        event_key: Option<&str>,
    ) -> Result<(Option<UserState>, Option<EventRecord>), StoreError> {
        self.read_state_ahead(user, event_key).await
    }

    async fn put_marked(
        &self,
        state: &UserState,
        mark: Option<&EventMark>,
    ) -> Result<UserState, StoreError> {
        let (next, put) = self.state_put(state)?;
        let Some(mark) = mark else {
            // The same put that `commit` sends inside its transaction, sent alone.
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(put.item))
                .set_condition_expression(put.condition_expression)
                .set_expression_attribute_names(put.expression_attribute_names)
                .set_expression_attribute_values(put.expression_attribute_values)
                .send()
                .await
                .map_err(|err| condition_failure("PutItem", err, || Self::conflict(state)))?;
            return Ok(next);
        };
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(
                TransactWriteItem::builder()
                    .put(self.mark_put(mark)?)
                    .build(),
            )
            .send()
            .await;
        let Err(err) = result else {
            return Ok(next);
        };
        match crate::aws::failed_conditions(&err).as_deref() {
            Some([true, _]) => Err(Self::conflict(state)),
            Some([_, true]) => Err(Self::mark_lost(mark)),
            // Cancelled by a concurrent transaction on either item: a lost race, read again.
            Some(_) => Err(Self::conflict(state)),
            None => Err(sdk_error("TransactWriteItems", err)),
        }
    }

    async fn commit_marked(
        &self,
        state: &UserState,
        audit: AuditEntry,
        mark: Option<&EventMark>,
    ) -> Result<Committed, StoreError> {
        if audit.user_id != state.user_id {
            return Err(StoreError::Invalid(
                "audit entry is for another user".to_owned(),
            ));
        }
        let (next, record) = self.append_chained(audit, Some(state), mark).await?;
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
        self.due_before(before, limit).await
    }
}
