//! Makes one real delivery (the production `WebhookSender`, signed with two secrets as during a
//! rotation) to the local receiver and prints what arrived as JSON, for the Python interop test
//! (tests/contract/test_webhook_interop.py) to verify with the official `standardwebhooks`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use peers::webhook::WebhookReceiver;
use presence_autopilot::clock::SystemClock;
use presence_autopilot::delivery::AttemptOutcome;
use presence_autopilot::delivery::http::{GuardedHttp, HttpLimits};
use presence_autopilot::delivery::ssrf::{SystemResolver, UrlPolicy};
use presence_autopilot::delivery::subscribers::WebhookSubscriber;
use presence_autopilot::delivery::webhook::WebhookSender;
use presence_autopilot::state::Notification;

const NEW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let receiver = WebhookReceiver::start(&[OLD_SECRET]).await?;
    let subscriber: WebhookSubscriber = serde_json::from_value(serde_json::json!({
        "id": "interop",
        "url": receiver.url(),
        "secrets": [NEW_SECRET, OLD_SECRET],
    }))?;
    let notification: Notification =
        serde_json::from_str(include_str!("../../../fixtures/notification-applied.json"))?;
    let sender = WebhookSender::new(
        GuardedHttp::new(
            UrlPolicy {
                allow_loopback: true,
            },
            Arc::new(SystemResolver),
            HttpLimits::default(),
        ),
        Arc::new(SystemClock),
    );

    let outcome = sender.deliver(&subscriber, &notification).await;
    anyhow::ensure!(
        matches!(outcome, AttemptOutcome::Delivered { .. }),
        "delivery failed: {outcome:?}"
    );
    let delivery = receiver
        .wait_for(1, Duration::from_secs(5))
        .await
        .into_iter()
        .next()
        .context("the receiver saw nothing")?;
    let out = serde_json::json!({
        "secrets": [NEW_SECRET, OLD_SECRET],
        "headers": delivery.headers,
        "body": String::from_utf8(delivery.body)?,
        "rustReceiverRejected": delivery.rejected,
    });
    println!("{out}");
    Ok(())
}
