//! Subscriptions over real HTTP against a local webhook: the validation handshake (exact echo
//! of an awkward token), lifetime rules, renew/delete, change notifications with retries,
//! lifecycle notifications and expiry on the sim clock.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::{Env, Webhook, start, start_with};
use graph_sim::Seed;
use graph_sim::seed::{AGENT1, AGENT3};
use reqwest::Method;
use serde_json::{Value, json};

const VALIDATION_FAILED: &str = "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.";

fn expiration(body: &Value) -> DateTime<Utc> {
    let text = body["expirationDateTime"]
        .as_str()
        .expect("expirationDateTime");
    DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

fn in_minutes(minutes: i64) -> String {
    (Utc::now() + Duration::minutes(minutes)).to_rfc3339()
}

async fn create(env: &Env, body: Value) -> common::Reply {
    env.graph(Method::POST, "/v1.0/subscriptions", &[], Some(body))
        .await
}

/// A request for `AGENT1`'s events with both URLs on `hook`.
fn full_request(hook: &Webhook) -> Value {
    json!({
        "changeType": "created,updated,deleted",
        "notificationUrl": hook.url("/ok?tenant=t1"),
        "lifecycleNotificationUrl": hook.url("/ok-lifecycle"),
        "resource": format!("/users/{AGENT1}/events"),
        "expirationDateTime": in_minutes(4000),
        "clientState": "k3J9",
        "latestSupportedTlsVersion": "v1_2",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_needs_the_exact_decoded_token_on_both_urls() {
    let env = start().await;
    let hook = Webhook::start().await;
    let token = "Validation: a<b & c%d+e f";
    let reply = env
        .control(
            Method::POST,
            "/sim/validation-token",
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(reply.status, 204);

    let reply = create(&env, full_request(&hook)).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let seen = hook.seen();
    assert_eq!(seen.len(), 2);
    let query = seen[0].query.as_deref().expect("a query");
    assert_eq!(
        query,
        "tenant=t1&validationToken=Validation%3a+a%3cb+%26+c%25d%2be+f"
    );
    assert_eq!(seen[0].validation_token.as_deref(), Some(token));
    assert_eq!(seen[0].content_type, "text/plain; charset=utf-8");
    assert_eq!(seen[0].body, "");
    assert_eq!(seen[1].path, "/ok-lifecycle");
    assert_eq!(seen[1].validation_token.as_deref(), Some(token));

    let body = &reply.body;
    assert!(uuid::Uuid::parse_str(body["id"].as_str().expect("id")).is_ok());
    assert_eq!(body["resource"], format!("/users/{AGENT1}/events"));
    assert_eq!(body["applicationId"], graph_sim::seed::CLIENT_ID);
    assert_eq!(body["changeType"], "created,updated,deleted");
    assert_eq!(body["clientState"], "k3J9");
    assert_eq!(body["notificationUrl"], hook.url("/ok?tenant=t1"));
    assert_eq!(body["lifecycleNotificationUrl"], hook.url("/ok-lifecycle"));
    assert_eq!(body["includeResourceData"], false);
    assert_eq!(body["latestSupportedTlsVersion"], "v1_2");
    assert!(body["creatorId"].is_string());
    for field in [
        "encryptionCertificate",
        "encryptionCertificateId",
        "notificationUrlAppId",
    ] {
        assert!(body[field].is_null(), "{field}");
    }
    assert!(expiration(body) > Utc::now() + Duration::minutes(3990));

    // Back to Graph's own token.
    env.control(
        Method::POST,
        "/sim/validation-token",
        Some(json!({"token": null})),
    )
    .await;
    assert_eq!(
        env.subscribe(AGENT3, &hook.url("/ok"), 60).await.status,
        201
    );
    let default = hook.seen().last().and_then(|s| s.validation_token.clone());
    let prefix =
        "Validation: Testing client application reachability for subscription Request-Id: ";
    assert!(default.is_some_and(|t| t.starts_with(prefix)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_echo_or_an_unreachable_url_creates_nothing() {
    let env = start().await;
    let hook = Webhook::start().await;
    let mut wrong = full_request(&hook);
    wrong["notificationUrl"] = json!(hook.url("/wrong"));
    wrong["lifecycleNotificationUrl"] = Value::Null;
    let reply = create(&env, wrong).await;
    assert_eq!(reply.graph_error(400, "ValidationError"), VALIDATION_FAILED);

    let mut unreachable = full_request(&hook);
    unreachable["lifecycleNotificationUrl"] = json!("http://127.0.0.1:9/nobody-listens");
    create(&env, unreachable)
        .await
        .graph_error(400, "ValidationError");
    assert_eq!(
        env.get("/v1.0/subscriptions").await.body["value"],
        json!([])
    );
    assert_eq!(
        env.control(Method::GET, "/sim/subscriptions", None)
            .await
            .body,
        json!([])
    );

    let log = env.control(Method::GET, "/sim/deliveries", None).await;
    let log = log.body.as_array().expect("log");
    assert!(log.iter().all(|d| d["kind"] == "validation"));
    let statuses: Vec<&Value> = log.iter().map(|d| &d["status"]).collect();
    assert_eq!(statuses, [&json!(200), &json!(200), &Value::Null]);
    assert_eq!(
        log[0]["response_body"],
        format!("\"{}\"", log[0]["body"].as_str().expect("token"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handshake_fails() {
    let env = start_with(Seed {
        handshake_timeout_ms: 200,
        ..Seed::default()
    })
    .await;
    let hook = Webhook::start().await;
    let reply = env.subscribe(AGENT1, &hook.url("/slow"), 60).await;
    assert_eq!(reply.graph_error(400, "ValidationError"), VALIDATION_FAILED);
    let log = env.control(Method::GET, "/sim/deliveries", None).await;
    assert!(log.body[0]["status"].is_null(), "{}", log.body);
    assert!(
        log.body[0]["elapsed_ms"]
            .as_u64()
            .is_some_and(|ms| (150..1000).contains(&ms))
    );
}

fn short_request(hook: &Webhook, minutes: i64) -> Value {
    json!({
        "changeType": "updated", "notificationUrl": hook.url("/ok"),
        "resource": "users/agent1@contoso.example/events", "expirationDateTime": in_minutes(minutes),
        "clientState": "x",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_fields_are_named_and_the_lifetime_is_capped() {
    let env = start().await;
    let hook = Webhook::start().await;
    let broken = |field: &str, value: Value| {
        let mut body = short_request(&hook, 600);
        body[field] = value;
        body
    };
    for (field, value) in [
        ("notificationUrl", Value::Null),
        ("changeType", json!("created,moved")),
        ("resource", json!("users/x/messages")),
        ("clientState", json!("c".repeat(129))),
        ("expirationDateTime", json!("tomorrow")),
        ("notificationUrl", json!("ftp://example.test/hook")),
    ] {
        let reply = create(&env, broken(field, value)).await;
        let message = reply.graph_error(400, "InvalidRequest");
        assert!(message.contains(field), "{field}: {message}");
    }
    let past = create(&env, broken("expirationDateTime", json!(in_minutes(-1)))).await;
    past.graph_error(400, "InvalidRequest");
    let far = create(&env, broken("expirationDateTime", json!(in_minutes(4231)))).await;
    assert_eq!(
        far.graph_error(400, "InvalidRequest"),
        "Subscription expiration can only be 4230 minutes in the future."
    );
    assert!(
        hook.seen().is_empty(),
        "no handshake for an invalid request"
    );

    let short = create(&env, short_request(&hook, 10)).await;
    assert_eq!(short.status, 201, "{}", short.body);
    assert!(expiration(&short.body) >= Utc::now() + Duration::minutes(44));
    assert_eq!(
        short.body["resource"],
        "users/agent1@contoso.example/events"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_reauthorize_and_delete() {
    let env = start().await;
    let hook = Webhook::start().await;
    let created = create(&env, short_request(&hook, 600)).await;
    let path = format!(
        "/v1.0/subscriptions/{}",
        created.body["id"].as_str().expect("id")
    );

    let renew = json!({"expirationDateTime": in_minutes(2880)});
    let renewed = env.graph(Method::PATCH, &path, &[], Some(renew)).await;
    assert_eq!(renewed.status, 200, "{}", renewed.body);
    assert!(expiration(&renewed.body) > Utc::now() + Duration::minutes(2870));
    let too_far = json!({"expirationDateTime": in_minutes(5000)});
    let reply = env.graph(Method::PATCH, &path, &[], Some(too_far)).await;
    reply.graph_error(400, "InvalidRequest");
    let lifecycle =
        json!({"expirationDateTime": in_minutes(600), "lifecycleNotificationUrl": hook.url("/ok")});
    let reply = env.graph(Method::PATCH, &path, &[], Some(lifecycle)).await;
    assert!(
        reply
            .graph_error(400, "InvalidRequest")
            .contains("lifecycleNotificationUrl")
    );

    let reauthorize = env
        .graph(Method::POST, &format!("{path}/reauthorize"), &[], None)
        .await;
    assert_eq!(reauthorize.status, 200);
    let fetched = env.get(&path).await;
    assert_eq!(
        expiration(&fetched.body),
        expiration(&renewed.body),
        "reauthorize does not extend"
    );

    assert_eq!(
        env.graph(Method::DELETE, &path, &[], None).await.status,
        204
    );
    let gone = env.get(&path).await;
    assert_eq!(
        gone.graph_error(404, "ResourceNotFound"),
        "The object was not found."
    );
    env.graph(Method::DELETE, &path, &[], None)
        .await
        .graph_error(404, "ResourceNotFound");
    let renew = json!({"expirationDateTime": in_minutes(600)});
    let reply = env.graph(Method::PATCH, &path, &[], Some(renew)).await;
    reply.graph_error(404, "ResourceNotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_the_mailbox_limit_are_enforced_when_configured() {
    let seed = Seed {
        allow_http_notification_urls: false,
        max_subscriptions_per_mailbox: 1,
        ..Seed::default()
    };
    let env = start_with(seed).await;
    let hook = Webhook::start().await;
    let message = env
        .subscribe(AGENT1, &hook.url("/ok"), 60)
        .await
        .graph_error(400, "InvalidRequest");
    assert!(message.contains("https"), "{message}");

    env.server.sim.lock().seed.allow_http_notification_urls = true;
    assert_eq!(
        env.subscribe(AGENT1, &hook.url("/ok"), 60).await.status,
        201
    );
    env.subscribe(AGENT1, &hook.url("/ok"), 60)
        .await
        .graph_error(403, "ExtensionError");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_changes_are_notified_with_the_client_state() {
    let env = start().await;
    let hook = Webhook::start().await;
    let subscription = env.subscribe(AGENT1, &hook.url("/ok?tenant=t1"), 600).await;
    let subscription_id = subscription.body["id"].as_str().expect("id").to_owned();
    env.control(Method::DELETE, "/sim/deliveries", None).await;

    let event = env
        .create_event(
            AGENT1,
            "Call",
            "2026-03-18T09:00:00Z",
            "2026-03-18T09:30:00Z",
        )
        .await;
    let delivered = env.wait_deliveries(1, 5000).await;
    assert_eq!(delivered.status, 200, "{}", delivered.body);
    let attempt = &delivered.body[0];
    assert_eq!(
        (attempt["kind"].as_str(), attempt["status"].as_u64()),
        (Some("notification"), Some(202))
    );
    assert_eq!(attempt["subscription_id"], subscription_id.as_str());
    assert_eq!(attempt["attempt"], 1);

    let seen = hook.seen().pop().expect("a notification");
    assert_eq!(seen.content_type, "application/json; charset=utf-8");
    assert_eq!(seen.query.as_deref(), Some("tenant=t1"));
    let body: Value = serde_json::from_str(&seen.body).expect("JSON");
    let notification = &body["value"][0];
    assert_eq!(notification["clientState"], "secret-client-state");
    assert_eq!(notification["changeType"], "created");
    assert_eq!(notification["subscriptionId"], subscription_id.as_str());
    assert_eq!(notification["tenantId"], graph_sim::seed::TENANT_ID);
    assert_eq!(
        notification["resource"],
        format!("Users/{AGENT1}/Events/{event}")
    );
    assert_eq!(notification["resourceData"]["id"], event.as_str());
    assert_eq!(
        notification["resourceData"]["@odata.type"],
        "#Microsoft.Graph.Event"
    );
    assert!(notification["subscriptionExpirationDateTime"].is_string());

    let users = format!("/sim/users/{AGENT1}/events/{event}");
    env.control(Method::PATCH, &users, Some(json!({"showAs": "oof"})))
        .await;
    // Each change is delivered by its own task (Graph promises no order either): wait for the
    // update's delivery before the delete, so the log's order is the changes' order.
    env.wait_deliveries(2, 5000).await;
    env.control(Method::DELETE, &users, None).await;
    let delivered = env.wait_deliveries(3, 5000).await;
    let change_types: Vec<&Value> = delivered
        .body
        .as_array()
        .expect("log")
        .iter()
        .map(|d| &d["body"]["value"][0]["changeType"])
        .collect();
    assert_eq!(
        change_types,
        [&json!("created"), &json!("updated"), &json!("deleted")]
    );

    // Another user's changes are not sent to this subscription.
    env.create_event(
        AGENT3,
        "Elsewhere",
        "2026-03-18T09:00:00Z",
        "2026-03-18T09:30:00Z",
    )
    .await;
    assert_eq!(env.wait_deliveries(4, 300).await.status, 408);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_notifications_are_retried_then_dropped() {
    let env = start_with(Seed {
        delivery_retry_ms: vec![20, 40],
        ..Seed::default()
    })
    .await;
    let hook = Webhook::start().await;
    assert_eq!(
        env.subscribe(AGENT1, &hook.url("/fail"), 600).await.status,
        201
    );
    env.control(Method::DELETE, "/sim/deliveries", None).await;

    env.create_event(
        AGENT1,
        "Call",
        "2026-03-18T09:00:00Z",
        "2026-03-18T09:30:00Z",
    )
    .await;
    let delivered = env.wait_deliveries(3, 5000).await;
    assert_eq!(delivered.status, 200, "{}", delivered.body);
    let attempts: Vec<(u64, u64)> = delivered
        .body
        .as_array()
        .expect("log")
        .iter()
        .map(|d| {
            (
                d["attempt"].as_u64().expect("attempt"),
                d["status"].as_u64().expect("status"),
            )
        })
        .collect();
    assert_eq!(attempts, [(1, 500), (2, 500), (3, 500)]);
    assert_eq!(
        env.wait_deliveries(4, 200).await.status,
        408,
        "dropped after the last retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_notifications_and_forced_notifications() {
    let env = start().await;
    let hook = Webhook::start().await;
    let request = json!({
        "changeType": "created,updated,deleted", "notificationUrl": hook.url("/ok"),
        "lifecycleNotificationUrl": hook.url("/life"), "resource": format!("users/{AGENT1}/events"),
        "expirationDateTime": in_minutes(600), "clientState": "life-state",
    });
    let id = create(&env, request).await.body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    env.control(Method::DELETE, "/sim/deliveries", None).await;

    for (n, event) in ["reauthorizationRequired", "missed"]
        .into_iter()
        .enumerate()
    {
        let reply = env
            .control(
                Method::POST,
                &format!("/sim/subscriptions/{id}/lifecycle"),
                Some(json!({"event": event})),
            )
            .await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        let delivered = env.wait_deliveries(n + 1, 5000).await;
        let attempt = &delivered.body[n];
        assert_eq!(attempt["kind"], "lifecycle");
        assert_eq!(attempt["url"], hook.url("/life"));
        let item = &attempt["body"]["value"][0];
        assert_eq!(item["lifecycleEvent"], event);
        assert_eq!(
            (
                item["subscriptionId"].as_str(),
                item["clientState"].as_str()
            ),
            (Some(id.as_str()), Some("life-state"))
        );
        assert_eq!(item["tenantId"], graph_sim::seed::TENANT_ID);
    }
    let forced = env
        .control(
            Method::POST,
            &format!("/sim/subscriptions/{id}/notify"),
            None,
        )
        .await;
    assert_eq!(forced.status, 202);
    let delivered = env.wait_deliveries(3, 5000).await;
    assert_eq!(
        (
            delivered.body[2]["kind"].as_str(),
            delivered.body[2]["url"].as_str()
        ),
        (Some("notification"), Some(hook.url("/ok").as_str()))
    );

    let removed = json!({"event": "subscriptionRemoved"});
    env.control(
        Method::POST,
        &format!("/sim/subscriptions/{id}/lifecycle"),
        Some(removed),
    )
    .await;
    let delivered = env.wait_deliveries(4, 5000).await;
    assert_eq!(
        delivered.body[3]["body"]["value"][0]["lifecycleEvent"],
        "subscriptionRemoved"
    );
    env.get(&format!("/v1.0/subscriptions/{id}"))
        .await
        .graph_error(404, "ResourceNotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_expire_on_the_sim_clock() {
    let mut env = start().await;
    let hook = Webhook::start().await;
    let id = env.subscribe(AGENT1, &hook.url("/ok"), 60).await.body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    env.control(Method::DELETE, "/sim/deliveries", None).await;

    let now = env
        .control(
            Method::POST,
            "/sim/clock",
            Some(json!({"advance_seconds": 61 * 60})),
        )
        .await;
    let clock = env.control(Method::GET, "/sim/clock", None).await;
    assert_eq!(
        now.body["now"].as_str().map(|n| &n[..16]),
        clock.body["now"].as_str().map(|n| &n[..16])
    );
    // The access token (3599 s) expired with the clock too.
    env.bearer = format!("Bearer {}", env.token().await);

    env.get(&format!("/v1.0/subscriptions/{id}"))
        .await
        .graph_error(404, "ResourceNotFound");
    assert_eq!(
        env.get("/v1.0/subscriptions").await.body["value"],
        json!([])
    );
    let listed = env.control(Method::GET, "/sim/subscriptions", None).await;
    assert_eq!(listed.body[0]["id"], id.as_str());
    assert_eq!(listed.body[0]["expired"], true);

    env.create_event(
        AGENT1,
        "After expiry",
        "2026-03-18T09:00:00Z",
        "2026-03-18T09:30:00Z",
    )
    .await;
    assert_eq!(
        env.wait_deliveries(1, 300).await.status,
        408,
        "expired subscriptions get nothing"
    );
}
