//! The commands that change something: release, and the calendar subscriptions.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::context::setting;
use super::output::{json, or_dash, table};
use super::{CliError, Format, Operations, Verdict};
use crate::aws::secrets::secrets_manager_source;
use crate::aws::sync_queue::SqsSyncQueue;
use crate::calendar::{SyncReason, SyncRequest};
use crate::compose::{TransitionSettings, wire};
use crate::decide::Operator;
use crate::delivery::http::{GuardedHttp, HttpLimits};
use crate::delivery::retry::AttemptOutcome;
use crate::delivery::ssrf::{SystemResolver, UrlPolicy};
use crate::delivery::subscribers::SubscriberConfig;
use crate::delivery::webhook::WebhookSender;
use crate::model::{UNATTRIBUTED_USER, UserId};
use crate::operator::explain::local;
use crate::ports::{ConnectionStore, SyncQueue};
use crate::service::transition::{OutcomeKind, TransitionService};
use crate::state::{Notification, NotificationKind};

/// Ends our override through the transition service itself: the same claim → compare-and-set
/// → commit as a trigger's end, so it can never clobber a change someone made meanwhile.
pub async fn release(
    ops: &Operations,
    typed_user: &str,
    operator: Option<&str>,
    policy: Option<&std::path::Path>,
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, CliError> {
    let user = ops.user(typed_user).await?;
    let operator = match operator {
        Some(name) => name.to_owned(),
        None => caller_identity(ops).await?,
    };
    let operator = Operator::parse(&operator).map_err(|e| CliError::Usage(e.to_string()))?;
    let settings = TransitionSettings {
        table_name: ops.table()?.to_owned(),
        genesys_secret_id: setting(
            &ops.stack.genesys_secret_id,
            "--genesys-secret-id / GENESYS_SECRET_ID",
        )?
        .to_owned(),
        policy_path: policy.map(std::path::Path::to_path_buf),
        // An operator's release decides by the file given (else the built-in policy).
        policy_parameter: None,
        policy_refresh: Duration::from_secs(60),
        wfm_business_unit_ids: Vec::new(),
        audit_retention: Duration::from_secs(400 * 86_400),
        secret_cache: Duration::from_secs(300),
        idempotency_ttl: Duration::from_secs(86_400),
        shift_cache: Duration::from_secs(900),
        presence_fresh_for: Duration::from_secs(1),
    };
    let wired = wire(&ops.aws, &settings, Arc::clone(&ops.clock))
        .await
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let service = TransitionService::new(wired.deps);
    let outcome = service
        .release(&user, &operator, ops.deadline())
        .await
        .map_err(|e| CliError::Service(e.to_string()))?;
    if format == Format::Json {
        json(
            out,
            &json!({"userId": user, "operator": operator.0, "outcome": outcome}),
        )?;
    } else {
        let said = match outcome.decision {
            OutcomeKind::Restored => "released: the presence we set is restored",
            OutcomeKind::Skipped => "released: nothing was written",
            _ => "released",
        };
        writeln!(
            out,
            "{user}: {said} ({}); audited as {}",
            outcome.reason.as_deref().unwrap_or("no reason given"),
            operator.0
        )?;
    }
    Ok(Verdict::Fine)
}

/// Who is calling AWS: the name an operator action is audited under.
async fn caller_identity(ops: &Operations) -> Result<String, CliError> {
    let identity = aws_sdk_sts::Client::new(&ops.aws)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| {
            CliError::Service(format!(
                "who are you? STS GetCallerIdentity failed ({}); pass --operator NAME",
                aws_sdk_sts::error::DisplayErrorContext(&e)
            ))
        })?;
    identity
        .arn
        .ok_or_else(|| CliError::Service("STS gave no caller ARN; pass --operator NAME".into()))
}

