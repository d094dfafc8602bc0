//! One read for a transition's three: a user's state is read together with their audit chain
//! head and cached schedule (one consistent BatchGetItem), and the two extra items are kept
//! briefly for the reads that follow in the same transition.
//!
//! Safe because neither is trusted beyond what a fresh read would be: the commit's transaction
//! is conditional on the head it links to (a stale head fails it, and the next round reads the
//! head again), and a schedule read a moment earlier is what a separate read would have found.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{
    DynamoStore, HEAD_SK, IDEMPOTENCY_SK, Item, Reader, SHIFTS_SK, STATE_SK, idempotency_pk,
    user_pk,
};
use crate::aws::batch_get;
use crate::model::UserId;
use crate::ports::{EventRecord, StoreError};
use crate::state::{ChainHead, UserState};

/// How long read-ahead items answer for a later read (a transition takes milliseconds).
const KEPT_FOR: Duration = Duration::from_secs(2);
/// Past this many users, stale entries are dropped before another is kept.
const PRUNE_ABOVE: usize = 1_000;
/// Rounds of asking again for keys DynamoDB left unprocessed.
const UNPROCESSED_ROUNDS: u32 = 5;

/// The items read with a user's state, until taken or stale.
#[derive(Debug, Default)]
pub(super) struct ReadAhead {
    by_user: Mutex<HashMap<UserId, Prefetched>>,
}

#[derive(Debug)]
struct Prefetched {
    read_at: Instant,
    /// `Some(None)`: read, and there is no head (a new chain).
    head: Option<Option<ChainHead>>,
    /// `Some(None)`: read, and no schedule is cached.
    shifts: Option<Option<Item>>,
}

impl ReadAhead {
    fn keep(&self, user: &UserId, head: Option<ChainHead>, shifts: Option<Item>) {
        let mut by_user = self.lock();
        if by_user.len() > PRUNE_ABOVE {
            by_user.retain(|_, kept| kept.read_at.elapsed() <= KEPT_FOR);
        }
        let kept = Prefetched {
            read_at: Instant::now(),
            head: Some(head),
            shifts: Some(shifts),
        };
        by_user.insert(user.clone(), kept);
    }

    /// The head read with the user's state, if fresh; each is used once.
    pub(super) fn take_head(&self, user: &UserId) -> Option<Option<ChainHead>> {
        self.take(user, |kept| kept.head.take())
    }

    /// The cached schedule item read with the user's state, if fresh; each is used once.
    pub(super) fn take_shifts(&self, user: &UserId) -> Option<Option<Item>> {
        self.take(user, |kept| kept.shifts.take())
    }

    fn take<T>(&self, user: &UserId, part: impl FnOnce(&mut Prefetched) -> Option<T>) -> Option<T> {
        let mut by_user = self.lock();
        let kept = by_user.get_mut(user)?;
        if kept.read_at.elapsed() > KEPT_FOR {
            by_user.remove(user);
            return None;
        }
        let taken = part(kept);
        if kept.head.is_none() && kept.shifts.is_none() {
            by_user.remove(user);
        }
        taken
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Prefetched>> {
        // A panic elsewhere cannot leave the map half-written: every change is one insert or
        // remove, so a poisoned lock is still consistent.
        self.by_user
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl DynamoStore {
    /// The user's state, read (consistently) with their chain head and cached schedule, which
    /// are kept for the commit and the shift lookup of the same transition, and with the
    /// idempotency record of the event being handled, if any.
    pub(super) async fn read_state_ahead(
        &self,
        user: &UserId,
        event_key: Option<&str>,
    ) -> Result<(Option<UserState>, Option<EventRecord>), StoreError> {
        let pk = user_pk(user);
        let mut keys: Vec<Item> = [STATE_SK, HEAD_SK, SHIFTS_SK]
            .map(|sk| Self::key(pk.clone(), sk))
            .to_vec();
        let event_item_key = event_key.map(|key| Self::key(idempotency_pk(key), IDEMPOTENCY_SK));
        keys.extend(event_item_key.clone());
        let read = batch_get(&self.client, &self.table, keys, true, UNPROCESSED_ROUNDS).await?;
        if !read.unprocessed.is_empty() {
            // Throttled throughout: read the state and the event's record alone, keep nothing.
            let item = self.get_item(Self::key(pk, STATE_SK)).await?;
            let state = item.as_ref().map(Self::read_state).transpose()?;
            let event = match event_item_key {
                Some(key) => self.get_item(key).await?,
                None => None,
            };
            let event = event
                .map(|item| self.read_event_record(&item))
                .transpose()?;
            return Ok((state, event.flatten()));
        }
        let mut items: HashMap<String, Item> = HashMap::new();
        for item in read.items {
            let sk = Reader::new(&item, "user item").s("sk")?.to_owned();
            items.insert(sk, item);
        }
        let head = items.get(HEAD_SK).map(Self::read_head_item).transpose()?;
        self.read_ahead.keep(user, head, items.remove(SHIFTS_SK));
        let state = items.get(STATE_SK).map(Self::read_state).transpose()?;
        let event = items
            .get(IDEMPOTENCY_SK)
            .map(|item| self.read_event_record(item))
            .transpose()?;
        Ok((state, event.flatten()))
    }
}
