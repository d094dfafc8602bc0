//! The staffing guard a start meets: its team (the agent's profile), the cap now, and whether
//! the start is exempt. The count itself is kept by the store, in the state's own write.

use chrono::{DateTime, Utc};

use super::{TransitionError, TransitionService};
use crate::clock::Deadline;
use crate::decide::{GuardCheck, ShiftView, Trigger};
use crate::model::{ActivityCategory, UserId};
use crate::policy::{Cap, Policy};

/// How long a percentage cap, once counted, stands for the team: counting reads every member's
/// schedule, which a burst of starts must not do once each.
const CAP_FRESH_FOR: chrono::Duration = chrono::Duration::seconds(60);

impl TransitionService {
    /// The guard of `policy` (the agent's profile) as this start meets it; None when the
    /// profile has no guard or the trigger is not a start. `full`: the store refused a slot a
    /// moment ago.
    pub(super) async fn guard_check<'p>(
        &self,
        policy: &'p Policy,
        user: &UserId,
        trigger: &Trigger<'_>,
        (now, full): (DateTime<Utc>, bool),
        deadline: Deadline,
    ) -> Result<Option<GuardCheck<'p>>, TransitionError> {
        let Some(guard) = &policy.guard else {
            return Ok(None);
        };
        let organizer = match trigger {
            Trigger::Started(entry) => entry.organizer.as_deref(),
            Trigger::Reevaluate => None,
            _ => return Ok(None),
        };
        let mut exempt = organizer.is_some_and(|o| guard.exempt_organizers.contains(o));
        for group in &guard.exempt_groups {
            if exempt {
                break;
            }
            exempt = self
                .deps
                .teams
                .group_members(group, deadline)
                .await?
                .contains(user);
        }
        let cap = match guard.cap {
            Cap::Agents(agents) => agents,
            Cap::PercentOnQueue(percent) => {
                let counted = self.caps.lock().await.get(&policy.profile).copied();
                match counted {
                    Some((at, cap)) if at + CAP_FRESH_FOR > now => cap,
                    _ => {
                        let on_queue = self.on_queue(policy, now, deadline).await?;
                        let cap =
                            u32::try_from(on_queue * u64::from(percent) / 100).unwrap_or(u32::MAX);
                        self.caps
                            .lock()
                            .await
                            .insert(policy.profile.clone(), (now, cap));
                        cap
                    }
                }
            }
        };
        Ok(Some(GuardCheck {
            team: &policy.profile,
            cap,
            exempt,
            full,
        }))
    }

    /// How many of the profile's team WFM schedules on queue at `at` (the team: its groups'
    /// members and the users it names by id).
    async fn on_queue(
        &self,
        policy: &Policy,
        at: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<u64, TransitionError> {
        let mut members = std::collections::BTreeSet::new();
        for group in &policy.selector.groups {
            members.extend(
                self.deps
                    .teams
                    .group_members(group, deadline)
                    .await?
                    .iter()
                    .cloned(),
            );
        }
        members.extend(
            policy
                .selector
                .users
                .iter()
                .filter_map(|u| UserId::parse(u).ok()),
        );
        let members: Vec<UserId> = members.into_iter().collect();
        let shifts = self.deps.shifts.shifts_at(&members, at, deadline).await?;
        Ok(shifts
            .values()
            .filter(|s| s.view == ShiftView::Activity(ActivityCategory::OnQueueWork))
            .count() as u64)
    }
}
