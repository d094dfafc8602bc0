//! `audit_trail --table NAME --user USER_ID`: prints a user's audit records from the state table
//! on the AWS endpoint the environment points at (moto, through `AWS_ENDPOINT_URL`), oldest
//! first, then verifies the hash chain with `AuditLog::verify_chain`: "chain verified: N records",
//! or the first bad record and exit code 1. Used by `make demo`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use genesys_sim::seed;
use presence_autopilot::aws::dynamo::DynamoStore;
use presence_autopilot::clock::SystemClock;
use presence_autopilot::model::UserId;
use presence_autopilot::ports::AuditLog;
use presence_autopilot::state::PresenceRef;

/// The seed's presence definitions by name, so the trail reads "Available → Meeting" (the
/// status message is left out to keep one record on one line).
fn presence_name(presence: Option<&PresenceRef>) -> String {
    let Some(presence) = presence else {
        return "-".to_owned();
    };
    let id = presence.definition_id.as_str();
    let name = [
        (seed::AVAILABLE, "Available"),
        (seed::BUSY, "Busy"),
        (seed::IDLE, "Idle"),
        (seed::AWAY, "Away"),
        (seed::MEETING, "Meeting"),
        (seed::MEAL, "Meal"),
        (seed::TRAINING, "Training"),
        (seed::ON_QUEUE, "On Queue"),
        (seed::BREAK, "Break"),
        (seed::OFFLINE, "Offline"),
        (seed::FOCUS_TIME, "Focus Time"),
        (seed::AWAY_FROM_KEYBOARD, "Away From Keyboard V2"),
    ]
    .iter()
    .find(|(known, _)| *known == id)
    .map_or(id, |(_, name)| name);
    name.to_owned()
}

async fn run() -> anyhow::Result<bool> {
    let mut table = None;
    let mut user = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--table" => table = args.next(),
            "--user" => user = args.next(),
            other => anyhow::bail!(
                "unknown argument {other}; usage: audit_trail --table NAME --user USER_ID"
            ),
        }
    }
    let table = table.context("--table is required")?;
    let user = UserId::parse(&user.context("--user is required")?)?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        table,
        Arc::new(SystemClock),
    );

    let records = store
        .by_user(
            &user,
            DateTime::<Utc>::UNIX_EPOCH,
            Utc::now() + Duration::days(1),
        )
        .await
        .context("read the audit records")?;
    println!("audit trail of {user}: {} records", records.len());
    for record in &records {
        let kind = serde_json::to_value(record.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let change = if record.before.is_none() && record.after.is_none() {
            String::new()
        } else {
            format!(
                "{} → {}",
                presence_name(record.before.as_ref()),
                presence_name(record.after.as_ref())
            )
        };
        let mut line = format!(
            "  #{:<3} {} {:<18} {:<22}",
            record.seq,
            record.at.format("%H:%M:%S%.3f"),
            kind,
            change,
        );
        if let Some(trigger) = &record.trigger_id {
            line.push_str(&format!(" trigger {trigger}"));
        }
        if let Some(reason) = &record.reason {
            line.push_str(&format!(" — {reason}"));
        }
        if let Some(subscriber) = record.details.get("subscriber").and_then(|v| v.as_str()) {
            line.push_str(&format!(" [subscriber {subscriber}]"));
        }
        println!("{}", line.trim_end());
        println!(
            "        hash {}… prev {}…",
            &record.hash[..12.min(record.hash.len())],
            &record.prev_hash[..12.min(record.prev_hash.len())]
        );
    }
    match store
        .verify_chain(&user)
        .await
        .context("verify the chain")?
    {
        Ok(report) => {
            println!("chain verified: {} records", report.records);
            Ok(true)
        }
        Err(broken) => {
            println!(
                "chain BROKEN at record {}: {broken}",
                broken.first_bad_seq()
            );
            Ok(false)
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("audit_trail: {error:#}");
            ExitCode::from(2)
        }
    }
}
