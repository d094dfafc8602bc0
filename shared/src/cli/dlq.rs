//! `autopilot dlq list|show|replay`: the stack's dead-letter queues, found by the stack name in
//! their CloudFormation names, replayed by `operator::dead_letters` (re-send, then delete).

use std::io::Write;
use std::num::NonZeroU32;
use std::sync::Arc;

use serde_json::json;

use super::context::setting;
use super::output::{json, or_dash, table};
use super::{CliError, DlqAction, Format, Operations, Verdict};
use crate::aws::dead_letters::SqsDeadLetters;
use crate::operator::dead_letters::{
    DeadLetterService, KnownQueue, ReplayOptions, ReplayOutcome, find, resolve_target,
};
use crate::operator::explain::local;

pub async fn run(
    ops: &Operations,
    action: DlqAction,
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, CliError> {
    let stack = setting(
        &ops.stack.stack,
        "--stack / AUTOPILOT_STACK (the stack name)",
    )?;
    let service = DeadLetterService {
        queues: Arc::new(SqsDeadLetters::new(
            aws_sdk_sqs::Client::new(&ops.aws),
            aws_sdk_eventbridge::Client::new(&ops.aws),
        )),
        clock: Arc::clone(&ops.clock),
    };
    let queues = service.list(&format!("{stack}-")).await?;
    match action {
        DlqAction::List => list(ops, &queues, format, out),
        DlqAction::Show { queue, max } => {
            let dlq = find(&queues, &queue).map_err(|e| CliError::Usage(e.to_string()))?;
            show(ops, &service, dlq, max, format, out).await
        }
        DlqAction::Replay {
            queue,
            max,
            per_second,
        } => {
            let dlq = find(&queues, &queue).map_err(|e| CliError::Usage(e.to_string()))?;
            let per_second = NonZeroU32::new(per_second)
                .ok_or_else(|| CliError::Usage("--per-second must be at least 1".into()))?;
            let options = ReplayOptions {
                max_messages: max,
                per_second,
            };
            let bus = ops.stack.event_bus_name.as_deref();
            // Refused before any message is touched when the target cannot be named.
            resolve_target(&queues, dlq, bus).map_err(|e| CliError::Usage(e.to_string()))?;
            let report = service.replay(&queues, dlq, bus, &options).await?;
            let failed = report.not_sent() + report.sent_not_deleted();
            if format == Format::Json {
                let outcomes: Vec<_> = report.outcomes.iter().map(outcome_json).collect();
                json(
                    out,
                    &json!({
                        "queue": report.queue,
                        "target": report.target.to_string(),
                        "replayed": report.replayed(),
                        "notSent": report.not_sent(),
                        "sentNotDeleted": report.sent_not_deleted(),
                        "stopped": report.stopped,
                        "warnings": report.warnings,
                        "outcomes": outcomes,
                    }),
                )?;
            } else {
                for outcome in &report.outcomes {
                    writeln!(out, "{}", outcome_line(outcome))?;
                }
                for warning in &report.warnings {
                    writeln!(out, "warning: {warning}")?;
                }
                writeln!(out, "{}", report.summary())?;
            }
            Ok(Verdict::by_problems(
                failed + usize::from(report.stopped.is_some()),
            ))
        }
    }
}

fn list(
    ops: &Operations,
    queues: &[KnownQueue],
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, CliError> {
    let bus = ops.stack.event_bus_name.as_deref();
    let target_of = |q: &KnownQueue| {
        resolve_target(queues, q, bus)
            .map_or_else(|e| format!("cannot replay: {e}"), |t| t.to_string())
    };
    if format == Format::Json {
        let listed: Vec<_> = queues
            .iter()
            .map(|q| {
                json!({
                    "logicalId": q.kind.logical_id(),
                    "name": q.queue.name,
                    "url": q.queue.url,
                    "depth": q.queue.depth,
                    "holds": q.kind.description(),
                    "replaysTo": target_of(q),
                })
            })
            .collect();
        json(out, &listed)?;
    } else {
        let rows = queues.iter().map(|q| {
            vec![
                q.kind.logical_id().to_owned(),
                q.queue.depth.to_string(),
                q.kind.description().to_owned(),
                target_of(q),
            ]
        });
        writeln!(
            out,
            "{}",
            table(&["queue", "messages", "holds", "replays to"], rows)
        )?;
    }
    let waiting: u64 = queues.iter().map(|q| q.queue.depth).sum();
    if format == Format::Table {
        writeln!(
            out,
            "{} dead-letter queue(s), {waiting} message(s) waiting",
            queues.len()
        )?;
    }
    Ok(Verdict::by_problems(usize::from(waiting > 0)))
}

async fn show(
    ops: &Operations,
    service: &DeadLetterService,
    dlq: &KnownQueue,
    max: usize,
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, CliError> {
    let letters = service.show(&dlq.queue, max).await?;
    if format == Format::Json {
        let shown: Vec<_> = letters
            .iter()
            .map(|l| {
                json!({
                    "messageId": l.message_id,
                    "receiveCount": l.receive_count,
                    "firstSent": l.first_sent,
                    "attributes": l.attributes.iter().map(|(k, v)| (k.clone(), v.value.clone())).collect::<std::collections::BTreeMap<_, _>>(),
                    "body": l.body,
                })
            })
            .collect();
        json(out, &shown)?;
        return Ok(Verdict::Fine);
    }
    let rows = letters.iter().map(|l| {
        vec![
            l.message_id.clone(),
            l.receive_count.to_string(),
            or_dash(l.first_sent.map(|t| local(t, ops.zone()))),
            crate::model::preview(&l.body),
        ]
    });
    writeln!(
        out,
        "{}",
        table(&["message", "receives", "first sent", "body"], rows)
    )?;
    writeln!(
        out,
        "{} of {} message(s) in {} shown; they stay in the queue",
        letters.len(),
        dlq.queue.depth,
        dlq.kind.logical_id()
    )?;
    Ok(Verdict::Fine)
}

fn outcome_json(outcome: &ReplayOutcome) -> serde_json::Value {
    match outcome {
        ReplayOutcome::Replayed { message_id, new_id } => {
            json!({"messageId": message_id, "fate": "replayed", "newId": new_id})
        }
        ReplayOutcome::NotSent { message_id, error } => {
            json!({"messageId": message_id, "fate": "notSent", "error": error})
        }
        ReplayOutcome::SentNotDeleted {
            message_id,
            new_id,
            error,
        } => {
            json!({"messageId": message_id, "fate": "sentNotDeleted", "newId": new_id, "error": error})
        }
    }
}

fn outcome_line(outcome: &ReplayOutcome) -> String {
    match outcome {
        ReplayOutcome::Replayed { message_id, new_id } => {
            format!("replayed        {message_id} → {new_id}")
        }
        ReplayOutcome::NotSent { message_id, error } => {
            format!("NOT SENT        {message_id}: {error} (left in the queue)")
        }
        ReplayOutcome::SentNotDeleted {
            message_id,
            new_id,
            error,
        } => format!("sent, not deleted {message_id} → {new_id}: {error}"),
    }
}
