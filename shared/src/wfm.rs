//! The WFM schedule as a `ShiftSource`: which activity covers a moment, per user, from the
//! published schedule (schedule search per business unit, activity codes for the category),
//! kept in a cache with a TTL so most transitions make no WFM call.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tokio::sync::Mutex;

use crate::clock::{Clock, Deadline};
use crate::decide::ShiftAt;
use crate::genesys::wire::{ScheduleSearchOutcome, ScheduleSearchRequest};
use crate::genesys::{GenesysClient, GenesysError};
use crate::model::{ActivityCategory, UserId};
use crate::ports::{PlatformError, ShiftCache, ShiftRefresh, ShiftSource};

/// The schedule search takes this many user ids per call.
const SEARCH_CHUNK: usize = 100;
/// Activity codes change rarely; re-read them hourly.
const ACTIVITY_CODE_TTL: Duration = Duration::from_secs(3600);
/// How far around "now" a fetched schedule reaches.
const WINDOW: chrono::Duration = chrono::Duration::hours(24);

pub use crate::decide::{ScheduledSpan, ShiftWindow};

/// A business unit's activity code → category map and when it was read.
type CachedCodes = (DateTime<Utc>, HashMap<String, ActivityCategory>);

/// Reads published schedules from WFM.
///
/// No per-agent lookup: a user's business unit is learned from the searches themselves. A
/// user not placed yet is searched in every business unit (listed once, or configured); the
/// unit whose answer names them is remembered, and a user no unit names is remembered as not
/// scheduled in WFM. Both are re-learned after `PLACEMENT_TTL`.
#[derive(Debug)]
pub struct WfmShifts {
    client: GenesysClient,
    clock: Arc<dyn Clock>,
    /// Business units to search; empty: the org's, listed (cached per instance).
    business_units: Vec<String>,
    listed: Mutex<Option<(DateTime<Utc>, Vec<String>)>>,
    placed: Mutex<HashMap<UserId, Placement>>,
    codes: Mutex<HashMap<String, CachedCodes>>,
}

/// Which business unit schedules a user (`None`: none does), as learned at `learned_at`.
#[derive(Debug, Clone)]
struct Placement {
    unit: Option<String>,
    learned_at: DateTime<Utc>,
}

/// Searches to make: users by business unit, and the users searched everywhere to place them.
#[derive(Debug, Default)]
struct SearchPlan {
    by_unit: HashMap<String, Vec<UserId>>,
    unplaced: HashSet<UserId>,
}

/// Business units and placements change rarely; re-learn them hourly.
const PLACEMENT_TTL: Duration = Duration::from_secs(3600);

impl WfmShifts {
    pub fn new(client: GenesysClient, clock: Arc<dyn Clock>, business_units: Vec<String>) -> Self {
        Self {
            client,
            clock,
            business_units,
            listed: Mutex::default(),
            placed: Mutex::default(),
            codes: Mutex::default(),
        }
    }

