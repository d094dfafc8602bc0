//! `StateStore`: one item per user (`USER#<id>` / `STATE`), written under optimistic versioning.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::Put;
use chrono::{DateTime, Utc};

use super::{
    DynamoStore, Item, Reader, STATE_SK, build_error, condition_failure, due, json_attr, n, s,
    time_key, user_pk,
};
use crate::model::UserId;
use crate::ports::{Committed, Conflict, StateStore, StoreError};
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
    async fn get(&self, user: &UserId) -> Result<Option<UserState>, StoreError> {
        self.read_state_ahead(user).await
    }

    async fn put(&self, state: &UserState) -> Result<UserState, StoreError> {
        // The same put that `commit` sends inside its transaction, sent alone.
        let (next, put) = self.state_put(state)?;
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
        Ok(next)
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
        self.due_before(before, limit).await
    }
}
