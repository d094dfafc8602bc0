//! The policy's presence names, resolved against the org's presence definitions at first use
//! of each policy version and kept for the life of the container: a cold start makes no
//! Genesys call for them (the policy itself is still parsed and checked at cold start). A
//! failed resolution is not kept; the next event tries again.

use std::sync::Arc;

use tokio::sync::Mutex;

use super::{TransitionError, TransitionService};
use crate::clock::Deadline;
use crate::policy::ResolvedTargets;

#[derive(Debug, Default)]
pub struct Targets {
    /// The resolution and the policy version it is for (None: given, for any version).
    resolved: Mutex<Option<(Option<String>, Arc<ResolvedTargets>)>>,
}

impl Targets {
    /// Resolved at first use.
    pub fn lazy() -> Self {
        Self::default()
    }

    /// Already resolved (tests, tools that resolved them themselves).
    pub fn resolved(targets: ResolvedTargets) -> Self {
        Self {
            resolved: Mutex::new(Some((None, Arc::new(targets)))),
        }
    }
}

impl TransitionService {
    /// The resolved targets of the policy in force; the first call for each version reads the
    /// org's definitions.
    pub(super) async fn targets(
        &self,
        deadline: Deadline,
    ) -> Result<Arc<ResolvedTargets>, TransitionError> {
        let policy = self.deps.policy.current();
        let mut resolved = self.deps.targets.resolved.lock().await;
        if let Some((version, targets)) = resolved.as_ref()
            && version.as_ref().is_none_or(|v| *v == policy.version)
        {
            return Ok(targets.clone());
        }
        let definitions = self.deps.catalog.presence_definitions(deadline).await?;
        let targets = Arc::new(policy.resolve(&definitions)?);
        *resolved = Some((Some(policy.version.clone()), targets.clone()));
        Ok(targets)
    }
}
