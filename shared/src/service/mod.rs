//! The use cases the functions call. They see ports and domain types only, never SDK types;
//! `crate::compose` builds them from adapters.

pub mod calendar_notify;
mod calendar_projection;
pub mod calendar_sync;
pub mod calendar_upkeep;
pub mod dispatch;
pub mod lookahead;
pub mod outbox_relay;
pub mod policy_refresh;
pub mod schedule_check;
pub mod transition;
