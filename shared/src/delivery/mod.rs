//! Delivering notifications to the outside world: Standard Webhooks signing, the SSRF guard,
//! Slack and Teams adapters, outcome classification and the retry schedule, and the dispatch
//! use case that ties them together (docs/delivery.md).

pub mod dispatch;
pub mod http;
pub mod retry;
pub mod signing;
pub mod slack;
pub mod ssrf;
pub mod subscribers;
pub mod teams;
pub mod webhook;

pub use dispatch::{
    BatchReport, DispatchError, DispatchSettings, Dispatcher, InboundRecord, RecordVerdict,
};
pub use retry::{AttemptOutcome, RetrySchedule};
