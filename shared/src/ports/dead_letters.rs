//! The dead-letter queues, as the people on call see them: list, look at, re-send, delete.
//! The use case (`crate::operator::dead_letters`) decides where a message goes and in what
//! order; this port only moves messages.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::StoreError;

/// One queue of the stack, with what an operator needs to judge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterQueue {
    pub name: String,
    pub url: String,
    /// Approximate: visible plus in flight.
    pub depth: u64,
    /// Queues whose redrive policy points here (`ListDeadLetterSourceQueues`).
    pub sources: Vec<String>,
}

/// A message attribute kept for the re-send (String and Number types; Binary is not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LetterAttribute {
    pub data_type: String,
    pub value: String,
}

/// One message received from a dead-letter queue; invisible to others until it is deleted,
/// released, or its visibility timeout passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub message_id: String,
    /// Opaque; valid for this receive only.
    pub receipt_handle: String,
    pub body: String,
    pub attributes: BTreeMap<String, LetterAttribute>,
    pub receive_count: u32,
    /// When the message was first sent (to the source queue, for a redriven message).
    pub first_sent: Option<DateTime<Utc>>,
    /// FIFO only.
    pub group_id: Option<String>,
    /// FIFO only.
    pub deduplication_id: Option<String>,
}

/// Where a dead letter is sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayTarget {
    /// SendMessage with the original body and attributes.
    Queue { url: String },
    /// PutEvents of the body, read as an EventBridge event ([`BusEvent`]).
    Bus { name: String },
}

impl fmt::Display for ReplayTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Queue { url } => write!(f, "queue {url}"),
            Self::Bus { name } => write!(f, "event bus {name}"),
        }
    }
}

/// The parts of an EventBridge event that PutEvents takes again. EventBridge gives the replay
/// a new event id; consumers screen repeats by trigger id and state, not only by event id.
#[derive(Debug, Clone, PartialEq)]
pub struct BusEvent {
    pub source: String,
    pub detail_type: String,
    /// A JSON object.
    pub detail: Value,
    pub resources: Vec<String>,
    pub time: Option<DateTime<Utc>>,
}

impl BusEvent {
    /// Reads a dead letter's body; the error names the first field that is missing or wrong.
    pub fn parse(body: &str) -> Result<Self, StoreError> {
        let invalid = |field: &str, reason: &str| {
            StoreError::Invalid(format!(
                "not an EventBridge event: field `{field}`: {reason}"
            ))
        };
        let event: Value =
            serde_json::from_str(body).map_err(|e| invalid("(body)", &e.to_string()))?;
        let text = |field: &str| match event.get(field) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(_) => Err(invalid(field, "not a non-empty string")),
            None => Err(invalid(field, "missing")),
        };
        let source = text("source")?;
        // PutEvents refuses `aws.*` sources (scheduled rules, partner buses): say so up front.
        if source.starts_with("aws.") {
            return Err(invalid(
                "source",
                &format!("{source} is reserved for AWS; PutEvents cannot send it again"),
            ));
        }
        let detail_type = text("detail-type")?;
        let detail = match event.get("detail") {
            Some(detail @ Value::Object(_)) => detail.clone(),
            Some(_) => return Err(invalid("detail", "not a JSON object")),
            None => return Err(invalid("detail", "missing")),
        };
        let resources = match event.get("resources") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| invalid("resources", "not an array of strings"))?,
            Some(_) => return Err(invalid("resources", "not an array of strings")),
        };
        let time = match event.get("time") {
            None | Some(Value::Null) => None,
            Some(Value::String(raw)) => Some(
                DateTime::parse_from_rfc3339(raw)
                    .map_err(|e| invalid("time", &e.to_string()))?
                    .to_utc(),
            ),
            Some(_) => return Err(invalid("time", "not an RFC 3339 string")),
        };
        Ok(Self {
            source,
            detail_type,
            detail,
            resources,
            time,
        })
    }
}

/// The stack's queues and their messages (SQS, plus EventBridge for bus targets).
#[async_trait]
pub trait DeadLetters: Send + Sync + fmt::Debug {
    /// Every queue whose name starts with `prefix` (the stack name), with depth and sources.
    async fn list(&self, prefix: &str) -> Result<Vec<DeadLetterQueue>, StoreError>;

    /// Receives up to `max` messages (at most 10 per call) with a short visibility timeout, so
    /// those not deleted return to the queue by themselves. Empty: none visible now.
    async fn peek(&self, queue_url: &str, max: usize) -> Result<Vec<DeadLetter>, StoreError>;

    /// Sends the letter to `target`; the new message or event id.
    async fn resend(
        &self,
        target: &ReplayTarget,
        letter: &DeadLetter,
    ) -> Result<String, StoreError>;

    /// Deletes the letter from its dead-letter queue (only after a confirmed re-send).
    async fn delete(&self, queue_url: &str, letter: &DeadLetter) -> Result<(), StoreError>;

    /// Makes the letter visible again at once (it stays in the queue).
    async fn release(&self, queue_url: &str, letter: &DeadLetter) -> Result<(), StoreError>;
}
