//! The policy's presence names, resolved against the org's presence definitions at first use
//! and kept for the life of the container: a cold start makes no Genesys call for them (the
//! policy itself is still parsed and checked at cold start). A failed resolution is not kept;
//! the next event tries again.

use tokio::sync::OnceCell;

use super::{TransitionError, TransitionService};
use crate::clock::Deadline;
use crate::policy::ResolvedTargets;

#[derive(Debug, Default)]
pub struct Targets {
    resolved: OnceCell<ResolvedTargets>,
}

impl Targets {
    /// Resolved at first use.
    pub fn lazy() -> Self {
        Self::default()
    }

    /// Already resolved (tests, tools that resolved them themselves).
    pub fn resolved(targets: ResolvedTargets) -> Self {
        Self {
            resolved: OnceCell::new_with(Some(targets)),
        }
    }
}

impl TransitionService {
    /// The resolved targets; the first call of the container reads the org's definitions.
    pub(super) async fn targets(
        &self,
        deadline: Deadline,
    ) -> Result<&ResolvedTargets, TransitionError> {
        self.deps
            .targets
            .resolved
            .get_or_try_init(|| async {
                let definitions = self.deps.catalog.presence_definitions(deadline).await?;
                Ok(self.deps.policy.resolve(&definitions)?)
            })
            .await
    }
}
