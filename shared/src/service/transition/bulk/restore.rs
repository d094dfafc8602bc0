//! Ends of many users in one batch restore with bulk calls, as starts apply with them: read each
//! state with its event's record → screen each on its stored state → one bulk presence read for the rest → decide →
//! claim each restore → the guard → one bulk write for those still ours → settle each.
//!
//! The guard is the one-event path's: `decide` restores only if the state says the presence is
//! ours and the live presence, read moments ago in bulk, still carries our write's tag. A bulk PUT
//! cannot be conditional (docs/genesys-client.md), so a presence changed by hand between that read
//! and the write is the one window the one-event path (compare-and-set) does not have; it is as
//! long as the bulk start's.

use std::collections::HashMap;

use futures::stream::{self, StreamExt};

use super::{BulkItem, Edge, Handled, RecordWrites, STORE_CONCURRENCY};
use crate::clock::Deadline;
use crate::decide::{Context, Decided, Decision, decide, screen};
use crate::model::{PresenceSnapshot, UserId};
use crate::ports::{CasOutcome, PlatformError};
use crate::service::transition::protocol::Claim;
use crate::service::transition::record::Attempt;
use crate::service::transition::{Live, Outcome, TransitionError, TransitionService};
use crate::state::PresenceRef;

/// An end whose state claim was won and whose presence is still ours: it joins the bulk write.
struct ClaimedRestore {
    item: BulkItem,
    live: Live,
    claim: Claim,
    to: PresenceRef,
}

impl TransitionService {
    pub(super) async fn handle_bulk_ends(
        &self,
        events: Vec<(usize, crate::events::ParsedEvent)>,
        deadline: Deadline,
    ) -> Vec<Handled> {
        let mut done: Vec<Handled> = Vec::new();
        let pending = self.read_events(events, deadline, &mut done).await;
        self.bulk_ends(pending, done, deadline).await
    }

    /// Ends (or the sweep's missed ends) whose keys are held and states read: screen → one
    /// bulk presence read → decide → claim each restore → one bulk write → settle each.
    pub(super) async fn bulk_ends(
        &self,
        pending: Vec<BulkItem>,
        mut done: Vec<Handled>,
        deadline: Deadline,
    ) -> Vec<Handled> {
        if pending.is_empty() {
            return done;
        }
        if self.deps.policy.current().has_teams() {
            // Profiles and staffing guards are decided per agent (docs/policy.md).
            return self.one_by_one(pending, done, Edge::End, deadline).await;
        }
        let now = self.deps.clock.now();
        let targets = match self.targets(deadline).await {
            Ok(targets) => targets.clone(),
            Err(error) => {
                tracing::warn!(%error, "presence targets unknown; handling the ends one at a time");
                return self.one_by_one(pending, done, Edge::End, deadline).await;
            }
        };
        let mut needs_live = Vec::new();
        for item in pending {
            let trigger = item.trigger(Edge::End);
            let policy_now = self.deps.policy.current();
            let base = Context {
                now,
                policy: &policy_now,
                targets: &targets,
                state: &item.state,
                email: item.email(),
                current: None,
                routing: None,
                shift: None,
                zone: None,
                guard: None,
            };
            match screen(&trigger, &base) {
                Some(decided) => done.push(self.record_screened(item, decided, deadline).await),
                None => needs_live.push(item),
            }
        }
        if needs_live.is_empty() {
            return done;
        }
        let users: Vec<UserId> = needs_live.iter().map(|item| item.user.clone()).collect();
        let presences: HashMap<UserId, PresenceSnapshot> = match self
            .deps
            .presence
            .presences(&users, deadline)
            .await
        {
            Ok(read) => read.into_iter().collect(),
            Err(error) => {
                tracing::warn!(%error, "bulk presence read failed; handling the ends one at a time");
                return self.one_by_one(needs_live, done, Edge::End, deadline).await;
            }
        };
        let read_at = self.deps.clock.now();
        let steps: Vec<Result<ClaimedRestore, Handled>> = stream::iter(needs_live)
            .map(|item| {
                let current = presences.get(&item.user).cloned();
                self.decide_end(item, current, read_at, &targets, deadline)
            })
            .buffered(STORE_CONCURRENCY)
            .collect()
            .await;
        let mut claims = Vec::new();
        for step in steps {
            match step {
                Ok(claimed) => claims.push(claimed),
                Err(handled) => done.push(handled),
            }
        }
        done.extend(self.restore_and_settle(claims, deadline).await);
        done
    }

    async fn record_screened(
        &self,
        item: BulkItem,
        decided: Decided,
        deadline: Deadline,
    ) -> Handled {
        let trigger = item.trigger(Edge::End);
        let policy_now = self.deps.policy.current();
        let at = item.attempt(&trigger, None, &policy_now, deadline);
        let (result, writes) = self.recorded(&item, &at, decided, deadline).await;
        let result = self.conclude_item(&item, result, writes).await;
        (item.index, result)
    }

