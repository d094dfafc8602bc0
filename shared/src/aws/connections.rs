//! The calendar connector's items in the one table (docs/data-model.md, "Calendar connector"):
//! a connection per agent (versioned), the subscription index the notification endpoint reads,
//! and the mirror of events told to the bus.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, Put, PutRequest, TransactWriteItem, WriteRequest,
};
use sha2::{Digest, Sha256};

use super::{batch_get, sdk_error};
use crate::calendar::Connection;
use crate::model::UserId;
use crate::ports::{Conflict, ConnectionStore, MirroredEvent, StoreError, SubscriptionOwner};

type Item = HashMap<String, AttributeValue>;

const CONNECTION_SK: &str = "CONNECTION";
const SUBSCRIPTION_SK: &str = "SUBSCRIPTION";
const MIRROR_SK_PREFIX: &str = "EVENT#";
/// Connections are listed through the table's first GSI under this one key (a sparse entry:
/// only connection items carry it).
const LIST_KEY: &str = "CONNECTIONS";
/// DynamoDB's limit per BatchWriteItem call.
const BATCH_WRITE: usize = 25;
/// Unprocessed batch entries are retried this many times before the call fails.
const BATCH_ATTEMPTS: u32 = 5;
/// The TTL attribute shared with the rest of the table.
const TTL_ATTRIBUTE: &str = super::dynamo::TTL_ATTRIBUTE;

#[derive(Debug, Clone)]
pub struct DynamoConnections {
    client: Client,
    table: String,
}

fn connection_pk(user: &UserId) -> String {
    format!("CONN#{user}")
}

fn subscription_pk(id: &str) -> String {
    format!("GRAPHSUB#{id}")
}

/// Event ids reach 1,024 bytes, a sort key's limit: key the mirror by a digest.
fn mirror_sk(event_id: &str) -> String {
    let digest = Sha256::digest(event_id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{MIRROR_SK_PREFIX}{hex}")
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

fn invalid(err: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(format!("request could not be built: {err}"))
}

fn corrupt(item: &str, field: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        item: item.to_owned(),
        field: field.to_owned(),
        reason: reason.to_string(),
    }
}

fn text<'a>(item: &'a Item, what: &str, field: &str) -> Result<&'a str, StoreError> {
    match item.get(field) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(corrupt(what, field, "missing or not a string")),
    }
}

impl DynamoConnections {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn connection_put(&self, next: &Connection, expected: u64) -> Result<Put, StoreError> {
        let mut item = key(connection_pk(&next.user_id), CONNECTION_SK);
        item.insert("userId".to_owned(), s(next.user_id.as_str()));
        item.insert(
            "version".to_owned(),
            AttributeValue::N(next.version.to_string()),
        );
        item.insert("gsi1pk".to_owned(), s(LIST_KEY));
        item.insert("gsi1sk".to_owned(), s(next.user_id.as_str()));
        let json = serde_json::to_string(next).map_err(invalid)?;
        item.insert("connection".to_owned(), s(json));
        let put = Put::builder().table_name(&self.table).set_item(Some(item));
        let put = if expected == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()))
        };
        put.build().map_err(invalid)
    }

    fn index_put(&self, next: &Connection) -> Result<Option<Put>, StoreError> {
        let Some(subscription) = &next.subscription else {
            return Ok(None);
        };
        let mut item = key(subscription_pk(&subscription.id), SUBSCRIPTION_SK);
        item.insert("userId".to_owned(), s(next.user_id.as_str()));
        item.insert("nonce".to_owned(), s(subscription.nonce.clone()));
        // Gone a day after the subscription could last have lived.
        let expires = subscription.expires_at.timestamp() + 86_400;
        item.insert(
            TTL_ATTRIBUTE.to_owned(),
            AttributeValue::N(expires.to_string()),
        );
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()
            .map(Some)
            .map_err(invalid)
    }

    fn parse_connection(item: &Item) -> Result<Connection, StoreError> {
        let what = "connection";
        let json = text(item, what, "connection")?;
        serde_json::from_str(json).map_err(|e| corrupt(what, "connection", e))
    }

    async fn write_batch(&self, mut requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        for _ in 0..BATCH_ATTEMPTS {
            if requests.is_empty() {
                return Ok(());
            }
            let chunk: Vec<WriteRequest> =
                requests.drain(..requests.len().min(BATCH_WRITE)).collect();
            let answer = self
                .client
                .batch_write_item()
                .request_items(&self.table, chunk)
                .send()
                .await
                .map_err(|e| sdk_error("BatchWriteItem", e))?;
            if let Some(left) = answer
                .unprocessed_items()
                .and_then(|items| items.get(&self.table))
            {
                requests.extend(left.iter().cloned());
            }
        }
        if requests.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Throttled {
                operation: "BatchWriteItem",
            })
        }
    }
}

