//! The Presence Autopilot domain crate: everything the Lambda functions share.
//!
//! Arrows point inward (docs/architecture.md): the domain (`model`, `state`, `events`, `policy`,
//! `decide`, `calendar`) knows no I/O; `ports` speak domain types; adapters (`aws`, `genesys`,
//! `wfm`, `graph`, `delivery`'s senders) implement them; use cases (`service`, `delivery::dispatch`)
//! see only ports; `compose` builds it all for the functions and the tests.

pub mod aws;
pub mod calendar;
mod calendar_client;
#[cfg(feature = "cli")]
pub mod cli;
pub mod clock;
pub mod compose;
pub mod config;
pub mod decide;
pub mod delivery;
pub mod events;
#[cfg(any(test, feature = "test-helpers"))]
pub mod fakes;
pub mod genesys;
pub mod google;
pub mod graph;
pub mod ingress;
pub mod model;
pub mod operator;
pub mod policy;
pub mod ports;
pub mod secret_cache;
pub mod service;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod wfm;
