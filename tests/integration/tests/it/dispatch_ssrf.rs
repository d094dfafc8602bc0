//! The SSRF guard end to end: every refused URL is audited with a clear reason, the record is
//! parked (a permanent failure), and the loopback listener behind it never sees a connection.

use std::time::Duration;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use peers::listener::SilentListener;
use peers::webhook::{Reply, WebhookReceiver};
use presence_autopilot::state::{DecisionKind, NotificationKind};
use serde_json::json;

use crate::support::dispatch::{ADA, Harness, Options, SECRET, notification};

/// Sends one notification to a single webhook at `url`; returns the audited reason.
async fn refused_reason(harness: &Harness, sequence: u64) -> String {
    let change = notification(ADA, sequence, NotificationKind::PresenceApplied, None);
    let mut message = SqsMessage::default();
    message.message_id = Some(format!("m-{sequence}"));
    message.body = Some(serde_json::to_string(&change).expect("json"));
    let mut event = SqsEvent::default();
    event.records = vec![message];

    let failures = harness.invoke(event).await;

    assert_eq!(
        failures,
        vec![format!("m-{sequence}")],
        "a refusal fails the record"
    );
    let audit = harness.audit(ADA).await;
    let record = audit
        .iter()
        .find(|r| r.event_id.as_deref() == Some(change.notification_id.to_string().as_str()))
        .expect("audited");
    assert_eq!(record.kind, DecisionKind::DeliveryParked);
    record.reason.clone().unwrap_or_default()
}

async fn harness_for(url: &str, allow_loopback_http: bool) -> Harness {
    Harness::start(
        Options {
            allow_loopback_http,
            ..Options::default()
        },
        json!({"webhooks": [{"id": "target", "url": url, "secrets": [SECRET]}]}),
    )
    .await
}

#[tokio::test(flavor = "current_thread")]
async fn private_loopback_metadata_and_mapped_addresses_are_refused_without_connecting() {
    let listener = SilentListener::start().expect("listener");
    let port = listener.port();
    let cases = [
        (
            format!("http://127.0.0.1:{port}/hook"),
            "refused: plain http is allowed only to loopback with ALLOW_LOOPBACK_HTTP set".to_owned(),
        ),
        (
            format!("https://127.0.0.1:{port}/hook"),
            "refused: host 127.0.0.1 resolves to 127.0.0.1, a loopback address".to_owned(),
        ),
        (
            "https://10.0.0.1/hook".to_owned(),
            "refused: host 10.0.0.1 resolves to 10.0.0.1, a private (RFC 1918) address".to_owned(),
        ),
        (
            "https://169.254.169.254/latest/meta-data/iam/security-credentials/".to_owned(),
            "refused: host 169.254.169.254 resolves to 169.254.169.254, a cloud metadata address"
                .to_owned(),
        ),
        (
            "https://[fd00:ec2::254]/latest/meta-data/".to_owned(),
            "refused: host [fd00:ec2::254] resolves to fd00:ec2::254, a cloud metadata address"
                .to_owned(),
        ),
        (
            format!("https://[::ffff:127.0.0.1]:{port}/hook"),
            "refused: host [::ffff:7f00:1] resolves to ::ffff:127.0.0.1, a loopback address (embedded in IPv6)"
                .to_owned(),
        ),
    ];
    for (sequence, (url, expected)) in (1..).zip(cases) {
        let harness = harness_for(&url, false).await;
        let reason = refused_reason(&harness, sequence).await;
        assert_eq!(reason, expected, "{url}");
    }
    assert_eq!(listener.connections(), 0, "nothing ever connected");
}

#[tokio::test(flavor = "current_thread")]
async fn localhost_is_refused_by_name_without_resolving_or_connecting() {
    let listener = SilentListener::start().expect("listener");
    let harness = harness_for(
        &format!("https://localhost:{}/hook", listener.port()),
        false,
    )
    .await;

    let reason = refused_reason(&harness, 1).await;

    // RFC 6761: localhost is this machine whatever a resolver says, so it is not even looked up.
    assert_eq!(
        reason,
        "refused: host localhost is a localhost name (RFC 6761), refused without resolving it"
    );
    assert_eq!(listener.connections(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_redirect_is_never_followed() {
    let listener = SilentListener::start().expect("listener");
    let receiver = WebhookReceiver::start(&[SECRET]).await.expect("receiver");
    receiver.script([
        Reply::Redirect(format!("http://127.0.0.1:{}/internal", listener.port())),
        Reply::Redirect("http://10.0.0.1/admin".to_owned()),
    ]);
    // Loopback allowed so the (loopback) receiver is reachable; its redirects still are not.
    let harness = harness_for(&receiver.url(), true).await;

    let to_loopback = refused_reason(&harness, 1).await;
    let to_private = refused_reason(&harness, 2).await;

    assert_eq!(to_loopback, "HTTP 302: redirect to 127.0.0.1 not followed");
    assert_eq!(to_private, "HTTP 302: redirect to 10.0.0.1 not followed");
    assert_eq!(receiver.wait_for(2, Duration::from_secs(1)).await.len(), 2);
    assert_eq!(
        listener.connections(),
        0,
        "the redirect target never saw a connection"
    );
}
