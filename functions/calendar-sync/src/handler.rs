//! An SQS batch of sync requests in, one sync per agent (requests for one agent merged), the
//! records to retry out.

use std::collections::BTreeMap;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Diagnostic, LambdaEvent};
use presence_autopilot::calendar::{SyncReason, SyncRequest};
use presence_autopilot::clock::{Deadline, SystemClock};
use presence_autopilot::model::{UserId, preview};
use presence_autopilot::service::calendar_sync::SyncService;
use presence_autopilot::telemetry::{self, Unit};

/// Which of two reasons covers both: a new subscription and a full round cover everything.
fn stronger(a: SyncReason, b: SyncReason) -> SyncReason {
    let rank = |reason| match reason {
        SyncReason::Changed => 0,
        SyncReason::Upkeep => 1,
        SyncReason::Reauthorize => 2,
        SyncReason::Resync => 3,
        SyncReason::Recreate => 4,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// Per agent: the reason to sync for and the message ids that asks answers.
type Groups = BTreeMap<UserId, (SyncReason, Vec<String>)>;

/// Requests grouped by agent, and the ids of unreadable messages.
pub fn group(batch: SqsEvent) -> Result<(Groups, Vec<String>), Diagnostic> {
    let mut groups = Groups::new();
    let mut unreadable = Vec::new();
    for (index, record) in batch.records.into_iter().enumerate() {
        let Some(id) = record.message_id.filter(|id| !id.is_empty()) else {
            return Err(Diagnostic {
                error_type: "NonRetryable".to_owned(),
                error_message: format!("Records[{index}].messageId: is required"),
            });
        };
        let body = record.body.unwrap_or_default();
        match serde_json::from_str::<SyncRequest>(&body) {
            Ok(request) => {
                let entry = groups
                    .entry(request.user_id)
                    .or_insert((request.reason, Vec::new()));
                entry.0 = stronger(entry.0, request.reason);
                entry.1.push(id);
            }
            Err(error) => {
                // Only our own functions write this queue: a bad body is a bug to see in the
                // dead-letter queue, never to drop.
                tracing::error!(message_id = %id, reason = %preview(&error.to_string()), "unreadable sync request");
                unreadable.push(id);
            }
        }
    }
    Ok((groups, unreadable))
}

pub async fn handle(
    service: &SyncService,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Diagnostic> {
    let (batch, context) = event.into_parts();
    let deadline = Deadline::of_invocation(&context, &SystemClock);
    let (groups, mut failed) = group(batch)?;
    let (mut synced, mut failures, mut full_rounds) = (0u32, 0u32, 0u32);
    for (user_id, (reason, ids)) in groups {
        let request = SyncRequest { user_id, reason };
        match service.sync(&request, deadline).await {
            Ok(report) => {
                synced += 1;
                full_rounds += u32::from(report.full);
                tracing::info!(
                user = %request.user_id,
                provider = report.provider.unwrap_or("none"),
                reason = reason.as_str(),
                outcome = report.outcome,
                rounds = report.rounds,
                pages = report.pages,
                full = report.full,
                upserted = report.upserted,
                deleted = report.deleted,
                unchanged = report.unchanged,
                ignored = report.ignored,
                subscription = report.subscription.unwrap_or("kept"),
                "calendar synced"
                );
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(user = %request.user_id, reason = reason.as_str(), retryable = error.is_retryable(), %error, "calendar sync failed");
                // Retried by SQS either way; a lasting failure reaches the dead-letter queue
                // and stays recorded on the connection (`lastError`).
                failed.extend(ids);
            }
        }
    }
    telemetry::emit(
        &[("Function", "calendar-sync")],
        &[
            ("Synced", f64::from(synced), Unit::Count),
            ("SyncFailed", f64::from(failures), Unit::Count),
            ("SyncFullRounds", f64::from(full_rounds), Unit::Count),
        ],
    );
    let mut response = SqsBatchResponse::default();
    for id in failed {
        response.add_failure(id);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::sqs::SqsMessage;

    use super::*;

    fn record(id: &str, body: &str) -> SqsMessage {
        let mut message = SqsMessage::default();
        message.message_id = Some(id.to_owned());
        message.body = Some(body.to_owned());
        message
    }

    #[test]
    fn requests_for_one_agent_merge_into_the_strongest() {
        let user = "2b2e8fb3-2d8e-4a42-9f3f-2c5a7f0e4a11";
        let mut batch = SqsEvent::default();
        batch.records = vec![
            record("1", &format!(r#"{{"userId":"{user}","reason":"changed"}}"#)),
            record("2", &format!(r#"{{"userId":"{user}","reason":"resync"}}"#)),
            record("3", "not json"),
        ];
        let (groups, unreadable) = group(batch).expect("message ids present");
        let (reason, ids) = groups.values().next().expect("one agent");
        assert_eq!((*reason, ids.len()), (SyncReason::Resync, 2));
        assert_eq!(unreadable, vec!["3".to_owned()]);
    }

    #[test]
    fn a_record_without_message_id_fails_the_batch() {
        let mut batch = SqsEvent::default();
        let mut nameless = record("", "{}");
        nameless.message_id = None;
        batch.records = vec![nameless];
        assert!(group(batch).is_err());
    }
}
