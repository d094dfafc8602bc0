//! The policy in force while a function runs: replaced whole when a newer valid one is read
//! from the store; each decision takes the one in force when it starts.

use std::sync::{Arc, PoisonError, RwLock};

use super::Policy;

#[derive(Debug)]
pub struct LivePolicy {
    current: RwLock<Arc<Policy>>,
}

impl LivePolicy {
    pub fn new(policy: Policy) -> Self {
        Self {
            current: RwLock::new(Arc::new(policy)),
        }
    }

    /// The policy in force now.
    pub fn current(&self) -> Arc<Policy> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn replace(&self, policy: Policy) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(policy);
    }
}

impl From<Policy> for LivePolicy {
    fn from(policy: Policy) -> Self {
        Self::new(policy)
    }
}
