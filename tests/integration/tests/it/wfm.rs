//! WFM schedules without a per-agent lookup: business units are listed once, a user is searched
//! in every unit until one names them, then only in theirs. Calls are counted, never timed.

use std::sync::Arc;

use genesys_sim::seed::{BusinessUnitSeed, DEMO_AGENTS, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Seed};
use presence_autopilot::clock::Clock;
use presence_autopilot::model::UserId;
use presence_autopilot::wfm::WfmShifts;

use crate::support::sim::{TestSim, deadline};

const DEMO: (&str, &str) = (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET);
const SECOND_UNIT: &str = "c3d9a2e4-5f60-4b7c-8d9e-0f1a2b3c4d5e";
const SECOND_MANAGEMENT_UNIT: &str = "d4e0b3f5-6071-4c8d-9eaf-1a2b3c4d5e6f";
const SEARCH: &str = "POST /api/v2/workforcemanagement/businessunits/{id}/agentschedules/search";
const LIST: &str = "GET /api/v2/workforcemanagement/businessunits";

fn user(index: usize) -> UserId {
    UserId::parse(DEMO_AGENTS[index].0).expect("uuid")
}

/// The demo org with a second business unit holding Cy (agent 2); Dee (agent 3) is in none.
fn two_units() -> Seed {
    let mut seed = Seed::default();
    let first = seed.business_units[0].clone();
    seed.business_units.push(BusinessUnitSeed {
        id: SECOND_UNIT.to_owned(),
        name: "Second Contact Centre".to_owned(),
        management_units: vec![SECOND_MANAGEMENT_UNIT.to_owned()],
        ..first
    });
    seed.users[2].management_unit_id = Some(SECOND_MANAGEMENT_UNIT.to_owned());
    seed
}

#[tokio::test]
async fn users_are_placed_by_the_searches_and_then_searched_only_in_their_unit() {
    let sim = TestSim::start_with(two_units()).await;
    let (client, clock) = sim.client(DEMO);
    let wfm = WfmShifts::new(client, Arc::new(clock.clone()), Vec::new());
    let (ada, cy, dee) = (user(0), user(2), user(3));
    let users = [ada.clone(), cy.clone(), dee.clone()];
    let now = clock.now();
    let (from, to) = (
        now - chrono::Duration::hours(24),
        now + chrono::Duration::hours(24),
    );

    let served = sim.served();
    let first = wfm
        .windows(&users, from, to, deadline(&clock, 10))
        .await
        .expect("windows");
    let calls = sim.served_since(served);
    assert_eq!(count(&calls, LIST), 1, "{calls:?}");
    assert_eq!(
        count(&calls, SEARCH),
        2,
        "each unit once, for all three: {calls:?}"
    );
    assert!(
        calls.iter().all(|c| !c.contains("managementunit")),
        "no per-agent lookup: {calls:?}"
    );
    assert!(
        !first[&ada].spans.is_empty(),
        "Ada's shift, from the first unit"
    );
    assert!(
        !first[&cy].spans.is_empty(),
        "Cy's shift, from the second unit"
    );
    assert!(first[&dee].spans.is_empty(), "Dee is scheduled nowhere");

    let served = sim.served();
    let again = wfm
        .windows(&users, from, to, deadline(&clock, 10))
        .await
        .expect("windows");
    let calls = sim.served_since(served);
    assert_eq!(
        calls,
        vec![SEARCH, SEARCH],
        "Ada in hers, Cy in his, Dee nowhere; no listing, no codes"
    );
    assert_eq!(again[&ada].spans, first[&ada].spans);
    assert_eq!(again[&cy].spans, first[&cy].spans);

    let served = sim.served();
    let only_dee = wfm
        .windows(std::slice::from_ref(&dee), from, to, deadline(&clock, 10))
        .await
        .expect("windows");
    assert!(
        sim.served_since(served).is_empty(),
        "known to be unscheduled"
    );
    assert!(only_dee[&dee].spans.is_empty());
}

