//! In-memory fakes of the delivery ports.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::model::SubscriberId;
use crate::ports::StoreError;
use crate::ports::{
    AttemptOutcome, Channel, DisabledEndpoint, EndpointRegistry, MessageVisibility,
};

#[derive(Debug, Default)]
pub struct FakeEndpoints {
    disabled: Mutex<Vec<DisabledEndpoint>>,
}

impl FakeEndpoints {
    pub fn all(&self) -> Vec<DisabledEndpoint> {
        self.disabled.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl EndpointRegistry for FakeEndpoints {
    async fn disabled(
        &self,
        subscriber: &SubscriberId,
    ) -> Result<Option<DisabledEndpoint>, StoreError> {
        Ok(self
            .all()
            .into_iter()
            .rev()
            .find(|d| &d.subscriber == subscriber))
    }

    async fn disable(&self, endpoint: &DisabledEndpoint) -> Result<(), StoreError> {
        if let Ok(mut disabled) = self.disabled.lock() {
            disabled.push(endpoint.clone());
        }
        Ok(())
    }
}

/// Records every visibility change as (receipt handle, duration).
#[derive(Debug, Default)]
pub struct FakeVisibility {
    changes: Mutex<Vec<(String, Duration)>>,
}

impl FakeVisibility {
    pub fn changes(&self) -> Vec<(String, Duration)> {
        self.changes.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl MessageVisibility for FakeVisibility {
    async fn set_visibility(
        &self,
        receipt_handle: &str,
        after: Duration,
    ) -> Result<(), crate::ports::MessagingError> {
        if let Ok(mut changes) = self.changes.lock() {
            changes.push((receipt_handle.to_owned(), after));
        }
        Ok(())
    }
}

/// A channel that keeps what it was handed and answers the outcomes queued for it, then
/// `Delivered` (HTTP 200).
#[derive(Debug)]
pub struct FakeChannel<M> {
    sent: Mutex<Vec<M>>,
    answers: Mutex<Vec<AttemptOutcome>>,
}

impl<M> Default for FakeChannel<M> {
    fn default() -> Self {
        Self {
            sent: Mutex::new(Vec::new()),
            answers: Mutex::new(Vec::new()),
        }
    }
}

impl<M: Clone> FakeChannel<M> {
    /// Every message sent, in order.
    pub fn sent(&self) -> Vec<M> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The next attempt answers `outcome` (queued: several answer in order).
    pub fn answer_next(&self, outcome: AttemptOutcome) {
        if let Ok(mut answers) = self.answers.lock() {
            answers.push(outcome);
        }
    }
}

#[async_trait]
impl<M: Clone + Send + Sync + std::fmt::Debug> Channel<M> for FakeChannel<M> {
    async fn send(&self, message: &M) -> AttemptOutcome {
        if let Ok(mut sent) = self.sent.lock() {
            sent.push(message.clone());
        }
        match self.answers.lock() {
            Ok(mut answers) if !answers.is_empty() => answers.remove(0),
            _ => AttemptOutcome::Delivered { status: 200 },
        }
    }
}
