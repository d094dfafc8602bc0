//! What the people on call use (the `autopilot` command line): an agent's decisions explained
//! in plain words, an agent's day as a picture, and the dead-letter queues replayed safely.
//! Pure renderings of domain types, plus one use case over ports (`dead_letters`).

pub mod dead_letters;
pub mod explain;
pub mod forecast;
pub mod forecast_page;
pub mod policy_diff;
pub mod timeline;
