//! The Genesys client against the simulator: tokens, retries, deadlines, errors, endpoints
//! and the presence compare-and-set.

use std::time::Duration;

use chrono::Utc;
use genesys_sim::seed::{
    self, DEMO_AGENTS, DEMO_BUSINESS_UNIT, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET,
};
use presence_autopilot::genesys::wire::{
    PresenceChange, ScheduleSearchOutcome, ScheduleSearchRequest,
};
use presence_autopilot::genesys::{CasOutcome, GenesysError};
use presence_autopilot::model::{
    ActivityCategory, PresenceDefinitionId, RoutingStatus, SystemPresence, UserId,
};
use serde_json::json;

use crate::support::sim::{SHORT_TOKEN_CLIENT, TestSim, deadline};

const DEMO: (&str, &str) = (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET);

fn ada() -> UserId {
    UserId::parse(DEMO_AGENTS[0].0).expect("seeded id")
}

fn presence_path(user: &UserId) -> String {
    format!("/api/v2/users/{user}/presences/purecloud")
}

fn definition(id: &str) -> PresenceDefinitionId {
    PresenceDefinitionId::parse(id).expect("seeded definition")
}

#[tokio::test]
async fn token_is_cached_then_refreshed_after_expiry() {
    let sim = TestSim::start().await;
    let (client, clock) = sim.client(SHORT_TOKEN_CLIENT);

    client
        .get_presence(&ada(), deadline(&clock, 10))
        .await
        .expect("first call");
    client
        .get_presence(&ada(), deadline(&clock, 10))
        .await
        .expect("second call");
    assert_eq!(
        sim.count_token_requests(),
        1,
        "the token is reused while fresh"
    );

    clock.advance(Duration::from_secs(301));
    sim.advance_clock(301).await;
    client
        .get_presence(&ada(), deadline(&clock, 10))
        .await
        .expect("call after expiry");

    assert_eq!(sim.count_token_requests(), 2);
    assert_eq!(
        sim.count_requests("GET", &presence_path(&ada())),
        3,
        "no call was refused"
    );
}

#[tokio::test]
async fn fifty_concurrent_calls_with_an_expired_token_make_one_token_request() {
    let sim = TestSim::start().await;
    let (client, clock) = sim.client(SHORT_TOKEN_CLIENT);
    client
        .get_presence(&ada(), deadline(&clock, 10))
        .await
        .expect("warm-up call");
    clock.advance(Duration::from_secs(301));
    sim.advance_clock(301).await;

    let user = ada();
    let calls = (0..50).map(|_| client.get_presence(&user, deadline(&clock, 10)));
    let results = futures::future::join_all(calls).await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(
        sim.count_token_requests(),
        2,
        "one for the warm-up, one for all fifty"
    );
}

#[tokio::test]
async fn rate_limited_call_waits_for_retry_after_then_succeeds() {
    let sim = TestSim::start().await;
    let (client, clock) = sim.client(DEMO);
    sim.inject_fault(
        json!({"method": "GET", "path": "/api/v2/users/*/presences/purecloud",
                            "count": 1, "kind": "status", "status": 429, "retryAfterSeconds": 2}),
    )
    .await;

    let snapshot = client
        .get_presence(&ada(), deadline(&clock, 30))
        .await
        .expect("succeeds after the wait");

    assert_eq!(snapshot.system_presence, SystemPresence::Available);
    let waits = clock.sleeps();
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert!(waits[0] >= Duration::from_secs(2), "waited {:?}", waits[0]);
    assert!(
        waits[0] <= Duration::from_millis(2200),
        "jitter stays small: {:?}",
        waits[0]
    );
    assert_eq!(sim.count_requests("GET", &presence_path(&ada())), 2);
}

#[tokio::test]
async fn deadline_shorter_than_retry_after_fails_fast() {
    let sim = TestSim::start().await;
    let (client, clock) = sim.client(DEMO);
    sim.inject_fault(json!({"path": "/api/v2/users/*/presences/purecloud",
                            "count": 1, "kind": "status", "status": 429, "retryAfterSeconds": 2}))
        .await;

    let error = client
        .get_presence(&ada(), deadline(&clock, 1))
        .await
        .expect_err("no time to wait");

    assert!(
        matches!(&error, GenesysError::RateLimited { retry_after, correlation_id: Some(_) } if *retry_after == Duration::from_secs(2)),
        "{error:?}"
    );
    assert!(clock.sleeps().is_empty(), "did not wait");
    assert_eq!(sim.count_requests("GET", &presence_path(&ada())), 1);
}