pub async fn subscriptions(
    ops: &Operations,
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, CliError> {
    let mut connections = ops.connections()?.list().await?;
    connections.sort_by(|a, b| a.email.cmp(&b.email));
    if format == Format::Json {
        let listed: Vec<_> = connections
            .iter()
            .map(|c| {
                json!({
                    "userId": c.user_id,
                    "email": c.email,
                    "provider": c.provider,
                    "subscriptionId": c.subscription.as_ref().map(|s| &s.id),
                    "expiresAt": c.subscription.as_ref().map(|s| s.expires_at),
                    "lastSyncAt": c.last_sync_at,
                    "lastError": c.last_error,
                })
            })
            .collect();
        json(out, &listed)?;
        return Ok(Verdict::Fine);
    }
    let zone = ops.zone();
    let now = ops.now();
    let rows = connections.iter().map(|c| {
        let subscription = c.subscription.as_ref().map_or_else(
            || "none".to_owned(),
            |s| {
                let state = if s.expires_at <= now {
                    " (EXPIRED)"
                } else {
                    ""
                };
                format!(
                    "{} until {}{state}",
                    s.id,
                    s.expires_at
                        .with_timezone(&zone)
                        .format("%Y-%m-%d %H:%M %Z")
                )
            },
        );
        vec![
            c.email.clone(),
            c.user_id.to_string(),
            format!("{:?}", c.provider).to_lowercase(),
            subscription,
            or_dash(c.last_sync_at.map(|t| local(t, zone))),
            or_dash(c.last_error.as_deref()),
        ]
    });
    let headers = [
        "agent",
        "user id",
        "provider",
        "subscription",
        "last sync",
        "last error",
    ];
    writeln!(out, "{}", table(&headers, rows))?;
    writeln!(out, "{} connected agent(s)", connections.len())?;
    let failing = connections
        .iter()
        .filter(|c| c.last_error.is_some())
        .count();
    Ok(Verdict::by_problems(failing))
}

/// Queues a full calendar round for one agent (the sync worker takes it like any other).
pub async fn resync(
    ops: &Operations,
    typed_user: &str,
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, CliError> {
    let user = ops.user(typed_user).await?;
    if ops.connections()?.get(&user).await?.is_none() {
        return Err(CliError::Usage(format!(
            "{user} is not connected (not in the roster group, or upkeep has not run yet)"
        )));
    }
    let queue_url = setting(
        &ops.stack.sync_queue_url,
        "--sync-queue-url / SYNC_QUEUE_URL",
    )?;
    let queue = SqsSyncQueue::new(aws_sdk_sqs::Client::new(&ops.aws), queue_url);
    queue
        .enqueue(&[SyncRequest {
            user_id: user.clone(),
            reason: SyncReason::Resync,
        }])
        .await?;
    if format == Format::Json {
        json(out, &json!({"userId": user, "queued": "resync"}))?;
    } else {
        writeln!(out, "{user}: a full calendar round is queued")?;
    }
    Ok(Verdict::Fine)
}

/// One signed delivery of kind `test` through the same sender, signing and SSRF guard as
/// webhook-dispatch; exit 1 when the subscriber does not accept it.
pub async fn test_subscriber(
    ops: &Operations,
    name: &str,
    secret: &str,
    allow_loopback: bool,
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, CliError> {
    let secrets = secrets_manager_source(
        aws_sdk_secretsmanager::Client::new(&ops.aws),
        Arc::clone(&ops.clock),
        Duration::from_secs(1),
    );
    let config = SubscriberConfig::load(&secrets, secret).await?;
    let Some(subscriber) = config.webhooks.iter().find(|w| w.id.as_str() == name) else {
        let known: Vec<&str> = config.webhooks.iter().map(|w| w.id.as_str()).collect();
        return Err(CliError::Usage(format!(
            "no webhook subscriber {name:?}; the document has: {}",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )));
    };
    let user = UserId::parse(UNATTRIBUTED_USER).map_err(|e| CliError::Usage(e.to_string()))?;
    let now = ops.now();
    let notification = Notification::for_change(
        user,
        now,
        0,
        NotificationKind::Test,
        json!({"test": true, "sentBy": "autopilot subscribers test"}),
    );
    let http = GuardedHttp::new(
        UrlPolicy { allow_loopback },
        Arc::new(SystemResolver),
        HttpLimits::default(),
    );
    let started = std::time::Instant::now();
    let outcome = WebhookSender::new(http, Arc::clone(&ops.clock))
        .deliver(subscriber, &notification)
        .await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let (accepted, answer) = match &outcome {
        AttemptOutcome::Delivered { status } => (true, format!("accepted: HTTP {status}")),
        AttemptOutcome::Retryable { reason, .. } => {
            (false, format!("not accepted, would be retried: {reason}"))
        }
        AttemptOutcome::Permanent { reason } => (false, format!("refused for good: {reason}")),
        AttemptOutcome::Gone { reason } => {
            (false, format!("gone (410), would be disabled: {reason}"))
        }
    };
    if format == Format::Json {
        json(
            out,
            &json!({
                "subscriber": name,
                "notificationId": notification.notification_id,
                "accepted": accepted,
                "answer": answer,
                "ms": elapsed_ms,
            }),
        )?;
    } else {
        writeln!(
            out,
            "{name}: {answer} in {elapsed_ms} ms (webhook-id {})",
            notification.notification_id
        )?;
    }
    Ok(Verdict::by_problems(usize::from(!accepted)))
}
