//! The use cases the functions call. They see ports only, never SDK types.

pub mod bootstrap;
pub mod connector;
pub mod schedule_check;
pub mod transition;
