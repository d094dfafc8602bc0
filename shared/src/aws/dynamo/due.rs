//! The due index (`gsi2-due`): a sparse GSI over state items, read by the sweep.

use chrono::{DateTime, Utc};

use super::{DynamoStore, INDEX_DUE, Item, s, time_key};
use crate::aws::sdk_error;
use crate::model::UserId;
use crate::ports::StoreError;
use crate::state::UserState;

/// The one partition of the due index.
const DUE_PARTITION: &str = "DUE";

/// Adds the index keys to a state item. Sparse: only users with something due appear in the
/// sweep's query.
pub(super) fn index_keys(item: &mut Item, state: &UserState) {
    if let Some(due) = state.due_at {
        item.insert("gsi2pk".to_owned(), s(DUE_PARTITION));
        item.insert(
            "gsi2sk".to_owned(),
            s(format!("{}#{}", time_key(due), state.user_id)),
        );
    }
}

impl DynamoStore {
    /// Up to `limit` users due at or before `before`, earliest first (one page).
    pub(super) async fn due_before(
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
