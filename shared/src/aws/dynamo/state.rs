//! `StateStore`: one item per user (`USER#<id>` / `STATE`), written under optimistic versioning.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use super::{
    DynamoStore, Item, Reader, STATE_SK, build_error, condition_failure, due, json_attr, n, s,
    time_key, user_pk,
};
use crate::aws::sdk_error;
use crate::model::UserId;
use crate::ports::{Committed, Conflict, EventMark, EventRecord, StateStore, StoreError};
use crate::state::{AuditEntry, SlotChange, UserState};

/// The sort key of a team's staffing guard item (`GUARD#<team>`): who holds its slots.
const GUARD_SK: &str = "GUARD";

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

    /// The update of a team's guard that `state` carries, to go in the same transaction: a
    /// take is conditional on a free slot (or holding one already), a release and a retake are
    /// not. `OverCap` for a take with a cap of 0: it could never succeed.
    pub(super) fn slot_update(&self, state: &UserState) -> Result<Option<Update>, StoreError> {
        let Some(change) = &state.slot_change else {
            return Ok(None);
        };
        let me = AttributeValue::Ss(vec![state.user_id.to_string()]);
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(
                format!("GUARD#{}", change.team()),
                GUARD_SK,
            )))
            .expression_attribute_names("#holders", "holders")
            .expression_attribute_values(":me", me);
        let update = match change {
            SlotChange::Take { team, cap: 0 } => {
                return Err(StoreError::OverCap { team: team.clone() });
            }
            SlotChange::Take { cap, .. } => update
                .update_expression("ADD #holders :me")
                .condition_expression(
                    "attribute_not_exists(#holders) OR contains(#holders, :id) OR size(#holders) < :cap",
                )
                .expression_attribute_values(":id", s(state.user_id.as_str()))
                .expression_attribute_values(":cap", n(u64::from(*cap))),
            SlotChange::Retake { .. } => update.update_expression("ADD #holders :me"),
            SlotChange::Release { .. } => update.update_expression("DELETE #holders :me"),
        };
        Ok(Some(update.build().map_err(build_error)?))
    }

    pub(super) fn over_cap(state: &UserState) -> StoreError {
        StoreError::OverCap {
            team: state
                .slot_change
                .as_ref()
                .map(|c| c.team().to_owned())
                .unwrap_or_default(),
        }
    }

    /// The put of `state` as its next version, conditional on the version it was read at.
    pub(super) fn state_put(&self, state: &UserState) -> Result<(UserState, Put), StoreError> {
        let mut next = state.clone();
        next.version = state.version + 1;
        next.updated_at = self.now();
        next.slot_change = None;
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
        let slot = self.slot_update(state)?;
        if mark.is_none() && slot.is_none() {
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
        }
        // [state, guard?, event record?]
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        let slot_at = slot.map(|update| {
            items.push(TransactWriteItem::builder().update(update).build());
            items.len() - 1
        });
        if let Some(mark) = mark {
            items.push(
                TransactWriteItem::builder()
                    .put(self.mark_put(mark)?)
                    .build(),
            );
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let Err(err) = result else {
            return Ok(next);
        };
        let Some(failed) = crate::aws::failed_conditions(&err) else {
            return Err(sdk_error("TransactWriteItems", err));
        };
        if failed.first() == Some(&true) {
            Err(Self::conflict(state))
        } else if slot_at.is_some_and(|at| failed.get(at) == Some(&true)) {
            Err(Self::over_cap(state))
        } else if let Some(mark) = mark.filter(|_| failed.last() == Some(&true)) {
            Err(Self::mark_lost(mark))
        } else {
            // Cancelled by a concurrent transaction on one of the items: a lost race, read again.
            Err(Self::conflict(state))
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