#[tokio::test]
async fn server_errors_502_to_504_are_retried_but_500_and_other_4xx_are_not() {
    let sim = TestSim::start().await;
    let (client, clock) = sim.client(DEMO);
    let path = presence_path(&ada());
    sim.inject_fault(json!({"path": path, "count": 1, "kind": "status", "status": 503}))
        .await;
    sim.inject_fault(json!({"path": path, "count": 1, "kind": "status", "status": 502}))
        .await;

    client
        .get_presence(&ada(), deadline(&clock, 30))
        .await
        .expect("retried through 503 and 502");
    assert_eq!(sim.count_requests("GET", &path), 3);

    sim.inject_fault(json!({"path": path, "count": 1, "kind": "status", "status": 500}))
        .await;
    let error = client
        .get_presence(&ada(), deadline(&clock, 30))
        .await
        .expect_err("500 is final");
    assert!(
        matches!(error, GenesysError::Server { status: 500, .. }),
        "{error:?}"
    );
    assert_eq!(sim.count_requests("GET", &path), 4);

    let change = PresenceChange::to(&definition("not-a-definition"), None);
    let error = client
        .patch_presence(&ada(), &change, deadline(&clock, 30))
        .await
        .expect_err("bad id");
    assert!(
        matches!(&error, GenesysError::BadRequest { status: 400, code, message, .. }
                 if code == "invalid.value" && message.contains("presenceDefinition.id")),
        "{error:?}"
    );
    assert_eq!(
        sim.count_requests("PATCH", &path),
        1,
        "a 400 is not retried"
    );
}

#[tokio::test]
async fn retries_stop_after_the_configured_attempts() {
    let sim = TestSim::start().await;
    let (client, clock) = sim.client(DEMO);
    let path = presence_path(&ada());
    sim.inject_fault(json!({"path": path, "count": 10, "kind": "status", "status": 503}))
        .await;

    let error = client
        .get_presence(&ada(), deadline(&clock, 60))
        .await
        .expect_err("keeps failing");

    assert!(
        matches!(error, GenesysError::Server { status: 503, .. }),
        "{error:?}"
    );
    assert_eq!(
        sim.count_requests("GET", &path),
        4,
        "default policy: 4 attempts"
    );
}

#[tokio::test]
async fn revoked_token_is_replaced_once_and_a_persistent_401_fails() {
    let sim = TestSim::start().await;
    let (client, clock) = sim.client(DEMO);
    client
        .get_presence(&ada(), deadline(&clock, 10))
        .await
        .expect("first call");
    sim.control(reqwest::Method::DELETE, "/sim/tokens", json!({}))
        .await;

    client
        .get_presence(&ada(), deadline(&clock, 10))
        .await
        .expect("re-authenticates");
    assert_eq!(sim.count_token_requests(), 2);

    let path = presence_path(&ada());
    sim.inject_fault(json!({"path": path, "count": 5, "kind": "status", "status": 401}))
        .await;
    let error = client
        .get_presence(&ada(), deadline(&clock, 10))
        .await
        .expect_err("still refused");
    assert!(
        matches!(error, GenesysError::Unauthorized { .. }),
        "{error:?}"
    );
    assert_eq!(
        sim.count_token_requests(),
        3,
        "exactly one re-authentication"
    );
    // 1 first call, 2 around the revocation (refused, then with the new token), 2 refused now.
    assert_eq!(sim.count_requests("GET", &path), 5);
}

#[tokio::test]
async fn forbidden_names_the_missing_permission() {
    let sim = TestSim::start().await;
    let (client, clock) = sim.client(("readonly-client", "readonly-secret"));

    let change = PresenceChange::to(&definition(seed::MEETING), None);
    let error = client
        .patch_presence(&ada(), &change, deadline(&clock, 10))
        .await
        .expect_err("403");

    assert!(
        matches!(&error, GenesysError::Forbidden { permission, correlation_id: Some(_) } if permission == "presence:userPresence:edit"),
        "{error:?}"
    );
    assert!(
        sim.server.sim.lock().mutations.is_empty(),
        "nothing was changed"
    );
}

