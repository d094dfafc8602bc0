//! The Graph surface over real HTTP: the token endpoint, bearer checks, users, the access
//! policy, mailbox throttling and injected faults. calendarView delta is in `delta.rs`,
//! subscriptions and notifications in `notifications.rs`.

mod common;

use common::{Env, start};
use graph_sim::seed::{self, AGENT1, AGENT2, OUTSIDER};
use reqwest::Method;
use serde_json::{Value, json};

fn token_form<'a>(
    client: &'a str,
    secret: &'a str,
    scope: &'a str,
    grant: &'a str,
) -> [(&'static str, &'a str); 4] {
    [
        ("client_id", client),
        ("client_secret", secret),
        ("scope", scope),
        ("grant_type", grant),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_errors_name_the_problem_but_never_the_secret() {
    let env = start().await;
    let (id, secret, scope) = (seed::CLIENT_ID, seed::CLIENT_SECRET, seed::GRAPH_SCOPE);
    let other_tenant = "11111111-2222-3333-4444-555555555555";
    let cases = [
        (
            other_tenant,
            token_form(id, secret, scope, "client_credentials"),
            400,
            "invalid_request",
            "AADSTS90002: Tenant '11111111-2222-3333-4444-555555555555' not found.",
        ),
        (
            seed::TENANT_ID,
            token_form(id, secret, scope, "password"),
            400,
            "unsupported_grant_type",
            "AADSTS70003: ",
        ),
        (
            seed::TENANT_ID,
            token_form(id, secret, "Calendars.Read", "client_credentials"),
            400,
            "invalid_scope",
            "AADSTS1002012: ",
        ),
        (
            seed::TENANT_ID,
            token_form(id, "hunter2-wrong", scope, "client_credentials"),
            401,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        ),
        (
            seed::TENANT_ID,
            token_form("someone-else", secret, scope, "client_credentials"),
            401,
            "invalid_client",
            "AADSTS700016: ",
        ),
    ];
    for (tenant, form, status, error, prefix) in cases {
        let reply = env.token_reply(tenant, &form).await;
        assert_eq!(
            (reply.status, reply.body["error"].as_str()),
            (status, Some(error)),
            "{}",
            reply.body
        );
        let description = reply.body["error_description"]
            .as_str()
            .expect("description");
        assert!(description.starts_with(prefix), "{description}");
        assert!(
            !reply.body.to_string().contains(form[1].1),
            "the secret leaked: {}",
            reply.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_issued_for_the_graph_default_scope() {
    let env = start().await;
    let form = token_form(
        seed::CLIENT_ID,
        seed::CLIENT_SECRET,
        seed::GRAPH_SCOPE,
        "client_credentials",
    );
    let reply = env.token_reply(seed::TENANT_ID, &form).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 3599);
    assert_eq!(reply.body["ext_expires_in"], 3599);
    assert!(
        reply.body["access_token"]
            .as_str()
            .is_some_and(|t| t.len() > 40)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_calls_need_an_issued_unexpired_token() {
    let env = start().await;
    let path = format!("/v1.0/users/{AGENT1}");
    let reply = common::reply(
        env.http
            .get(format!("{}{path}", env.base))
            .send()
            .await
            .expect("call"),
    )
    .await;
    assert_eq!(
        reply.graph_error(401, "InvalidAuthenticationToken"),
        "Access token is empty."
    );

    let forged = env
        .http
        .get(format!("{}{path}", env.base))
        .header("authorization", "Bearer eyJ0eXAiOiJKV1QifQ.forged.token")
        .header("client-request-id", "my-client-request-id")
        .send()
        .await
        .expect("call");
    let reply = common::reply(forged).await;
    assert!(
        reply
            .graph_error(401, "InvalidAuthenticationToken")
            .contains("validation failed")
    );
    assert_eq!(
        reply.header("client-request-id"),
        Some("my-client-request-id")
    );
    assert_eq!(
        reply.body["error"]["innerError"]["client-request-id"],
        "my-client-request-id"
    );

    assert_eq!(env.get(&path).await.status, 200);
    env.control(
        Method::POST,
        "/sim/clock",
        Some(json!({"advance_seconds": 3600})),
    )
    .await;
    let reply = env.get(&path).await;
    assert!(
        reply
            .graph_error(401, "InvalidAuthenticationToken")
            .contains("validation failed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_resolve_by_id_and_upn_and_outsiders_are_forbidden() {
    let env = start().await;
    let reply = env.get("/v1.0/users/AGENT2@Contoso.Example").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["id"], AGENT2);
    assert_eq!(reply.body["userPrincipalName"], "agent2@contoso.example");
    assert_eq!(reply.body["mail"], "agent2@contoso.example");
    assert_eq!(reply.body["displayName"], "Agent 2");
    assert!(
        reply.body["@odata.context"]
            .as_str()
            .is_some_and(|c| c.ends_with("$metadata#users/$entity"))
    );
    assert!(reply.header("request-id").is_some());

    let reply = env.get("/v1.0/users/nobody@contoso.example").await;
    reply.graph_error(404, "Request_ResourceNotFound");

    // The directory lookup works for the outsider; its calendar does not.
    assert_eq!(
        env.get(&format!("/v1.0/users/{OUTSIDER}")).await.status,
        200
    );
    let reply = env.get(&env.delta_path(OUTSIDER)).await;
    assert_eq!(
        reply.graph_error(403, "ErrorAccessDenied"),
        "Access to OData is disabled."
    );
    let reply = env
        .subscribe("outsider@contoso.example", "http://127.0.0.1:9/hook", 60)
        .await;
    reply.graph_error(403, "ErrorAccessDenied");
}

async fn in_flight(env: &Env, user: &str) -> usize {
    for _ in 0..400 {
        let count = env
            .server
            .sim
            .lock()
            .in_flight
            .get(user)
            .copied()
            .unwrap_or(0);
        if count >= 4 {
            return count;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifth_concurrent_request_for_a_mailbox_is_throttled() {
    let env = std::sync::Arc::new(start().await);
    let fault =
        json!({"path_contains": "calendarView", "method": "GET", "count": 4, "delay_ms": 400});
    assert_eq!(
        env.control(Method::POST, "/sim/faults", Some(fault))
            .await
            .status,
        204
    );
    let held: Vec<_> = (0..4)
        .map(|_| {
            let env = env.clone();
            tokio::spawn(async move { env.get(&env.delta_path(AGENT1)).await.status })
        })
        .collect();
    assert_eq!(in_flight(&env, AGENT1).await, 4);

    let reply = env.get(&env.delta_path("agent1@contoso.example")).await;
    let message = reply.graph_error(429, "ApplicationThrottled");
    assert_eq!(message, "Application is over its MailboxConcurrency limit.");
    assert_eq!(reply.header("retry-after"), Some("1"));
    // Another mailbox is not affected.
    assert_eq!(env.get(&env.delta_path(AGENT2)).await.status, 200);
    for request in held {
        assert_eq!(request.await.expect("held request"), 200);
    }
    assert_eq!(env.get(&env.delta_path(AGENT1)).await.status, 200);

    let log = env.control(Method::GET, "/sim/requests", None).await;
    let throttled: Vec<&Value> = log
        .body
        .as_array()
        .expect("log")
        .iter()
        .filter(|r| r["status"] == 429)
        .collect();
    assert_eq!(throttled.len(), 1);
    assert_eq!(
        throttled[0]["mailbox"], AGENT1,
        "the UPN path is logged as the user id"
    );
    assert_eq!(
        throttled[0]["path"],
        format!("/v1.0/users/agent1@contoso.example/calendarView/delta")
    );
    assert!(
        throttled[0]["query"]
            .as_str()
            .is_some_and(|q| q.contains("startDateTime"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_answer_the_next_matching_requests() {
    let env = start().await;
    let fault =
        json!({"path_contains": "calendarview", "status": 429, "retry_after": 2, "count": 1});
    assert_eq!(
        env.control(Method::POST, "/sim/faults", Some(fault))
            .await
            .status,
        204
    );
    let fault = json!({"path_contains": "/users/", "method": "GET", "status": 503, "code": "ServiceNotAvailable", "count": 1});
    assert_eq!(
        env.control(Method::POST, "/sim/faults", Some(fault))
            .await
            .status,
        204
    );

    let reply = env.get(&env.delta_path(AGENT1)).await;
    reply.graph_error(429, "TooManyRequests");
    assert_eq!(reply.header("retry-after"), Some("2"));
    let reply = env.get(&format!("/v1.0/users/{AGENT1}")).await;
    reply.graph_error(503, "ServiceNotAvailable");
    assert_eq!(env.get(&env.delta_path(AGENT1)).await.status, 200);
    assert_eq!(
        env.control(Method::GET, "/sim/faults", None).await.body,
        json!([])
    );

    let fault = json!({"path_contains": "subscriptions", "status": 429, "count": 5});
    env.control(Method::POST, "/sim/faults", Some(fault)).await;
    let reply = env.get("/v1.0/subscriptions").await;
    assert_eq!(
        (reply.status, reply.header("retry-after")),
        (429, Some("1"))
    );
    assert_eq!(
        env.control(Method::DELETE, "/sim/faults", None)
            .await
            .status,
        204
    );
    assert_eq!(env.get("/v1.0/subscriptions").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_adds_users_and_moves_them_into_the_access_policy() {
    let env = start().await;
    let new = json!({"user_principal_name": "late@contoso.example", "allowed": false});
    let added = env.control(Method::POST, "/sim/users", Some(new)).await;
    assert_eq!(added.status, 201, "{}", added.body);
    let id = added.body["id"]
        .as_str()
        .expect("a generated id")
        .to_owned();
    assert_eq!(added.body["mail"], "late@contoso.example");
    assert_eq!(added.body["display_name"], "late");

    let user = env.get("/v1.0/users/late@contoso.example").await;
    assert_eq!(user.body["id"], id.as_str());
    env.get(&env.delta_path(&id))
        .await
        .graph_error(403, "ErrorAccessDenied");

    let change = json!({"user_principal_name": "LATE@contoso.example", "allowed": true});
    let updated = env.control(Method::POST, "/sim/users", Some(change)).await;
    assert_eq!(
        (updated.status, updated.body["id"].as_str()),
        (200, Some(id.as_str()))
    );
    assert_eq!(env.get(&env.delta_path(&id)).await.status, 200);
    env.get(&env.delta_path("ghost@contoso.example"))
        .await
        .graph_error(404, "ErrorInvalidUser");
}
