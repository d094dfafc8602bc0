//! SQS event → `Dispatcher` → `SqsBatchResponse` (ReportBatchItemFailures). Only translation
//! lives here; the decisions are in `presence_autopilot::delivery`.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Diagnostic, LambdaEvent};
use presence_autopilot::clock::Deadline;
use presence_autopilot::service::dispatch::{DispatchError, Dispatcher, InboundRecord};

/// The service's view of the SQS records.
pub fn records(event: SqsEvent) -> Vec<InboundRecord> {
    event
        .records
        .into_iter()
        .map(|message| InboundRecord {
            receive_count: message
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|count| count.parse().ok())
                .unwrap_or(1),
            message_id: message.message_id.unwrap_or_default(),
            receipt_handle: message.receipt_handle,
            body: message.body,
        })
        .collect()
}

/// One invocation: every record handled on its own; the failed ones are reported so SQS
/// returns only them.
pub async fn handle(
    dispatcher: &Dispatcher,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Diagnostic> {
    let deadline = Deadline::of_invocation(&event.context, dispatcher.clock.as_ref());
    let report = dispatcher
        .dispatch_batch(records(event.payload), deadline)
        .await
        .map_err(diagnostic)?;
    let mut response = SqsBatchResponse::default();
    for id in report.failed_ids() {
        response.add_failure(id);
    }
    Ok(response)
}

fn diagnostic(err: DispatchError) -> Diagnostic {
    tracing::error!(error = %err, "batch failed");
    presence_autopilot::telemetry::diagnostic(&err, err.is_retryable())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::DateTime;
    use lambda_runtime::Context;
    use presence_autopilot::clock::ManualClock;
    use std::sync::{Arc, Mutex};

    use presence_autopilot::clock::Clock;
    use presence_autopilot::delivery::http::{GuardedHttp, HttpLimits};
    use presence_autopilot::delivery::slack::SlackClient;
    use presence_autopilot::delivery::ssrf::{SystemResolver, UrlPolicy};
    use presence_autopilot::delivery::teams::TeamsClient;
    use presence_autopilot::delivery::webhook::WebhookSender;
    use presence_autopilot::fakes::delivery::{FakeEndpoints, FakeVisibility};
    use presence_autopilot::fakes::{FakeSecrets, InMemoryStore};
    use presence_autopilot::model::UserId;
    use presence_autopilot::ports::AuditQueries;
    use presence_autopilot::service::dispatch::DispatchSettings;
    use presence_autopilot::state::DecisionKind;

    use super::*;

    fn dispatcher(secrets: FakeSecrets) -> (Dispatcher, Arc<InMemoryStore>, Arc<FakeVisibility>) {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::starting_at(
            DateTime::from_timestamp(1_773_928_800, 0).expect("time"),
        ));
        let store = Arc::new(InMemoryStore::new(Arc::clone(&clock)));
        let visibility = Arc::new(FakeVisibility::default());
        let limits = HttpLimits::default();
        let dispatcher = Dispatcher {
            secrets: Arc::new(secrets),
            subscribers_secret: "subscribers".to_owned(),
            webhooks: Arc::new(WebhookSender::new(
                GuardedHttp::new(UrlPolicy::default(), Arc::new(SystemResolver), limits),
                Arc::clone(&clock),
            )),
            slack: Arc::new(SlackClient::new(limits).expect("client")),
            teams: Arc::new(TeamsClient::new(limits, Arc::clone(&clock)).expect("client")),
            audit: store.clone(),
            markers: store.clone(),
            endpoints: Arc::new(FakeEndpoints::default()),
            visibility: visibility.clone(),
            clock,
            settings: DispatchSettings::default(),
            rng: Mutex::new(fastrand::Rng::with_seed(1)),
        };
        (dispatcher, store, visibility)
    }

    fn event(fixture: &str) -> LambdaEvent<SqsEvent> {
        let payload: SqsEvent = serde_json::from_str(fixture).expect("fixture");
        let mut context = Context::default();
        context.deadline = 1_773_928_860_000;
        LambdaEvent::new(payload, context)
    }

    #[tokio::test]
    async fn a_malformed_record_fails_alone_and_is_parked_with_its_reason() {
        let secrets = FakeSecrets::default();
        secrets.set("subscribers", r#"{"webhooks": []}"#);
        let (dispatcher, store, visibility) = dispatcher(secrets);

        let response = handle(
            &dispatcher,
            event(include_str!(
                "../../../tests/fixtures/sqs-notifications.json"
            )),
        )
        .await
        .expect("handled");

        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, vec!["2e1424d4-f796-459a-8184-9c92662be6da"]);
        assert_eq!(
            visibility.changes(),
            vec![("handle-2".to_owned(), Duration::ZERO)]
        );
        let unattributed =
            UserId::parse(presence_autopilot::service::dispatch::UNATTRIBUTED_USER).expect("id");
        let records = store.audit_records(&unattributed);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].kind, DecisionKind::DeliveryParked);
        let reason = records[0].reason.clone().unwrap_or_default();
        assert!(
            reason.starts_with("malformed notification: not a notification"),
            "{reason}"
        );
        let _ = store
            .verify_chain(&unattributed)
            .await
            .expect("chain readable");
    }

    #[tokio::test]
    async fn an_unreadable_subscriber_document_is_a_non_retryable_diagnostic_without_the_value() {
        let secrets = FakeSecrets::default();
        secrets.set("subscribers", r#"{"slack": {"tokens": {"a": 12345}}}"#);
        let (dispatcher, _, _) = dispatcher(secrets);

        let err = handle(
            &dispatcher,
            event(include_str!(
                "../../../tests/fixtures/sqs-notifications.json"
            )),
        )
        .await
        .expect_err("no subscribers");

        assert_eq!(err.error_type, "NonRetryable");
        assert!(
            err.error_message.contains("subscribers"),
            "{}",
            err.error_message
        );
        assert!(
            !err.error_message.contains("12345"),
            "{}",
            err.error_message
        );
    }
}
