//! The transition use case assembled on fakes, for the unit tests of the use cases built on it
//! (transition itself, the planner and the sweep).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::InMemoryStore;
use super::platform::FakePlatform;
use crate::clock::{Clock, Deadline, ManualClock};
use crate::model::{RoutingStatus, SystemPresence, UserId};
use crate::policy::{DEFAULT_POLICY, Policy};
use crate::service::transition::{Targets, TransitionDeps, TransitionService};

/// Ada, the agent every fake world starts with (On Queue, idle, no e-mail).
pub const ADA: &str = "9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f";

pub fn ada() -> UserId {
    UserId::parse(ADA).expect("valid")
}

/// Genesys in memory, the in-memory table, a manual clock, and the transition use case on them
/// with the default policy.
#[derive(Debug)]
pub struct FakeWorld {
    pub clock: ManualClock,
    pub platform: FakePlatform,
    pub store: InMemoryStore,
    pub transition: Arc<TransitionService>,
}

impl FakeWorld {
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self::with_policy(
            start,
            Policy::from_toml(DEFAULT_POLICY).expect("the default policy"),
        )
    }

    /// The world deciding by `policy`.
    pub fn with_policy(start: DateTime<Utc>, policy: Policy) -> Self {
        let clock = ManualClock::starting_at(start);
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let platform = FakePlatform::new(shared.clone());
        let store = InMemoryStore::new(shared.clone());
        platform.add_user(&ada(), SystemPresence::OnQueue, RoutingStatus::Idle, None);
        let transition = Arc::new(TransitionService::new(TransitionDeps {
            presence: Arc::new(platform.clone()),
            routing: Arc::new(platform.clone()),
            users: Arc::new(platform.clone()),
            catalog: Arc::new(platform.clone()),
            shifts: Arc::new(platform.clone()),
            teams: Arc::new(platform.clone()),
            state: Arc::new(store.clone()),
            audit: Arc::new(store.clone()),
            idempotency: Arc::new(store.clone()),
            clock: shared,
            policy: Arc::new(policy.into()),
            targets: Arc::new(Targets::lazy()),
            policy_refresh: None,
            idempotency_ttl: Duration::from_secs(86_400),
            presence_fresh_for: Duration::from_secs(1),
        }));
        Self {
            clock,
            platform,
            store,
            transition,
        }
    }

    pub fn deadline(&self) -> Deadline {
        Deadline::after(&self.clock, Duration::from_secs(30))
    }

    pub fn shared_clock(&self) -> Arc<dyn Clock> {
        Arc::new(self.clock.clone())
    }
}
