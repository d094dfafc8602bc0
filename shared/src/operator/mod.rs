//! What the people on call use (the `autopilot` command line): an agent's decisions explained
//! in plain words, an agent's day and a team's forecast as pictures, and the dead-letter queues
//! replayed safely. Pure renderings of domain types, one use case over ports (`dead_letters`),
//! and the floor's reader (`floor`: the connector's store, WFM and the team directory).

pub mod dead_letters;
pub mod explain;
pub mod floor;
pub mod forecast_page;
pub mod team_page;
pub mod timeline;
