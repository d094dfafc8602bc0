//! The `calendar-notify` function's request handling, as a library so the integration tests
//! and the local run serve the very same code over HTTP.

pub mod handler;