#[tokio::test]
async fn token_errors_are_reported_with_the_oauth_error_code() {
    let sim = TestSim::start().await;
    let (wrong_secret, clock) = sim.client((DEMO_CLIENT_ID, "wrong"));
    let error = wrong_secret
        .get_presence(&ada(), deadline(&clock, 10))
        .await
        .expect_err("bad secret");
    assert!(
        matches!(&error, GenesysError::Token { error, .. } if error == "invalid_client"),
        "{error:?}"
    );
    assert_eq!(
        sim.count_token_requests(),
        2,
        "one retry with reloaded credentials"
    );

    let (code_grant, clock) = sim.client(("code-grant-client", "code-grant-secret"));
    let error = code_grant
        .get_presence(&ada(), deadline(&clock, 10))
        .await
        .expect_err("wrong grant");
    assert!(
        matches!(&error, GenesysError::Token { error, .. } if error == "unauthorized_client"),
        "{error:?}"
    );
}

#[tokio::test]
async fn compare_and_set_applies_when_unchanged_and_refuses_after_someone_else_changed_it() {
    let sim = TestSim::start().await;
    let (client, clock) = sim.client(DEMO);
    let user = ada();
    let seen = client
        .get_presence(&user, deadline(&clock, 10))
        .await
        .expect("read");

    let to_meeting =
        PresenceChange::to(&definition(seed::MEETING), Some("In a meeting".to_owned()));
    let from = sim.served();
    let outcome = client
        .compare_and_set_presence(
            &user,
            &seen.tag(),
            &to_meeting,
            Some(&seen),
            deadline(&clock, 10),
        )
        .await
        .expect("cas");
    assert_eq!(
        sim.served_since(from),
        vec!["PATCH /api/v2/users/{id}/presences/purecloud"],
        "a snapshot just read stands for the re-read"
    );
    let CasOutcome::Applied { before, after } = outcome else {
        panic!("expected Applied, got {outcome:?}")
    };
    assert_eq!(before, seen);
    assert_eq!(after.system_presence, SystemPresence::Meeting);
    assert_eq!(after.message, "In a meeting");

    // The agent picks Busy by hand while the meeting runs.
    sim.set_presence_as(user.as_str(), "Busy", "agent").await;
    let restore = PresenceChange::to(&seen.definition_id, Some(String::new()));
    let outcome = client
        .compare_and_set_presence(&user, &after.tag(), &restore, None, deadline(&clock, 10))
        .await
        .expect("cas");

    let CasOutcome::Refused { current } = outcome else {
        panic!("expected Refused, got {outcome:?}")
    };
    assert_eq!(current.system_presence, SystemPresence::Busy);
    let mutations = sim.server.sim.lock().mutations.clone();
    let callers: Vec<&str> = mutations.iter().map(|m| m.caller.as_str()).collect();
    assert_eq!(
        callers,
        vec![DEMO_CLIENT_ID, "control:agent"],
        "the refused restore wrote nothing"
    );
}

#[tokio::test]
async fn bulk_calls_are_chunked_by_fifty() {
    let sim = TestSim::start().await;
    let mut users = Vec::new();
    for index in 0..120 {
        let id = format!("00000000-0000-4000-8000-{index:012}");
        sim.control(
            reqwest::Method::POST,
            "/sim/users",
            json!({"id": id, "name": format!("Agent {index}"), "email": format!("agent{index}@example.com")}),
        )
        .await;
        users.push(UserId::parse(&id).expect("uuid"));
    }
    let (client, clock) = sim.client(DEMO);

    let presences = client
        .bulk_get_presences(&users, deadline(&clock, 30))
        .await
        .expect("bulk get");
    assert_eq!(presences.len(), 120);
    assert_eq!(
        sim.count_requests("GET", "/api/v2/users/presences/purecloud/bulk"),
        3
    );

    let changes: Vec<_> = users
        .iter()
        .map(|u| {
            (
                u.clone(),
                PresenceChange::to(&definition(seed::MEETING), None),
            )
        })
        .collect();
    let applied = client
        .bulk_put_presences(&changes, deadline(&clock, 30))
        .await
        .expect("bulk put");
    assert_eq!(applied.len(), 120);
    assert!(
        applied
            .iter()
            .all(|(_, s)| s.system_presence == SystemPresence::Meeting)
    );
    assert_eq!(applied[119].0, users[119]);
    assert_eq!(sim.count_requests("PUT", "/api/v2/users/presences/bulk"), 3);
}

