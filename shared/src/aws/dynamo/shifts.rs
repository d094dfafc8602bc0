//! `ShiftCache`: a user's published schedule (`USER#<id>` / `SHIFTS`), kept until its TTL.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;

use super::{DynamoStore, Item, Reader, SHIFTS_SK, TTL_ATTRIBUTE, json_attr, n, s, user_pk};
use crate::aws::{batch_get, sdk_error};
use crate::model::UserId;
use crate::ports::{ShiftCache, StoreError};
use crate::wfm::ShiftWindow;

#[async_trait]
impl ShiftCache for DynamoStore {
    async fn get(&self, users: &[UserId]) -> Result<HashMap<UserId, ShiftWindow>, StoreError> {
        let mut found = HashMap::new();
        let mut unread = Vec::with_capacity(users.len());
        for user in users {
            match self.read_ahead.take_shifts(user) {
                Some(Some(item)) => {
                    let (user, window) = Self::read_shifts(&item)?;
                    found.insert(user, window);
                }
                Some(None) => {}
                None => unread.push(user.clone()),
            }
        }
        let keys = unread
            .iter()
            .map(|user| Self::key(user_pk(user), SHIFTS_SK))
            .collect();
        // Keys still unprocessed after the rounds (throttled) read as not cached: WFM answers.
        let read = batch_get(&self.client, &self.table, keys, false, 5).await?;
        for item in &read.items {
            let (user, window) = Self::read_shifts(item)?;
            found.insert(user, window);
        }
        Ok(found)
    }

    async fn put(
        &self,
        user: &UserId,
        window: &ShiftWindow,
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

impl DynamoStore {
    fn read_shifts(item: &Item) -> Result<(UserId, ShiftWindow), StoreError> {
        let reader = Reader::new(item, "shift window");
        let user =
            UserId::parse(reader.s("userId")?).map_err(|e| reader.corrupt("userId", &e.reason))?;
        Ok((user, reader.json("window")?))
    }
}
