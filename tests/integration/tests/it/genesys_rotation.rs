//! Credential rotation end to end: the client secret changes in Secrets Manager (moto) and in
//! Genesys (the simulator); the next call's 401 forces a secret refresh and succeeds.

use std::sync::Arc;
use std::time::Duration;

use genesys_sim::seed::{AUTOPILOT_PERMISSIONS, DEMO_AGENTS};
use presence_autopilot::aws::secrets::secrets_manager_source;
use presence_autopilot::clock::{Deadline, SystemClock};
use presence_autopilot::genesys::GenesysSecretCredentials;
use presence_autopilot::genesys::{GenesysClient, GenesysConfig, GenesysHosts};
use presence_autopilot::model::UserId;
use serde_json::json;

use crate::support::moto;
use crate::support::sim::TestSim;

const CLIENT_ID: &str = "rotating-client";

fn secret_json(secret: &str, base_url: &str) -> String {
    json!({"clientId": CLIENT_ID, "clientSecret": secret, "region": "mypurecloud.com", "apiBaseUrl": base_url}).to_string()
}

async fn set_client_secret(sim: &TestSim, secret: &str) {
    let permissions: Vec<&str> = AUTOPILOT_PERMISSIONS.to_vec();
    sim.control(
        reqwest::Method::POST,
        "/sim/clients",
        json!({"clientId": CLIENT_ID, "clientSecret": secret, "permissions": permissions}),
    )
    .await;
}

#[tokio::test]
async fn a_rotated_client_secret_is_picked_up_after_one_401() {
    let sim = TestSim::start().await;
    set_client_secret(&sim, "first-secret-9d2").await;
    let secrets = moto::secrets_manager();
    let name = moto::unique_name("genesys-rotation");
    secrets
        .create_secret()
        .name(&name)
        .secret_string(secret_json("first-secret-9d2", &sim.server.base_url()))
        .send()
        .await
        .expect("create secret");
    let clock = Arc::new(SystemClock);
    let source = Arc::new(secrets_manager_source(
        secrets.clone(),
        clock.clone(),
        Duration::from_secs(3600),
    ));
    let client = GenesysClient::new(
        GenesysConfig::new(GenesysHosts::single_base(&sim.server.base_url()).expect("url")),
        Arc::new(GenesysSecretCredentials::new(source, &name)),
        clock.clone(),
    )
    .expect("client");
    let user = UserId::parse(DEMO_AGENTS[0].0).expect("uuid");
    let deadline = || Deadline::after(clock.as_ref(), Duration::from_secs(10));
    client
        .get_presence(&user, deadline())
        .await
        .expect("works with the first secret");

    // Rotation: Genesys gets the new secret and revokes old tokens; Secrets Manager follows.
    set_client_secret(&sim, "second-secret-4c7").await;
    sim.control(reqwest::Method::DELETE, "/sim/tokens", json!({}))
        .await;
    secrets
        .put_secret_value()
        .secret_id(&name)
        .secret_string(secret_json("second-secret-4c7", &sim.server.base_url()))
        .send()
        .await
        .expect("rotate");

    client
        .get_presence(&user, deadline())
        .await
        .expect("works after the rotation");

    let statuses: Vec<u16> = sim
        .server
        .sim
        .lock()
        .requests
        .iter()
        .filter(|r| r.path == "/oauth/token")
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses,
        vec![200, 200],
        "the forced refresh read the new secret at once"
    );
    assert_eq!(
        sim.count_requests("GET", &format!("/api/v2/users/{user}/presences/purecloud")),
        3
    );
}
