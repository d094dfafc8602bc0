//! The scheduled upkeep: the roster group decides who is connected. New members are matched to
//! their calendar by e-mail and connected; departed (or opted-out) ones lose their subscription
//! and state; and the least recently synced connections are handed to the sync worker, which
//! renews subscriptions and runs the safety delta round (push is not 100 % reliable).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::calendar::{CalendarError, Connection, ProviderRouting, SyncReason, SyncRequest};
use crate::clock::{Clock, Deadline};
use crate::model::UserId;
use crate::policy::Policy;
use crate::ports::PlatformError;
use crate::ports::{
    CalendarApis, ConnectionStore, MessagingError, Roster, RosterMember, StoreError, SyncQueue,
};

/// Work stops while this much time is left, so the run ends cleanly.
const RESERVE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum UpkeepError {
    #[error("roster: {0}")]
    Roster(#[from] PlatformError),
    #[error(transparent)]
    Calendar(#[from] CalendarError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] MessagingError),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpkeepReport {
    pub members: usize,
    pub opted_out: usize,
    pub connected: usize,
    /// Members with no calendar user of their e-mail (or no e-mail).
    pub unmatched: usize,
    pub disconnected: usize,
    pub queued: usize,
    /// Work left for the next run (deadline reached).
    pub deferred: usize,
}

#[derive(Debug)]
pub struct UpkeepService {
    pub roster: Arc<dyn Roster>,
    pub calendars: CalendarApis,
    /// Which calendar service each member's calendar is in.
    pub routing: ProviderRouting,
    pub connections: Arc<dyn ConnectionStore>,
    pub queue: Arc<dyn SyncQueue>,
    pub policy: Arc<Policy>,
    pub clock: Arc<dyn Clock>,
    /// Connections handed to the sync worker per run, least recently synced first.
    pub budget: usize,
}

impl UpkeepService {
    pub async fn run(&self, deadline: Deadline) -> Result<UpkeepReport, UpkeepError> {
        let mut report = UpkeepReport::default();
        let members = self.roster.members(deadline).await?;
        report.members = members.len();
        let wanted: HashMap<UserId, RosterMember> = members
            .into_iter()
            .filter(|member| {
                let out = self.opted_out(member);
                report.opted_out += usize::from(out);
                !out
            })
            .map(|member| (member.user_id.clone(), member))
            .collect();
        let existing = self.connections.list().await?;
        let known: HashSet<UserId> = existing.iter().map(|c| c.user_id.clone()).collect();
        let mut requests = Vec::new();
        for member in wanted.values().filter(|m| !known.contains(&m.user_id)) {
            if self.out_of_time(deadline) {
                report.deferred += 1;
                continue;
            }
            if self.connect(member, deadline, &mut report).await? {
                requests.push(SyncRequest {
                    user_id: member.user_id.clone(),
                    reason: SyncReason::Upkeep,
                });
            }
        }
        let (staying, leaving): (Vec<Connection>, Vec<Connection>) = existing
            .into_iter()
            .partition(|c| wanted.contains_key(&c.user_id));
        for connection in leaving {
            if self.out_of_time(deadline) {
                report.deferred += 1;
                continue;
            }
            self.disconnect(&connection, deadline, &mut report).await?;
        }
        requests.extend(self.due_for_upkeep(staying));
        self.queue.enqueue(&requests).await?;
        report.queued = requests.len();
        Ok(report)
    }

    fn opted_out(&self, member: &RosterMember) -> bool {
        self.policy.opt_out.contains(member.user_id.as_str())
            || member
                .email
                .as_deref()
                .is_some_and(|email| self.policy.opt_out.contains(&email.to_lowercase()))
    }

    fn out_of_time(&self, deadline: Deadline) -> bool {
        deadline.remaining(self.clock.as_ref()) < RESERVE
    }

    /// Matches one member to their calendar and stores the connection; `true` if stored.
    async fn connect(
        &self,
        member: &RosterMember,
        deadline: Deadline,
        report: &mut UpkeepReport,
    ) -> Result<bool, UpkeepError> {
        let Some(email) = member.email.as_deref() else {
            report.unmatched += 1;
            tracing::warn!(user = %member.user_id, "roster member without an e-mail: not connected");
            return Ok(false);
        };
        let provider = self.routing.provider_for(email);
        let calendar = match self.calendars.of(provider) {
            Ok(calendar) => calendar,
            Err(error) => {
                report.unmatched += 1;
                tracing::warn!(user = %member.user_id, %error, "member's calendar service is not configured: not connected");
                return Ok(false);
            }
        };
        let Some(calendar_user_id) = calendar.calendar_user_id(email, deadline).await? else {
            report.unmatched += 1;
            tracing::warn!(user = %member.user_id, provider = provider.as_str(), "no calendar user with the member's e-mail: not connected");
            return Ok(false);
        };
        let connection =
            Connection::new(member.user_id.clone(), email, calendar_user_id).on(provider);
        match self.connections.put(&connection).await {
            Ok(_) => {
                report.connected += 1;
                Ok(true)
            }
            // Another run connected them meanwhile.
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(other) => Err(other.into()),
        }
    }

    /// Deletes the member's subscription, then their connection; a failure leaves both for the
    /// next run.
    async fn disconnect(
        &self,
        connection: &Connection,
        deadline: Deadline,
        report: &mut UpkeepReport,
    ) -> Result<(), UpkeepError> {
        if let Some(subscription) = &connection.subscription {
            self.calendars
                .of(connection.provider)?
                .delete_subscription(&connection.calendar_user_id, subscription, deadline)
                .await?;
        }
        match self.connections.delete(connection).await {
            Ok(()) => report.disconnected += 1,
            Err(StoreError::Conflict(_)) => report.deferred += 1,
            Err(other) => return Err(other.into()),
        }
        Ok(())
    }

    /// The `budget` connections that need it most: no subscription, one due for renewal or a
    /// recorded failure first, then the least recently synced (never synced first).
    fn due_for_upkeep(&self, mut staying: Vec<Connection>) -> Vec<SyncRequest> {
        let now = self.clock.now();
        let healthy = |c: &Connection| {
            c.last_error.is_none()
                && c.subscription
                    .as_ref()
                    .is_some_and(|s| !s.needs_renewal(now))
        };
        staying.sort_by_key(|c| (healthy(c), c.last_sync_at));
        staying
            .into_iter()
            .take(self.budget)
            .map(|c| SyncRequest {
                user_id: c.user_id,
                reason: SyncReason::Upkeep,
            })
            .collect()
    }
}
