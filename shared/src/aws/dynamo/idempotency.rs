//! `IdempotencyStore`: one record per key (`IDEMP#<key>` / `IDEMPOTENCY`), with the conditions
//! of Powertools' DynamoDB persistence layer.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, Update};
use chrono::DateTime;

use super::{
    DynamoStore, IDEMPOTENCY_SK, Item, Reader, TTL_ATTRIBUTE, build_error, condition_failure,
    idempotency_pk, json_attr, n, s,
};
use crate::aws::sdk_error;
use crate::clock::Deadline;
use crate::ports::{
    Begin, EventMark, EventRecord, IdempotencyStore, Lease, MarkStatus, StoreError,
};

const IN_PROGRESS: &str = "INPROGRESS";
const COMPLETED: &str = "COMPLETED";
/// A record this caller may write: none, expired, or in progress and either ours or past its
/// deadline (Powertools' takeover rules); never one someone else completed.
const HOLDABLE: &str = "attribute_not_exists(pk) OR #expiry < :now OR (#status = :inprogress \
                        AND (#inProgressExpiry < :now_ms OR #owner = :token))";

impl DynamoStore {
    fn idempotency_key(key: &str) -> Item {
        Self::key(idempotency_pk(key), IDEMPOTENCY_SK)
    }

    /// A fresh in-progress record owned by `token`.
    fn lease_item(&self, key: &str, token: &str, deadline: Deadline, ttl: Duration) -> Item {
        let mut item = Self::idempotency_key(key);
        item.insert("status".to_owned(), s(IN_PROGRESS));
        item.insert(TTL_ATTRIBUTE.to_owned(), n(self.epoch_after(ttl)));
        item.insert(
            "inProgressExpiry".to_owned(),
            n(deadline.0.timestamp_millis()),
        );
        item.insert("owner".to_owned(), s(token));
        item
    }

    /// The update that stores `outcome` under a lease this caller still holds.
    fn completion(
        &self,
        lease: &Lease,
        outcome: &serde_json::Value,
        ttl: Duration,
    ) -> Result<Update, StoreError> {
        let now = self.now();
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::idempotency_key(&lease.key)))
            .update_expression(
                "SET #status = :completed, #outcome = :outcome, #expiry = :expiry, \
                 #owner = :token REMOVE #inProgressExpiry",
            )
            .condition_expression(HOLDABLE)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#outcome", "outcome")
            .expression_attribute_names("#expiry", TTL_ATTRIBUTE)
            .expression_attribute_names("#inProgressExpiry", "inProgressExpiry")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":outcome", json_attr(outcome)?)
            .expression_attribute_values(":expiry", n(self.epoch_after(ttl)))
            .expression_attribute_values(":token", s(lease.token.clone()))
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_values(":now_ms", n(now.timestamp_millis()))
            .expression_attribute_values(":inprogress", s(IN_PROGRESS))
            .build()
            .map_err(build_error)
    }

    /// The put of an event's record inside another write: taken only while nobody else holds
    /// it (Powertools' takeover rules, plus our own lease) and nobody completed it.
    pub(super) fn mark_put(&self, mark: &EventMark) -> Result<Put, StoreError> {
        let mut item = Self::idempotency_key(&mark.lease.key);
        item.insert("owner".to_owned(), s(mark.lease.token.clone()));
        item.insert(TTL_ATTRIBUTE.to_owned(), n(self.epoch_after(mark.ttl)));
        match &mark.status {
            MarkStatus::InProgress { until } => {
                item.insert("status".to_owned(), s(IN_PROGRESS));
                item.insert("inProgressExpiry".to_owned(), n(until.timestamp_millis()));
            }
            MarkStatus::Completed(outcome) => {
                item.insert("status".to_owned(), s(COMPLETED));
                item.insert("outcome".to_owned(), json_attr(outcome)?);
            }
        }
        let now = self.now();
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(HOLDABLE)
            .expression_attribute_names("#expiry", TTL_ATTRIBUTE)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#inProgressExpiry", "inProgressExpiry")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_values(":now_ms", n(now.timestamp_millis()))
            .expression_attribute_values(":inprogress", s(IN_PROGRESS))
            .expression_attribute_values(":token", s(mark.lease.token.clone()))
            .build()
            .map_err(build_error)
    }

    /// An event's record as read with the state; one past its TTL (not yet swept) is none.
    pub(super) fn read_event_record(&self, item: &Item) -> Result<Option<EventRecord>, StoreError> {
        let r = Reader::new(item, "idempotency record");
        if r.opt_n(TTL_ATTRIBUTE)?
            .is_some_and(|expiry| expiry < self.now().timestamp())
        {
            return Ok(None);
        }
        Ok(Some(match Self::existing_idempotency(item)? {
            Begin::AlreadyCompleted(outcome) => EventRecord::Completed(outcome),
            Begin::InProgress { until } => EventRecord::InProgress {
                owner: r.s("owner")?.to_owned(),
                until,
            },
            Begin::Started(_) => return Err(r.corrupt("status", "unknown status")),
        }))
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
            let item = self.lease_item(key, &token, deadline, ttl);
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
            // Unlike the other conditional writes, a failure here carries the record we lost to.
            let existing = match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    match failed.item() {
                        Some(item) => Some(item.clone()),
                        None => self.get_item(Self::idempotency_key(key)).await?,
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
        let update = self.completion(lease, outcome, ttl)?;
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(update.key))
            .update_expression(update.update_expression)
            .set_condition_expression(update.condition_expression)
            .set_expression_attribute_names(update.expression_attribute_names)
            .set_expression_attribute_values(update.expression_attribute_values)
            .send()
            .await
            .map_err(|err| condition_failure("UpdateItem", err, || lease_lost(lease)))?;
        Ok(())
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::idempotency_key(&lease.key)))
            .condition_expression("#owner = :token AND #status = :inprogress")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":token", s(lease.token.clone()))
            .expression_attribute_values(":inprogress", s(IN_PROGRESS))
            .send()
            .await
            .map_err(|err| condition_failure("DeleteItem", err, || lease_lost(lease)))?;
        Ok(())
    }
}

fn lease_lost(lease: &Lease) -> StoreError {
    StoreError::LeaseLost {
        key: lease.key.clone(),
    }
}
