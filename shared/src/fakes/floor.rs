//! Fakes of the look-ahead's inputs: the policy store and a team's floor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::lock;
use crate::clock::Deadline;
use crate::decide::forecast::Member;
use crate::policy::Policy;
use crate::ports::{FloorError, PlatformError, PolicySource, StoreError, StoredPolicy, TeamFloor};

/// A policy store holding versions in memory; the revision is the count of puts.
#[derive(Debug, Clone, Default)]
pub struct FakePolicyStore {
    texts: Arc<Mutex<Vec<String>>>,
}

impl FakePolicyStore {
    pub fn holding(text: &str) -> Self {
        let store = Self::default();
        lock(&store.texts).push(text.to_owned());
        store
    }
}

#[async_trait]
impl PolicySource for FakePolicyStore {
    async fn fetch(&self) -> Result<StoredPolicy, StoreError> {
        let texts = lock(&self.texts);
        let text = texts.last().cloned().ok_or_else(|| StoreError::NotFound {
            what: "policy".to_owned(),
        })?;
        Ok(StoredPolicy {
            text,
            revision: texts.len().to_string(),
        })
    }

    async fn store(&self, text: &str) -> Result<String, StoreError> {
        let mut texts = lock(&self.texts);
        texts.push(text.to_owned());
        Ok(texts.len().to_string())
    }
}

/// A team's floor asked for over `[from, to)`.
pub type Asked = (String, DateTime<Utc>, DateTime<Utc>);

/// Each team's members as given; `unavailable` makes every read fail as Genesys being down.
#[derive(Debug, Clone, Default)]
pub struct FakeFloor {
    teams: Arc<Mutex<HashMap<String, Vec<Member>>>>,
    unavailable: Arc<Mutex<bool>>,
    /// The ranges asked for, in order.
    asked: Arc<Mutex<Vec<Asked>>>,
}

impl FakeFloor {
    pub fn set_team(&self, team: &str, members: Vec<Member>) {
        lock(&self.teams).insert(team.to_owned(), members);
    }

    pub fn set_unavailable(&self, unavailable: bool) {
        *lock(&self.unavailable) = unavailable;
    }

    pub fn asked(&self) -> Vec<Asked> {
        lock(&self.asked).clone()
    }
}

#[async_trait]
impl TeamFloor for FakeFloor {
    async fn team(
        &self,
        policy: &Policy,
        team: &str,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        _deadline: Deadline,
    ) -> Result<Vec<Member>, FloorError> {
        lock(&self.asked).push((team.to_owned(), from, to));
        if *lock(&self.unavailable) {
            return Err(PlatformError::Unavailable {
                message: "fake floor: Genesys Cloud unavailable".to_owned(),
            }
            .into());
        }
        if policy.profile(team).is_none() {
            return Err(FloorError::UnknownTeam {
                team: team.to_owned(),
                known: String::new(),
            });
        }
        Ok(lock(&self.teams).get(team).cloned().unwrap_or_default())
    }
}
