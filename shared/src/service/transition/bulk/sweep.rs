//! The sweep's due users decided together: deferred starts share one bulk read and one bulk
//! write, missed ends one bulk presence read and one bulk write, as a batch's events do. One at
//! a time, 200 deferred agents cost some 600 calls, twice one token's minute.

use super::{BulkItem, Edge, Source, in_order};
use crate::clock::Deadline;
use crate::service::transition::{Outcome, TransitionError, TransitionService};
use crate::state::UserState;

impl TransitionService {
    /// Each due user, with the state the sweep read and the edge that is due, decided with bulk
    /// calls; one result per user, in order. A state changed since the sweep read it loses its
    /// claim and is decided again on the one-event path.
    pub async fn reevaluate_due(
        &self,
        due: Vec<(UserState, Edge)>,
        deadline: Deadline,
    ) -> Vec<Result<Outcome, TransitionError>> {
        let count = due.len();
        let (mut starts, mut ends) = (Vec::new(), Vec::new());
        for (index, (state, edge)) in due.into_iter().enumerate() {
            let item = BulkItem {
                index,
                source: Source::Sweep,
                user: state.user_id.clone(),
                state,
            };
            match edge {
                Edge::Start => starts.push(item),
                Edge::End => ends.push(item),
            }
        }
        let mut handled = self.bulk_starts(starts, Vec::new(), deadline).await;
        handled.extend(self.bulk_ends(ends, Vec::new(), deadline).await);
        in_order((0..count).map(|_| None).collect(), handled, "due user")
    }
}