    /// One end decided on the bulk-read presence; a restore still ours is claimed and returned
    /// for the bulk write, anything else is recorded on its own (`Err`: handled).
    async fn decide_end(
        &self,
        item: BulkItem,
        current: Option<PresenceSnapshot>,
        read_at: chrono::DateTime<chrono::Utc>,
        targets: &crate::policy::ResolvedTargets,
        deadline: Deadline,
    ) -> Result<ClaimedRestore, Handled> {
        let Some(current) = current else {
            // A user Genesys does not know: the one-event path refuses it, once per event.
            let (result, writes) = self.decide_alone(&item, Edge::End, false, deadline).await;
            let result = self.conclude_item(&item, result, writes).await;
            return Err((item.index, result));
        };
        let live = Live {
            current,
            read_at,
            routing: None,
            shift: None,
            zone: None,
        };
        let trigger = item.trigger(Edge::End);
        let policy_now = self.deps.policy.current();
        let cx = Context {
            now: self.deps.clock.now(),
            policy: &policy_now,
            targets,
            state: &item.state,
            email: item.email(),
            current: Some(&live.current),
            routing: None,
            shift: None,
            zone: None,
            guard: None,
        };
        let decided = decide(&trigger, &cx);
        let restore = match (&decided.decision, &decided.next) {
            (Decision::Restore { to }, Some(next)) => Some((to.clone(), next.clone())),
            _ => None,
        };
        let (result, writes) = match restore {
            // `decide` restores only if the bulk-read presence still carries our write's tag
            // (or, for a claim that never settled, our target): the guard of the one-event path.
            Some((to, next)) => match self.claim(&item.state, &next, item.hold()).await {
                Ok(Some(claim)) => {
                    return Ok(ClaimedRestore {
                        item,
                        live,
                        claim,
                        to,
                    });
                }
                Ok(None) => self.decide_alone(&item, Edge::End, false, deadline).await,
                Err(error) => (Err(error), RecordWrites::default()),
            },
            None => {
                let trigger = item.trigger(Edge::End);
                let policy_now = self.deps.policy.current();
                let at = item.attempt(&trigger, Some(&live), &policy_now, deadline);
                self.recorded(&item, &at, decided, deadline).await
            }
        };
        let result = self.conclude_item(&item, result, writes).await;
        Err((item.index, result))
    }

    /// A decision recorded for one end, as the one-event path would.
    async fn recorded(
        &self,
        item: &BulkItem,
        at: &Attempt<'_>,
        decided: Decided,
        deadline: Deadline,
    ) -> (Result<Outcome, TransitionError>, RecordWrites) {
        let persisted = self.persist(at, decided).await;
        self.concluded(item, persisted, Edge::End, deadline).await
    }

    /// One bulk write for every end still ours, then each settled on its own.
    async fn restore_and_settle(
        &self,
        claims: Vec<ClaimedRestore>,
        deadline: Deadline,
    ) -> Vec<Handled> {
        if claims.is_empty() {
            return Vec::new();
        }
        let changes: Vec<(UserId, PresenceRef)> = claims
            .iter()
            .map(|c| (c.item.user.clone(), c.to.clone()))
            .collect();
        let (after, write_ms) = self.bulk_write(&changes, deadline).await;
        stream::iter(claims)
            .map(|claimed| async {
                let (result, writes, item) = self
                    .settle_one_restore(claimed, &after, write_ms, deadline)
                    .await;
                let result = self.conclude_item(&item, result, writes).await;
                (item.index, result)
            })
            .buffered(STORE_CONCURRENCY)
            .collect()
            .await
    }

    async fn settle_one_restore(
        &self,
        claimed: ClaimedRestore,
        after: &Result<HashMap<UserId, PresenceSnapshot>, PlatformError>,
        write_ms: u64,
        deadline: Deadline,
    ) -> (Result<Outcome, TransitionError>, RecordWrites, BulkItem) {
        let ClaimedRestore {
            item,
            live,
            claim,
            to,
        } = claimed;
        let leased = claim.leased;
        let written = match after {
            Ok(after) => match after.get(&item.user) {
                Some(written) => Ok(CasOutcome::Applied {
                    before: live.current.clone(),
                    after: written.clone(),
                }),
                None => Err(PlatformError::Refused {
                    message: format!("bulk PUT returned no presence for {}", item.user),
                }),
            },
            // An uncertain bulk write gives the claim back: a redelivery restores again, so no
            // agent stays off queue because an answer was lost.
            Err(error) => Err(error.clone()),
        };
        let trigger = item.trigger(Edge::End);
        let policy_now = self.deps.policy.current();
        let at = item.attempt(&trigger, Some(&live), &policy_now, deadline);
        let settled = self
            .settle_restore(&at, claim, &to, written, write_ms)
            .await;
        let (result, mut writes) = self.concluded(&item, settled, Edge::End, deadline).await;
        writes.leased |= leased && result.is_err();
        (result, writes, item)
    }
}
