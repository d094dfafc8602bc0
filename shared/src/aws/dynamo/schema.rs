//! Table creation, as `infra/` defines it (used by tests and `make dev`).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection, ProjectionType, ScalarAttributeType, StreamSpecification,
    StreamViewType, TimeToLiveSpecification,
};

use super::{
    DynamoStore, INDEX_AUDIT_BY_TIME, INDEX_BY_TRIGGER, INDEX_DUE, TTL_ATTRIBUTE, build_error,
};
use crate::aws::sdk_error;
use crate::ports::StoreError;

impl DynamoStore {
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
            // The outbox relay reads each committed state, before and after.
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
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
}
