//! The `webhook-dispatch` Lambda: SQS notifications → webhooks, Slack and Teams.
//! `main.rs` wires it; `config` reads the environment; `handler` translates the SQS event.

pub mod config;
pub mod handler;
