//! The `webhook-dispatch` Lambda: SQS notifications → webhooks, Slack and Teams.
//! `main.rs` composes it (`presence_autopilot::compose::webhook_dispatch`, which also reads its
//! settings); `handler` translates the SQS event.

pub mod handler;
