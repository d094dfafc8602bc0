//! The WFM schedule as a `ShiftSource`: which activity covers a moment, per user, from the
//! published schedule (schedule search per business unit, activity codes for the category).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use crate::clock::{Clock, Deadline};
use crate::decide::ShiftView;
use crate::genesys::wire::{ScheduleSearchOutcome, ScheduleSearchRequest};
use crate::genesys::{GenesysClient, GenesysError};
use crate::model::{ActivityCategory, UserId};
use crate::ports::ShiftSource;

/// The schedule search takes this many user ids per call.
const SEARCH_CHUNK: usize = 100;
/// Activity codes change rarely; re-read them hourly.
const ACTIVITY_CODE_TTL: Duration = Duration::from_secs(3600);

/// A business unit's activity code → category map and when it was read.
type CachedCodes = (DateTime<Utc>, HashMap<String, ActivityCategory>);

#[derive(Debug)]
pub struct WfmShifts {
    client: GenesysClient,
    clock: std::sync::Arc<dyn Clock>,
    /// Business units to search; empty: look each agent's unit up (cached per instance).
    business_units: Vec<String>,
    unit_of: Mutex<HashMap<UserId, Option<String>>>,
    codes: Mutex<HashMap<String, CachedCodes>>,
}

impl WfmShifts {
    pub fn new(
        client: GenesysClient,
        clock: std::sync::Arc<dyn Clock>,
        business_units: Vec<String>,
    ) -> Self {
        Self {
            client,
            clock,
            business_units,
            unit_of: Mutex::default(),
            codes: Mutex::default(),
        }
    }

    /// Which business unit to search for each user.
    async fn units(
        &self,
        users: &[UserId],
        deadline: Deadline,
    ) -> Result<HashMap<String, Vec<UserId>>, GenesysError> {
        let mut by_unit: HashMap<String, Vec<UserId>> = HashMap::new();
        if !self.business_units.is_empty() {
            for unit in &self.business_units {
                by_unit.insert(unit.clone(), users.to_vec());
            }
            return Ok(by_unit);
        }
        let mut cache = self.unit_of.lock().await;
        for user in users {
            let unit = match cache.get(user) {
                Some(unit) => unit.clone(),
                None => {
                    let unit = match self.client.agent_management_unit(user, deadline).await {
                        Ok(found) => Some(found.business_unit_id),
                        // Not a WFM agent: no shift to respect.
                        Err(GenesysError::NotFound { .. }) => None,
                        Err(other) => return Err(other),
                    };
                    cache.insert(user.clone(), unit.clone());
                    unit
                }
            };
            if let Some(unit) = unit {
                by_unit.entry(unit).or_default().push(user.clone());
            }
        }
        Ok(by_unit)
    }

    async fn categories(
        &self,
        business_unit: &str,
        deadline: Deadline,
    ) -> Result<HashMap<String, ActivityCategory>, GenesysError> {
        let now = self.clock.now();
        let mut codes = self.codes.lock().await;
        let ttl = chrono::Duration::from_std(ACTIVITY_CODE_TTL).unwrap_or_default();
        if let Some((_, categories)) = codes
            .get(business_unit)
            .filter(|(fetched, _)| now - *fetched < ttl)
        {
            return Ok(categories.clone());
        }
        let categories: HashMap<String, ActivityCategory> = self
            .client
            .activity_codes(business_unit, deadline)
            .await?
            .into_iter()
            .map(|code| (code.id, code.category))
            .collect();
        codes.insert(business_unit.to_owned(), (now, categories.clone()));
        Ok(categories)
    }
}

#[async_trait]
impl ShiftSource for WfmShifts {
    async fn shifts_at(
        &self,
        users: &[UserId],
        at: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<HashMap<UserId, ShiftView>, GenesysError> {
        let mut views: HashMap<UserId, ShiftView> = users
            .iter()
            .map(|u| (u.clone(), ShiftView::NoShift))
            .collect();
        for (unit, members) in self.units(users, deadline).await? {
            let categories = self.categories(&unit, deadline).await?;
            for chunk in members.chunks(SEARCH_CHUNK) {
                let request = ScheduleSearchRequest {
                    start_date: at - chrono::Duration::days(1),
                    end_date: at + chrono::Duration::days(1),
                    user_ids: chunk.iter().map(|u| u.as_str().to_owned()).collect(),
                };
                let result = match self
                    .client
                    .search_schedules(&unit, &request, deadline)
                    .await?
                {
                    ScheduleSearchOutcome::Complete(result) => result,
                    ScheduleSearchOutcome::Processing { operation_id } => {
                        // The answer arrives later (the sweep caches it); until then: no shift.
                        tracing::warn!(business_unit = %unit, ?operation_id, "schedule search still processing");
                        continue;
                    }
                };
                for schedule in result.agent_schedules {
                    let Ok(user) = UserId::parse(&schedule.user.id) else {
                        continue;
                    };
                    let activity = schedule
                        .shifts
                        .iter()
                        .flat_map(|shift| shift.activities.iter())
                        .find(|activity| activity.covers(at));
                    if let Some(activity) = activity {
                        let category = categories
                            .get(&activity.activity_code_id)
                            .copied()
                            .unwrap_or(ActivityCategory::Unknown);
                        views.insert(user, ShiftView::Activity(category));
                    }
                }
            }
        }
        Ok(views)
    }
}
