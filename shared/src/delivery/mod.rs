//! Delivering notifications to the outside world (docs/delivery.md): what each channel is sent
//! (`messages`, from the subscriber document, `subscribers`), when to try again (`retry`), and
//! the senders that implement the `Channel` port: Standard Webhooks signing through the SSRF
//! guard (`webhook`, `signing`, `http`, `ssrf`), Slack and Teams. The dispatch use case that
//! ties them together is `service::dispatch`.

pub mod http;
pub mod messages;
pub mod retry;
pub mod signing;
pub mod slack;
pub mod ssrf;
pub mod subscribers;
pub mod teams;
pub mod webhook;

pub use retry::{AttemptOutcome, RetrySchedule};