#[tokio::test]
async fn lookups_return_the_seeded_world() {
    let sim = TestSim::start().await;
    let (client, clock) = sim.client(DEMO);
    let d = || deadline(&clock, 10);

    let user = client
        .find_user_by_email("ADA@example.com", d())
        .await
        .expect("search")
        .expect("found");
    assert_eq!(user.id, DEMO_AGENTS[0].0);
    assert!(
        client
            .find_user_by_email("nobody@example.com", d())
            .await
            .expect("search")
            .is_none()
    );

    let definitions = client.presence_definitions(d()).await.expect("definitions");
    let on_queue = definitions
        .iter()
        .find(|x| x.id == seed::ON_QUEUE)
        .expect("On Queue");
    assert_eq!(on_queue.system_presence, SystemPresence::OnQueue);
    let focus = definitions
        .iter()
        .find(|x| x.id == seed::FOCUS_TIME)
        .expect("secondary presence");
    assert_eq!(
        (focus.label().as_str(), focus.is_primary()),
        ("Focus Time", false)
    );

    sim.control(
        reqwest::Method::PUT,
        &format!("/sim/users/{}/routingstatus", ada()),
        json!({"status": "INTERACTING"}),
    )
    .await;
    let routing = client.routing_status(&ada(), d()).await.expect("routing");
    assert!(routing.status.is_on_interaction());
    let dee = UserId::parse(DEMO_AGENTS[3].0).expect("uuid");
    assert_eq!(
        client
            .routing_status(&dee, d())
            .await
            .expect("routing")
            .status,
        RoutingStatus::OffQueue
    );

    let unit = client
        .agent_management_unit(&ada(), d())
        .await
        .expect("management unit");
    assert_eq!(unit.business_unit_id, DEMO_BUSINESS_UNIT);
    let error = client
        .agent_management_unit(&dee, d())
        .await
        .expect_err("not in WFM");
    assert!(matches!(error, GenesysError::NotFound { .. }), "{error:?}");

    let codes = client
        .activity_codes(DEMO_BUSINESS_UNIT, d())
        .await
        .expect("codes");
    assert_eq!(codes.len(), 8);
    assert!(
        codes
            .iter()
            .any(|c| c.id == "3" && c.category == ActivityCategory::Meeting)
    );

    let now = Utc::now();
    let request = ScheduleSearchRequest {
        start_date: now - chrono::Duration::hours(12),
        end_date: now + chrono::Duration::hours(12),
        user_ids: vec![ada().to_string()],
    };
    let ScheduleSearchOutcome::Complete(result) = client
        .search_schedules(DEMO_BUSINESS_UNIT, &request, d())
        .await
        .expect("search")
    else {
        panic!("expected a complete search");
    };
    let shift = &result.agent_schedules[0].shifts[0];
    let current = shift
        .activities
        .iter()
        .find(|a| a.covers(now))
        .expect("an activity covers now");
    assert_eq!(current.activity_code_id, "3", "the seeded meeting block");

    sim.control(
        reqwest::Method::PUT,
        &format!("/sim/businessunits/{DEMO_BUSINESS_UNIT}/schedulesearch"),
        json!({"mode": "processing"}),
    )
    .await;
    let outcome = client
        .search_schedules(DEMO_BUSINESS_UNIT, &request, d())
        .await
        .expect("search");
    assert!(
        matches!(
            outcome,
            ScheduleSearchOutcome::Processing {
                operation_id: Some(_)
            }
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn credentials_and_tokens_never_show_in_debug_output() {
    let sim = TestSim::start().await;
    let (client, clock) = sim.client(DEMO);
    client
        .get_presence(&ada(), deadline(&clock, 10))
        .await
        .expect("call");
    let issued: Vec<String> = sim.server.sim.lock().tokens.keys().cloned().collect();

    let debug = format!("{client:?}");

    assert!(!debug.contains(DEMO_CLIENT_SECRET), "{debug}");
    assert!(
        issued.iter().all(|token| !debug.contains(token.as_str())),
        "{debug}"
    );
}
