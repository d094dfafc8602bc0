//! A TTL cache of JSON secrets over any fetcher (on the injected clock); the values stay
//! wrapped as `SecretString`.
//!
//! The cache is hand-written rather than `moka`: moka expires entries on its own monotonic clock,
//! which the `Clock` port cannot drive, so TTL behaviour could only be tested by sleeping.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::ports::{SecretError, SecretSource};

use crate::ports::SecretDocument;

pub use crate::ports::SecretFetcher;

/// A fetched secret and when it was fetched.
type CachedSecret = (Arc<SecretDocument>, DateTime<Utc>);

/// A `SecretSource` that keeps each secret for `ttl` (on the injected clock).
pub struct SecretCache<F> {
    fetcher: F,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    // A tokio mutex held across the fetch: concurrent cold reads of one secret wait for the
    // first fetch instead of each calling Secrets Manager.
    entries: tokio::sync::Mutex<HashMap<String, CachedSecret>>,
}

impl<F: fmt::Debug> fmt::Debug for SecretCache<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretCache")
            .field("fetcher", &self.fetcher)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<F: SecretFetcher> SecretCache<F> {
    /// Secrets Manager's own caching client refreshes hourly; rotation is caught earlier by
    /// `force_refresh` on a 401, so a long TTL is safe.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

    pub fn new(fetcher: F, clock: Arc<dyn Clock>, ttl: Duration) -> Self {
        Self {
            fetcher,
            clock,
            ttl,
            entries: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn fetcher(&self) -> &F {
        &self.fetcher
    }

    async fn load(&self, name: &str, force: bool) -> Result<Arc<SecretDocument>, SecretError> {
        let mut entries = self.entries.lock().await;
        let now = self.clock.now();
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::MAX);
        if !force
            && let Some((doc, fetched_at)) = entries.get(name)
            && now < *fetched_at + ttl
        {
            return Ok(Arc::clone(doc));
        }
        let doc = Arc::new(SecretDocument::parse(
            name,
            self.fetcher.fetch(name).await?,
        )?);
        entries.insert(name.to_owned(), (Arc::clone(&doc), now));
        Ok(doc)
    }
}

#[async_trait]
impl<F: SecretFetcher> SecretSource for SecretCache<F> {
    async fn get(&self, name: &str) -> Result<Arc<SecretDocument>, SecretError> {
        self.load(name, false).await
    }

    async fn force_refresh(&self, name: &str) -> Result<Arc<SecretDocument>, SecretError> {
        self.load(name, true).await
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use secrecy::ExposeSecret;

    use crate::genesys::GenesysCredentials;
    use std::sync::Mutex;

    use super::*;
    use crate::clock::ManualClock;

    #[derive(Debug, Default)]
    struct Counting {
        value: Mutex<String>,
        calls: Mutex<u32>,
    }

    #[async_trait]
    impl SecretFetcher for Counting {
        async fn fetch(&self, name: &str) -> Result<SecretString, SecretError> {
            *self.calls.lock().expect("lock") += 1;
            let value = self.value.lock().expect("lock").clone();
            if value.is_empty() {
                return Err(SecretError::Missing {
                    secret: name.to_owned(),
                });
            }
            Ok(SecretString::from(value))
        }
    }

    fn clock() -> ManualClock {
        ManualClock::starting_at(DateTime::from_timestamp(1_770_000_000, 0).expect("time"))
    }

    fn genesys_json(secret: &str) -> String {
        format!(r#"{{"clientId":"cid","clientSecret":"{secret}","region":"mypurecloud.de"}}"#)
    }

    #[tokio::test]
    async fn cache_serves_until_ttl_then_refetches_and_force_refresh_bypasses_it() {
        let clock = clock();
        let fetcher = Counting::default();
        *fetcher.value.lock().expect("lock") = genesys_json("s3cr3t-one");
        let cache = SecretCache::new(fetcher, Arc::new(clock.clone()), Duration::from_secs(60));

        cache.get("g").await.expect("first");
        cache.get("g").await.expect("cached");
        assert_eq!(*cache.fetcher().calls.lock().expect("lock"), 1);

        *cache.fetcher().value.lock().expect("lock") = genesys_json("s3cr3t-two");
        let forced = cache.force_refresh("g").await.expect("forced");
        assert_eq!(
            GenesysCredentials::from_document(&forced)
                .expect("creds")
                .client_secret
                .expose_secret(),
            "s3cr3t-two"
        );

        clock.advance(Duration::from_secs(59));
        cache.get("g").await.expect("still fresh");
        assert_eq!(*cache.fetcher().calls.lock().expect("lock"), 2);
        clock.advance(Duration::from_secs(1));
        cache.get("g").await.expect("expired");
        assert_eq!(*cache.fetcher().calls.lock().expect("lock"), 3);
    }

    #[test]
    fn credentials_parse_and_debug_redacts() {
        let doc = SecretDocument::parse("genesys", SecretString::from(genesys_json("hunter2")))
            .expect("valid");
        let creds = GenesysCredentials::from_document(&doc).expect("valid");

        assert_eq!(creds.region, "mypurecloud.de");
        assert_eq!(creds.api_base_url, None);
        assert!(!format!("{creds:?}").contains("hunter2"));
        assert!(!format!("{doc:?}").contains("hunter2"));
    }

    #[test]
    fn deserialize_errors_never_quote_the_value() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Shape {
            tokens: std::collections::BTreeMap<String, u32>,
        }
        let doc = SecretDocument::parse(
            "subscribers",
            SecretString::from(r#"{"tokens":{"a":"xoxp-hunter2"}}"#),
        )
        .expect("valid json");

        let err = doc.deserialize::<Shape>().expect_err("ill-typed");

        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("subscribers") && shown.contains("expected u32"),
            "{shown}"
        );
    }

    #[test]
    fn missing_and_ill_typed_fields_name_secret_and_field_without_the_value() {
        let doc = SecretDocument::parse(
            "genesys",
            SecretString::from(r#"{"clientId":"cid","clientSecret":12345678,"region":"r"}"#),
        )
        .expect("valid json");
        let err = GenesysCredentials::from_document(&doc).expect_err("ill-typed");
        let shown = format!("{err} {err:?}");
        assert!(
            shown.contains("genesys") && shown.contains("clientSecret"),
            "{shown}"
        );
        assert!(shown.contains("expected a string"), "{shown}");
        assert!(!shown.contains("12345678"), "{shown}");

        let doc = SecretDocument::parse("genesys", SecretString::from(r#"{"clientId":"c"}"#))
            .expect("valid json");
        let err = GenesysCredentials::from_document(&doc).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "secret genesys: field clientSecret: missing"
        );

        let err = SecretDocument::parse("genesys", SecretString::from("not json pw=hunter2"))
            .expect_err("not json");
        assert!(!format!("{err} {err:?}").contains("hunter2"));
    }
}
