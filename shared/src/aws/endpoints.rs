//! Disabled webhook endpoints in the DynamoDB table (`ENDPOINT#<id>` / `STATUS`), the
//! `EndpointRegistry` of webhook dispatch.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat};

use super::sdk_error;
use crate::delivery::subscribers::SubscriberId;
use crate::ports::StoreError;
use crate::ports::{DisabledEndpoint, EndpointRegistry};

const ENDPOINT_SK: &str = "STATUS";

fn endpoint_pk(subscriber: &SubscriberId) -> String {
    format!("ENDPOINT#{subscriber}")
}

/// Disabled endpoints: item `ENDPOINT#<subscriberId>` / `STATUS` in the state table.
#[derive(Debug, Clone)]
pub struct DynamoEndpoints {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoEndpoints {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl EndpointRegistry for DynamoEndpoints {
    async fn disabled(
        &self,
        subscriber: &SubscriberId,
    ) -> Result<Option<DisabledEndpoint>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(endpoint_pk(subscriber)))
            .key("sk", AttributeValue::S(ENDPOINT_SK.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| sdk_error("GetItem", err))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let text = |field: &str| match item.get(field) {
            Some(AttributeValue::S(value)) => Ok(value.clone()),
            _ => Err(StoreError::Corrupt {
                item: endpoint_pk(subscriber),
                field: field.to_owned(),
                reason: "missing or not a string".to_owned(),
            }),
        };
        if text("status")? != "DISABLED" {
            return Ok(None);
        }
        let at = DateTime::parse_from_rfc3339(&text("disabledAt")?)
            .map(|t| t.to_utc())
            .map_err(|_| StoreError::Corrupt {
                item: endpoint_pk(subscriber),
                field: "disabledAt".to_owned(),
                reason: "not an RFC 3339 time".to_owned(),
            })?;
        Ok(Some(DisabledEndpoint {
            subscriber: subscriber.clone(),
            url_fingerprint: text("urlFingerprint")?,
            at,
            reason: text("reason")?,
        }))
    }

    async fn disable(&self, endpoint: &DisabledEndpoint) -> Result<(), StoreError> {
        let s = AttributeValue::S;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(endpoint_pk(&endpoint.subscriber)))
            .item("sk", s(ENDPOINT_SK.to_owned()))
            .item("status", s("DISABLED".to_owned()))
            .item("subscriberId", s(endpoint.subscriber.to_string()))
            .item("urlFingerprint", s(endpoint.url_fingerprint.clone()))
            .item(
                "disabledAt",
                s(endpoint.at.to_rfc3339_opts(SecondsFormat::Millis, true)),
            )
            .item("reason", s(endpoint.reason.clone()))
            .send()
            .await
            .map_err(|err| sdk_error("PutItem", err))?;
        Ok(())
    }
}