#[async_trait]
impl ConnectionStore for DynamoConnections {
    async fn get(&self, user: &UserId) -> Result<Option<Connection>, StoreError> {
        let answer = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(connection_pk(user), CONNECTION_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        answer.item().map(Self::parse_connection).transpose()
    }

    async fn put(&self, connection: &Connection) -> Result<Connection, StoreError> {
        let expected = connection.version;
        let mut next = connection.clone();
        next.version = expected + 1;
        let mut items = vec![
            TransactWriteItem::builder()
                .put(self.connection_put(&next, expected)?)
                .build(),
        ];
        if let Some(index) = self.index_put(&next)? {
            items.push(TransactWriteItem::builder().put(index).build());
        }
        // One token per call: the SDK's own retries of it stay one transaction, while a later
        // write of the same content (after a delete, say) is a new one. A token derived from
        // the content alone would be answered from DynamoDB's 10-minute idempotency memory.
        let token = uuid::Uuid::new_v4().simple().to_string();
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            // The SDK's own retries of this call stay one transaction.
            .client_request_token(token)
            .send()
            .await;
        match result {
            Ok(_) => Ok(next),
            Err(err) => match crate::aws::failed_conditions(&err) {
                Some(failed) if failed.first() == Some(&true) => {
                    Err(StoreError::Conflict(Conflict {
                        user_id: connection.user_id.clone(),
                        expected_version: expected,
                    }))
                }
                _ => Err(sdk_error("TransactWriteItems", err)),
            },
        }
    }

    async fn forget_subscription(&self, id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(subscription_pk(id), SUBSCRIPTION_SK)))
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem", e))?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Connection>, StoreError> {
        let items = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(super::dynamo::INDEX_BY_TRIGGER)
            .key_condition_expression("gsi1pk = :list")
            .expression_attribute_values(":list", s(LIST_KEY))
            .into_paginator()
            .items()
            .send()
            .collect::<Vec<_>>()
            .await;
        items
            .into_iter()
            .map(|item| Self::parse_connection(&item.map_err(|e| sdk_error("Query", e))?))
            .collect()
    }

    async fn delete(&self, connection: &Connection) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(connection_pk(&connection.user_id), CONNECTION_SK)))
            .condition_expression("version = :expected")
            .expression_attribute_values(
                ":expected",
                AttributeValue::N(connection.version.to_string()),
            )
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                return Err(StoreError::Conflict(Conflict {
                    user_id: connection.user_id.clone(),
                    expected_version: connection.version,
                }));
            }
            Err(err) => return Err(sdk_error("DeleteItem", err)),
        }
        let mut requests = Vec::new();
        if let Some(subscription) = &connection.subscription {
            let delete = DeleteRequest::builder()
                .set_key(Some(key(
                    subscription_pk(&subscription.id),
                    SUBSCRIPTION_SK,
                )))
                .build()
                .map_err(invalid)?;
            requests.push(WriteRequest::builder().delete_request(delete).build());
        }
        let mirrored: Vec<String> = self
            .mirror(&connection.user_id)
            .await?
            .into_keys()
            .collect();
        for id in mirrored {
            let delete = DeleteRequest::builder()
                .set_key(Some(key(
                    connection_pk(&connection.user_id),
                    mirror_sk(&id),
                )))
                .build()
                .map_err(invalid)?;
            requests.push(WriteRequest::builder().delete_request(delete).build());
        }
        self.write_batch(requests).await
    }

    async fn subscription_owners(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, SubscriptionOwner>, StoreError> {
        let keys = ids
            .iter()
            .map(|id| key(subscription_pk(id), SUBSCRIPTION_SK))
            .collect();
        let read = batch_get(&self.client, &self.table, keys, true, BATCH_ATTEMPTS).await?;
        if !read.unprocessed.is_empty() {
            return Err(StoreError::Throttled {
                operation: "BatchGetItem",
            });
        }
        let mut owners = HashMap::new();
        for item in &read.items {
            let what = "subscription index";
            let pk = text(item, what, "pk")?;
            let id = pk.trim_start_matches("GRAPHSUB#").to_owned();
            let user_id = UserId::parse(text(item, what, "userId")?)
                .map_err(|e| corrupt(what, "userId", e))?;
            let nonce = text(item, what, "nonce")?.to_owned();
            owners.insert(id, SubscriptionOwner { user_id, nonce });
        }
        Ok(owners)
    }

    async fn mirror(&self, user: &UserId) -> Result<HashMap<String, MirroredEvent>, StoreError> {
        let pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(connection_pk(user)))
            .expression_attribute_values(":prefix", s(MIRROR_SK_PREFIX))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect::<Vec<_>>()
            .await;
        let mut mirror = HashMap::new();
        for item in pages {
            let item = item.map_err(|e| sdk_error("Query", e))?;
            let json = text(&item, "mirrored event", "mirror")?;
            let event: MirroredEvent =
                serde_json::from_str(json).map_err(|e| corrupt("mirrored event", "mirror", e))?;
            mirror.insert(event.event_id.clone(), event);
        }
        Ok(mirror)
    }

    async fn update_mirror(
        &self,
        user: &UserId,
        upserts: &[MirroredEvent],
        removals: &[String],
    ) -> Result<(), StoreError> {
        // One request per key: a batch naming a key twice is refused whole.
        let mut requests: HashMap<String, WriteRequest> = HashMap::new();
        for event in upserts {
            let sk = mirror_sk(&event.event_id);
            let mut item = key(connection_pk(user), sk.clone());
            let json = serde_json::to_string(event).map_err(invalid)?;
            item.insert("mirror".to_owned(), s(json));
            // Kept a week past the event's end, then the table forgets it.
            let expires = event.end.timestamp() + 7 * 86_400;
            item.insert(
                TTL_ATTRIBUTE.to_owned(),
                AttributeValue::N(expires.to_string()),
            );
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(invalid)?;
            requests.insert(sk, WriteRequest::builder().put_request(put).build());
        }
        for id in removals {
            let sk = mirror_sk(id);
            let delete = DeleteRequest::builder()
                .set_key(Some(key(connection_pk(user), sk.clone())))
                .build()
                .map_err(invalid)?;
            requests.insert(sk, WriteRequest::builder().delete_request(delete).build());
        }
        let requests = requests.into_values().collect();
        self.write_batch(requests).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_keys_fit_whatever_the_event_id() {
        let long = "x".repeat(1024);
        assert_eq!(mirror_sk(&long).len(), MIRROR_SK_PREFIX.len() + 64);
        assert_ne!(mirror_sk("a"), mirror_sk("b"));
    }
}
