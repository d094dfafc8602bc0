//! Malformed messages are parked with their reason (audited once), made visible again at
//! once so the redrive moves them to the DLQ quickly, and never panic the handler.

use std::time::Duration;

use presence_autopilot::service::dispatch::UNATTRIBUTED_USER;
use presence_autopilot::state::DecisionKind;
use serde_json::json;

use crate::support::dispatch::{ADA, Harness, Options, SECRET, receive};

#[tokio::test(flavor = "current_thread")]
async fn malformed_messages_are_parked_with_the_reason_and_end_in_the_dlq() {
    let harness = Harness::start(
        Options {
            max_receive_count: 2,
            ..Options::default()
        },
        json!({"webhooks": [{"id": "ops", "url": "http://127.0.0.1:9/never", "secrets": [SECRET]}]}),
    )
    .await;
    let not_json = harness.enqueue_raw("this is not json {").await;
    let wrong_shape = harness
        .enqueue_raw(r#"{"notificationId":"not-a-ulid","userId":"x"}"#)
        .await;
    let bad_payload = harness
        .enqueue_raw(
            &json!({
                "notificationId": "01KM3E1Q80QZ0YF3E5A4R1B2C3",
                "userId": ADA,
                "changedAt": "2026-03-19T14:00:00.123Z",
                "sequence": 3,
                "kind": "presenceApplied",
                "payload": {"presence": "Meeting"}
            })
            .to_string(),
        )
        .await;

    let mut first = Vec::new();
    while first.len() < 3 {
        let (ids, failed) = harness.poll(Duration::from_secs(1)).await;
        assert_eq!(
            ids, failed,
            "every malformed record is a batch item failure"
        );
        assert!(!ids.is_empty());
        first.extend(ids);
    }
    harness
        .poll_until(Duration::from_secs(10), async || {
            harness.queue_depth(&harness.dlq_url).await == 3
        })
        .await;

    assert_eq!(
        receive(&harness.sqs, &harness.dlq_url, Duration::from_secs(1))
            .await
            .len(),
        3
    );
    let unattributed = harness.audit(UNATTRIBUTED_USER).await;
    let reasons: Vec<(String, String)> = unattributed
        .iter()
        .map(|r| {
            assert_eq!(r.kind, DecisionKind::DeliveryParked);
            (
                r.event_id.clone().unwrap_or_default(),
                r.reason.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        reasons.len(),
        2,
        "audited once each, not once per receive: {reasons:?}"
    );
    let reason_of = |id: &str| {
        reasons
            .iter()
            .find(|(event, _)| event == id)
            .map(|(_, reason)| reason.clone())
            .unwrap_or_default()
    };
    assert!(
        reason_of(&not_json)
            .starts_with("malformed notification: not a notification: expected ident at line 1"),
        "{}",
        reason_of(&not_json)
    );
    assert!(
        reason_of(&wrong_shape).contains("notificationId is not a ULID"),
        "{}",
        reason_of(&wrong_shape)
    );
    let ada = harness.audit(ADA).await;
    assert_eq!(
        ada.len(),
        1,
        "a readable userId gets the record in that user's chain"
    );
    assert_eq!(ada[0].event_id.as_deref(), Some(bad_payload.as_str()));
    let reason = ada[0].reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("malformed notification: payload: "),
        "{reason}"
    );
}