#[tokio::test]
async fn a_user_who_moved_unit_is_placed_again() {
    let sim = TestSim::start_with(two_units()).await;
    let (client, clock) = sim.client(DEMO);
    let wfm = WfmShifts::new(client, Arc::new(clock.clone()), Vec::new());
    let ada = user(0);
    let now = clock.now();
    let (from, to) = (
        now - chrono::Duration::hours(24),
        now + chrono::Duration::hours(24),
    );
    let first = wfm
        .windows(std::slice::from_ref(&ada), from, to, deadline(&clock, 10))
        .await
        .expect("windows");
    assert!(!first[&ada].spans.is_empty());

    // Ada moves to the second unit; her old unit's search no longer names her.
    sim.server
        .sim
        .lock()
        .users
        .get_mut(ada.as_str())
        .expect("ada")
        .management_unit_id = Some(SECOND_MANAGEMENT_UNIT.to_owned());
    let served = sim.served();
    let moved = wfm
        .windows(std::slice::from_ref(&ada), from, to, deadline(&clock, 10))
        .await
        .expect("windows");
    assert_eq!(sim.served_since(served), vec![SEARCH], "her old unit only");
    assert!(moved[&ada].spans.is_empty(), "answered by what WFM said");

    let served = sim.served();
    let placed = wfm
        .windows(std::slice::from_ref(&ada), from, to, deadline(&clock, 10))
        .await
        .expect("windows");
    assert_eq!(
        count(&sim.served_since(served), SEARCH),
        2,
        "searched everywhere again"
    );
    assert_eq!(
        placed[&ada].spans, first[&ada].spans,
        "found in the second unit"
    );
}

fn count(calls: &[String], call: &str) -> usize {
    calls.iter().filter(|c| *c == call).count()
}

/// Each user's zone is their business unit's (`businessUnitTimeZone` of the search that named
/// them); a user no unit schedules has none, so messages fall back to the calendar's zone or UTC.
#[tokio::test]
async fn each_user_gets_the_zone_of_the_business_unit_that_schedules_them() {
    use presence_autopilot::ports::ShiftSource;
    let mut seed = two_units();
    seed.business_units[1].time_zone = "Europe/Paris".to_owned();
    let sim = TestSim::start_with(seed).await;
    let (client, clock) = sim.client(DEMO);
    let wfm = WfmShifts::new(client, Arc::new(clock.clone()), Vec::new());
    let (ada, cy, dee) = (user(0), user(2), user(3));

    let found = wfm
        .shifts_at(
            &[ada.clone(), cy.clone(), dee.clone()],
            clock.now(),
            deadline(&clock, 10),
        )
        .await
        .expect("shifts");

    assert_eq!(found[&ada].zone, Some(chrono_tz::Tz::America__New_York));
    assert_eq!(found[&cy].zone, Some(chrono_tz::Tz::Europe__Paris));
    assert_eq!(found[&dee].zone, None);
}

/// The sweep refreshes the schedules of users still in a meeting; one whose cached window stays
/// fresh past the next sweep costs no search, one about to go stale is searched again.
#[tokio::test]
async fn the_sweep_refreshes_only_windows_that_would_go_stale_before_its_next_run() {
    use std::time::Duration;

    use presence_autopilot::fakes::InMemoryStore;
    use presence_autopilot::wfm::CachedShifts;
    let sim = TestSim::start().await;
    let (client, clock) = sim.client(DEMO);
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let ttl = Duration::from_secs(900);
    let cached = CachedShifts::new(
        WfmShifts::new(client, shared.clone(), Vec::new()),
        Arc::new(InMemoryStore::new(shared)),
        Arc::new(clock.clone()),
        ttl,
    );
    let ada = [user(0)];
    let searches = || count(&sim.served_since(0), SEARCH);
    let refresh = || async {
        cached
            .refresh(&ada, clock.now(), deadline(&clock, 10))
            .await
            .expect("refresh")
    };

    assert_eq!(refresh().await, 1, "not cached: fetched");
    let after_first = searches();
    assert_eq!(refresh().await, 0, "fresh past the next sweep: skipped");
    assert_eq!(searches(), after_first, "no search");
    clock.advance(ttl - Duration::from_secs(60));
    assert_eq!(
        refresh().await,
        1,
        "stale within two minutes: fetched again"
    );
    assert_eq!(searches(), after_first + 1);
}
