//! Secrets Manager behind the TTL cache, against moto: rotation, redaction, clear errors.

use std::sync::Arc;
use std::time::Duration;

use presence_autopilot::aws::secrets::secrets_manager_source;
use presence_autopilot::clock::SystemClock;
use presence_autopilot::genesys::GenesysCredentials;
use presence_autopilot::ports::{SecretError, SecretSource};
use secrecy::ExposeSecret;

use crate::support::moto;

const OLD: &str = "old-s3cret-7f9c2a";
const NEW: &str = "new-s3cret-41d0be";

fn genesys_json(secret: &str) -> String {
    serde_json::json!({
        "clientId": "client-1",
        "clientSecret": secret,
        "region": "mypurecloud.ie",
        "apiBaseUrl": "http://127.0.0.1:1"
    })
    .to_string()
}

#[tokio::test]
async fn rotation_shows_after_forced_refresh_and_the_value_is_never_in_debug_output() {
    let client = moto::secrets_manager();
    let name = moto::unique_name("genesys");
    client
        .create_secret()
        .name(&name)
        .secret_string(genesys_json(OLD))
        .send()
        .await
        .expect("create secret");
    let source = secrets_manager_source(
        client.clone(),
        Arc::new(SystemClock),
        Duration::from_secs(3600),
    );

    let before = GenesysCredentials::load(&source, &name)
        .await
        .expect("load");
    client
        .put_secret_value()
        .secret_id(&name)
        .secret_string(genesys_json(NEW))
        .send()
        .await
        .expect("rotate");
    let cached = GenesysCredentials::load(&source, &name)
        .await
        .expect("cached");
    let refreshed =
        GenesysCredentials::from_document(&source.force_refresh(&name).await.expect("refresh"))
            .expect("parse");

    assert_eq!(before.client_secret.expose_secret(), OLD);
    assert_eq!(
        cached.client_secret.expose_secret(),
        OLD,
        "served from the cache until refreshed"
    );
    assert_eq!(refreshed.client_secret.expose_secret(), NEW);
    assert_eq!(
        refreshed.api_base_url.as_deref(),
        Some("http://127.0.0.1:1")
    );
    let document = source.get(&name).await.expect("get");
    let shown = format!("{before:?} {refreshed:?} {document:?} {source:?}");
    assert!(!shown.contains(OLD) && !shown.contains(NEW), "{shown}");
    assert!(
        shown.contains("client-1"),
        "non-secret fields stay visible: {shown}"
    );
}

#[tokio::test]
async fn a_missing_secret_or_field_names_the_secret_and_field() {
    let client = moto::secrets_manager();
    let source = secrets_manager_source(
        client.clone(),
        Arc::new(SystemClock),
        Duration::from_secs(60),
    );
    let absent = moto::unique_name("absent");

    let missing = source.get(&absent).await.expect_err("missing");
    assert!(
        matches!(&missing, SecretError::Missing { secret } if *secret == absent),
        "{missing}"
    );

    let name = moto::unique_name("partial");
    client
        .create_secret()
        .name(&name)
        .secret_string(r#"{"clientId":"c","clientSecret":"p4ss-xyz","region":42}"#)
        .send()
        .await
        .expect("create");
    let err = GenesysCredentials::load(&source, &name)
        .await
        .expect_err("region is a number");

    assert_eq!(
        err.to_string(),
        format!("secret {name}: field region: expected a string, found a number")
    );
    assert!(!format!("{err:?}").contains("p4ss-xyz"));
}