    /// Schedules of `users` over `[from, to)`. Users WFM does not know get an empty window;
    /// users whose search is still `Processing` are left out (asked again later).
    pub async fn windows(
        &self,
        users: &[UserId],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<HashMap<UserId, ShiftWindow>, GenesysError> {
        let fetched_at = self.clock.now();
        let empty = || ShiftWindow {
            from,
            to,
            fetched_at,
            spans: Vec::new(),
            zone: None,
        };
        let mut windows: HashMap<UserId, ShiftWindow> =
            users.iter().map(|u| (u.clone(), empty())).collect();
        let plan = self.plan(users, deadline).await?;
        let mut found: HashMap<UserId, String> = HashMap::new();
        let mut complete = true;
        for (unit, members) in &plan.by_unit {
            let categories = self.categories(unit, deadline).await?;
            for chunk in members.chunks(SEARCH_CHUNK) {
                let request = ScheduleSearchRequest {
                    start_date: from,
                    end_date: to,
                    user_ids: chunk.iter().map(|u| u.as_str().to_owned()).collect(),
                };
                let result = match self.client.search_schedules(unit, &request, deadline).await {
                    Ok(ScheduleSearchOutcome::Complete(result)) => result,
                    Ok(ScheduleSearchOutcome::Processing { operation_id }) => {
                        tracing::warn!(business_unit = %unit, ?operation_id, "schedule search still processing; asking again later");
                        for user in chunk {
                            windows.remove(user);
                        }
                        complete = false;
                        continue;
                    }
                    Err(error) => {
                        // A unit gone or renamed: learn the placements again next time.
                        self.forget().await;
                        return Err(error);
                    }
                };
                for schedule in result.agent_schedules {
                    let Ok(user) = UserId::parse(&schedule.user.id) else {
                        continue;
                    };
                    let spans = schedule
                        .shifts
                        .iter()
                        .flat_map(|shift| shift.activities.iter())
                        .map(|activity| ScheduledSpan {
                            start: activity.start_date,
                            end: activity.start_date
                                + chrono::Duration::minutes(activity.length_minutes),
                            category: categories
                                .get(&activity.activity_code_id)
                                .copied()
                                .unwrap_or(ActivityCategory::Unknown),
                        })
                        .collect();
                    if let Some(window) = windows.get_mut(&user) {
                        window.spans = spans;
                        window.zone.clone_from(&result.business_unit_time_zone);
                        found.insert(user, unit.clone());
                    }
                }
            }
        }
        self.learn(&plan, &found, complete).await;
        Ok(windows)
    }

    /// Which business units to search for whom: a placed user in theirs, a user never placed
    /// (or placed too long ago) in every one.
    async fn plan(&self, users: &[UserId], deadline: Deadline) -> Result<SearchPlan, GenesysError> {
        let now = self.clock.now();
        let mut plan = SearchPlan::default();
        {
            let placed = self.placed.lock().await;
            for user in users {
                match placed.get(user).filter(|p| fresh(p.learned_at, now)) {
                    Some(Placement {
                        unit: Some(unit), ..
                    }) => {
                        plan.by_unit
                            .entry(unit.clone())
                            .or_default()
                            .push(user.clone());
                    }
                    // Not scheduled in WFM: no shift to respect.
                    Some(Placement { unit: None, .. }) => {}
                    None => {
                        plan.unplaced.insert(user.clone());
                    }
                }
            }
        }
        if !plan.unplaced.is_empty() {
            for unit in self.all_units(deadline).await? {
                plan.by_unit
                    .entry(unit)
                    .or_default()
                    .extend(plan.unplaced.iter().cloned());
            }
        }
        Ok(plan)
    }

    /// Remembers where the searches placed each user. A user no unit named is remembered as
    /// unscheduled if they were searched everywhere, or searched everywhere next time if their
    /// own unit no longer names them — but only when every search answered (a `Processing`
    /// unit may still hold them).
    async fn learn(&self, plan: &SearchPlan, found: &HashMap<UserId, String>, complete: bool) {
        let learned_at = self.clock.now();
        let mut placed = self.placed.lock().await;
        for user in plan.by_unit.values().flatten() {
            match found.get(user) {
                Some(unit) => {
                    let unit = Some(unit.clone());
                    placed.insert(user.clone(), Placement { unit, learned_at });
                }
                None if !complete => {}
                None if plan.unplaced.contains(user) => {
                    placed.insert(
                        user.clone(),
                        Placement {
                            unit: None,
                            learned_at,
                        },
                    );
                }
                None => {
                    placed.remove(user);
                }
            }
        }
    }

    async fn forget(&self) {
        self.placed.lock().await.clear();
        *self.listed.lock().await = None;
    }

    /// The configured business units, or the org's (listed once per `PLACEMENT_TTL`).
    async fn all_units(&self, deadline: Deadline) -> Result<Vec<String>, GenesysError> {
        if !self.business_units.is_empty() {
            return Ok(self.business_units.clone());
        }
        let now = self.clock.now();
        let mut listed = self.listed.lock().await;
        if let Some((_, units)) = listed.as_ref().filter(|(at, _)| fresh(*at, now)) {
            return Ok(units.clone());
        }
        let units = self.client.business_units(deadline).await?;
        *listed = Some((now, units.clone()));
        Ok(units)
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

/// A cached window that stays fresh this much longer is not refreshed: the sweep runs every
/// minute, so the next run still finds it in time (infra/template.yaml, `rate(1 minute)`).
const REFRESH_AHEAD: Duration = Duration::from_secs(120);

/// Whether something learned at `at` is still trusted at `now`.
fn fresh(at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    chrono::Duration::from_std(PLACEMENT_TTL).is_ok_and(|ttl| now - at < ttl)
}

#[async_trait]
impl ShiftSource for WfmShifts {
    async fn shifts_at(
        &self,
        users: &[UserId],
        at: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<HashMap<UserId, ShiftAt>, PlatformError> {
        let windows = self
            .windows(users, at - WINDOW, at + WINDOW, deadline)
            .await?;
        Ok(users
            .iter()
            .map(|user| {
                let found = windows
                    .get(user)
                    .and_then(|w| w.at(at))
                    .unwrap_or(ShiftAt::UNKNOWN);
                (user.clone(), found)
            })
            .collect())
    }
}

/// WFM behind the table's shift cache: fresh cached windows answer without a WFM call.
#[derive(Debug)]
pub struct CachedShifts {
    wfm: WfmShifts,
    cache: Arc<dyn ShiftCache>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
}

#[async_trait]
impl ShiftRefresh for CachedShifts {
    async fn refresh(
        &self,
        users: &[UserId],
        at: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<usize, PlatformError> {
        Ok(CachedShifts::refresh(self, users, at, deadline).await?)
    }
}

impl CachedShifts {
    pub fn new(
        wfm: WfmShifts,
        cache: Arc<dyn ShiftCache>,
        clock: Arc<dyn Clock>,
        ttl: Duration,
    ) -> Self {
        Self {
            wfm,
            cache,
            clock,
            ttl,
        }
    }

    /// Fetches and caches the windows around `at` of `users` (the sweep keeps them fresh).
    /// A user whose cached window covers `at` and stays fresh past the next sweep is skipped:
    /// the sweep after that refreshes it in time. Returns how many were cached; users still
    /// `Processing` are not.
    pub async fn refresh(
        &self,
        users: &[UserId],
        at: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<usize, GenesysError> {
        let cached = self.cache.get(users).await.unwrap_or_else(|error| {
            tracing::warn!(%error, "shift cache unreadable; refreshing every window");
            HashMap::new()
        });
        let next_sweep = chrono::Duration::from_std(REFRESH_AHEAD).unwrap_or_default();
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or_default();
        let stale: Vec<UserId> = users
            .iter()
            .filter(|user| {
                !cached.get(*user).is_some_and(|w| {
                    w.view_at(at).is_some() && self.clock.now() + next_sweep < w.fetched_at + ttl
                })
            })
            .cloned()
            .collect();
        if stale.is_empty() {
            return Ok(0);
        }
        let windows = self
            .wfm
            .windows(&stale, at - WINDOW, at + WINDOW, deadline)
            .await?;
        for (user, window) in &windows {
            if let Err(error) = self.cache.put(user, window, self.ttl).await {
                tracing::warn!(user_id = %user, %error, "could not cache the shift window");
            }
        }
        Ok(windows.len())
    }

    fn fresh(&self, window: &ShiftWindow) -> bool {
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or_default();
        self.clock.now() < window.fetched_at + ttl
    }
}

#[async_trait]
impl ShiftSource for CachedShifts {
    async fn shifts_at(
        &self,
        users: &[UserId],
        at: DateTime<Utc>,
        deadline: Deadline,
    ) -> Result<HashMap<UserId, ShiftAt>, PlatformError> {
        let cached = match self.cache.get(users).await {
            Ok(cached) => cached,
            Err(error) => {
                tracing::warn!(%error, "shift cache unreadable; asking WFM");
                HashMap::new()
            }
        };
        let mut views = HashMap::new();
        let mut misses = Vec::new();
        for user in users {
            match cached
                .get(user)
                .filter(|w| self.fresh(w))
                .and_then(|w| w.at(at))
            {
                Some(view) => {
                    views.insert(user.clone(), view);
                }
                None => misses.push(user.clone()),
            }
        }
        if !misses.is_empty() {
            let windows = self
                .wfm
                .windows(&misses, at - WINDOW, at + WINDOW, deadline)
                .await?;
            for user in misses {
                let view = match windows.get(&user) {
                    Some(window) => {
                        if let Err(error) = self.cache.put(&user, window, self.ttl).await {
                            tracing::warn!(user_id = %user, %error, "could not cache the shift window");
                        }
                        window.at(at).unwrap_or(ShiftAt::UNKNOWN)
                    }
                    None => ShiftAt::UNKNOWN,
                };
                views.insert(user, view);
            }
        }
        Ok(views)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::ShiftView;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_773_928_800 + minute * 60, 0).expect("valid")
    }

    #[test]
    fn window_answers_only_for_moments_it_covers() {
        let window = ShiftWindow {
            from: at(0),
            to: at(600),
            fetched_at: at(0),
            spans: vec![ScheduledSpan {
                start: at(60),
                end: at(120),
                category: ActivityCategory::Meeting,
            }],
            zone: None,
        };
        assert_eq!(
            window.view_at(at(90)),
            Some(ShiftView::Activity(ActivityCategory::Meeting))
        );
        assert_eq!(
            window.view_at(at(120)),
            Some(ShiftView::NoShift),
            "end is exclusive"
        );
        assert_eq!(window.view_at(at(600)), None, "outside the window: ask WFM");
    }
}
