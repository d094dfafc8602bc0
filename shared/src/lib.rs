//! The Presence Autopilot domain crate: everything the Lambda functions share.
//!
//! Arrows point inward: `service` code sees ports, never SDK types; `model` knows no I/O.

pub mod aws;
pub mod calendar;
pub mod clock;
pub mod compose;
pub mod config;
pub mod decide;
pub mod delivery;
pub mod events;
#[cfg(any(test, feature = "test-helpers"))]
pub mod fakes;
pub mod genesys;
pub mod graph;
pub mod model;
pub mod policy;
pub mod ports;
pub mod secrets;
pub mod service;
pub mod state;
pub mod telemetry;
pub mod wfm;
