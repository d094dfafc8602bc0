//! The Presence Autopilot domain crate: everything the Lambda functions share.
//!
//! Arrows point inward: `service` code sees ports, never SDK types; `model` knows no I/O.

pub mod clock;
pub mod genesys;
pub mod model;
pub mod policy;
