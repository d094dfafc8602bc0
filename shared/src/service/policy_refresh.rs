//! The policy changed without a redeploy: each function that decides reads the stored policy
//! at cold start and looks again every `every` (at the start of an invocation, so no timer
//! outlives one). A newer text is checked as at cold start and against the org's presences;
//! one that fails is refused, the policy in force kept, and `PolicyRefused` counted (an alarm
//! watches it).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use crate::clock::{Clock, Deadline};
use crate::policy::{LivePolicy, Policy};
use crate::ports::{PolicySource, PresenceCatalog};

#[derive(Debug)]
pub struct PolicyRefresh {
    source: Arc<dyn PolicySource>,
    live: Arc<LivePolicy>,
    catalog: Arc<dyn PresenceCatalog>,
    clock: Arc<dyn Clock>,
    every: Duration,
    /// When the store was last looked at, and the last revision refused (refused once).
    looked: Mutex<(Option<DateTime<Utc>>, Option<String>)>,
}

/// What a look at the store came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// Looked less than `every` ago.
    NotDue,
    /// The stored policy is the one in force.
    Unchanged,
    Replaced {
        version: String,
        revision: String,
    },
    /// The stored revision fails validation: the policy in force stays.
    Refused {
        revision: String,
        error: String,
    },
    /// This revision was refused before; still kept out.
    StillRefused {
        revision: String,
    },
    /// The store could not be read: the policy in force stays; looked at again next time.
    Unavailable {
        error: String,
    },
}

impl PolicyRefresh {
    pub fn new(
        source: Arc<dyn PolicySource>,
        live: Arc<LivePolicy>,
        catalog: Arc<dyn PresenceCatalog>,
        clock: Arc<dyn Clock>,
        every: Duration,
    ) -> Self {
        let now = clock.now();
        Self {
            source,
            live,
            catalog,
            clock,
            every,
            looked: Mutex::new((Some(now), None)),
        }
    }

    /// Looks at the store if `every` has passed since the last look.
    pub async fn refresh_if_due(&self, deadline: Deadline) -> Refreshed {
        let now = self.clock.now();
        let mut looked = self.looked.lock().await;
        let every = chrono::Duration::from_std(self.every).unwrap_or(chrono::Duration::MAX);
        if looked.0.is_some_and(|at| at + every > now) {
            return Refreshed::NotDue;
        }
        looked.0 = Some(now);
        let stored = match self.source.fetch().await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(%error, "the stored policy could not be read; the policy in force stays");
                return Refreshed::Unavailable {
                    error: error.to_string(),
                };
            }
        };
        if crate::policy::version_of(&stored.text) == self.live.current().version {
            return Refreshed::Unchanged;
        }
        if looked.1.as_ref() == Some(&stored.revision) {
            return Refreshed::StillRefused {
                revision: stored.revision,
            };
        }
        match self.checked(&stored.text, deadline).await {
            Ok(policy) => {
                let version = policy.version.clone();
                tracing::info!(%version, revision = %stored.revision, "policy replaced from the store");
                self.live.replace(policy);
                Refreshed::Replaced {
                    version,
                    revision: stored.revision,
                }
            }
            Err(error) => {
                tracing::error!(revision = %stored.revision, %error, "stored policy refused; the policy in force stays");
                crate::telemetry::emit(
                    &[("Component", "policy")],
                    &[("PolicyRefused", 1.0, crate::telemetry::Unit::Count)],
                );
                looked.1 = Some(stored.revision.clone());
                Refreshed::Refused {
                    revision: stored.revision,
                    error,
                }
            }
        }
    }

    /// The text as a policy, with every presence it names found in the org.
    async fn checked(&self, text: &str, deadline: Deadline) -> Result<Policy, String> {
        let policy = Policy::from_toml(text).map_err(|e| e.to_string())?;
        let definitions = self
            .catalog
            .presence_definitions(deadline)
            .await
            .map_err(|e| format!("presence definitions unreadable: {e}"))?;
        policy.resolve(&definitions).map_err(|e| e.to_string())?;
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::fakes::platform::FakePlatform;
    use crate::policy::DEFAULT_POLICY;
    use crate::ports::{StoreError, StoredPolicy};

    #[derive(Debug, Default)]
    struct Parameter(std::sync::Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl PolicySource for Parameter {
        async fn fetch(&self) -> Result<StoredPolicy, StoreError> {
            let versions = self.0.lock().expect("lock");
            let text = versions.last().cloned().ok_or(StoreError::NotFound {
                what: "policy".to_owned(),
            })?;
            Ok(StoredPolicy {
                text,
                revision: versions.len().to_string(),
            })
        }

        async fn store(&self, text: &str) -> Result<String, StoreError> {
            let mut versions = self.0.lock().expect("lock");
            versions.push(text.to_owned());
            Ok(versions.len().to_string())
        }
    }

    /// A newer valid policy replaces the one in force at the next look (not before); a
    /// stored one that does not parse, or names a presence the org lacks, is refused once and
    /// the last good one kept; a good one after it is taken.
    #[tokio::test]
    async fn a_refused_policy_keeps_the_last_good_one() {
        let clock = ManualClock::starting_at(Utc::now());
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let parameter = Arc::new(Parameter::default());
        parameter.store(DEFAULT_POLICY).await.expect("stored");
        let live = Arc::new(LivePolicy::new(
            Policy::from_toml(DEFAULT_POLICY).expect("valid"),
        ));
        let refresh = PolicyRefresh::new(
            parameter.clone(),
            live.clone(),
            Arc::new(FakePlatform::new(shared.clone())),
            shared,
            Duration::from_secs(60),
        );
        let deadline = || Deadline::after(&clock, Duration::from_secs(10));
        let good = DEFAULT_POLICY.replace("min_minutes = 0", "min_minutes = 5");
        parameter.store(&good).await.expect("stored");
        assert_eq!(refresh.refresh_if_due(deadline()).await, Refreshed::NotDue);
        clock.advance(Duration::from_secs(60));
        assert!(matches!(
            refresh.refresh_if_due(deadline()).await,
            Refreshed::Replaced { revision, .. } if revision == "2"
        ));
        assert_eq!(live.current().min_minutes, 5);

        for (bad, says) in [
            (
                good.replace("min_minutes = 5", "min_minutes = \"five\""),
                "min_minutes",
            ),
            (
                good.replace(r#"presence = "Meeting""#, r#"presence = "Daydreaming""#),
                "meeting.presence",
            ),
        ] {
            parameter.store(&bad).await.expect("stored");
            clock.advance(Duration::from_secs(60));
            match refresh.refresh_if_due(deadline()).await {
                Refreshed::Refused { error, .. } => assert!(error.contains(says), "{error}"),
                other => panic!("{says}: {other:?}"),
            }
            assert_eq!(live.current().min_minutes, 5, "the last good one stays");
            clock.advance(Duration::from_secs(60));
            assert!(matches!(
                refresh.refresh_if_due(deadline()).await,
                Refreshed::StillRefused { .. }
            ));
        }
        let better = good.replace("min_minutes = 5", "min_minutes = 7");
        parameter.store(&better).await.expect("stored");
        clock.advance(Duration::from_secs(60));
        assert!(matches!(
            refresh.refresh_if_due(deadline()).await,
            Refreshed::Replaced { .. }
        ));
        assert_eq!(live.current().min_minutes, 7);
        clock.advance(Duration::from_secs(60));
        assert_eq!(
            refresh.refresh_if_due(deadline()).await,
            Refreshed::Unchanged
        );
    }
}
