//! The `calendar-notify` function's request handling, as a library so the integration tests
//! and the benchmark serve the very same code over HTTP.

pub mod handler;
#[cfg(feature = "local-server")]
pub mod local;
