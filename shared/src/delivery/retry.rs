//! What one attempt's result means, and when to try again.
//!
//! Retries ride on the SQS message itself: a retryable failure sets the message's visibility
//! timeout to the next step of the schedule and reports the record failed, so SQS hands it back
//! then; `ApproximateReceiveCount` says which step is next, and after `maxReceiveCount` receives
//! SQS moves the message to the DLQ. A visibility timeout is capped at 12 h from the receive,
//! so no step (jitter and `Retry-After` included) exceeds `cap`, which leaves room for the
//! invocation that sets it (see docs/delivery.md).

use std::time::Duration;

use super::http::{GuardedError, HttpReply, TransportFailure};

pub use crate::ports::AttemptOutcome;

/// How an attempt's answer is classified (the senders' side of [`AttemptOutcome`]).
impl AttemptOutcome {
    pub fn retryable(reason: impl Into<String>) -> Self {
        Self::Retryable {
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent {
            reason: reason.into(),
        }
    }

    /// Classifies a webhook response by its status alone (Standard Webhooks semantics).
    pub fn from_status(reply: &HttpReply) -> Self {
        let status = reply.status;
        match status {
            200..=299 => Self::Delivered { status },
            300..=399 => Self::Permanent {
                reason: match &reply.redirect_host {
                    Some(host) => format!("HTTP {status}: redirect to {host} not followed"),
                    None => format!("HTTP {status}: redirects are not followed"),
                },
            },
            410 => Self::Gone {
                reason: "HTTP 410 Gone: endpoint disabled".to_owned(),
            },
            408 | 425 | 429 | 500..=599 => Self::Retryable {
                reason: format!("HTTP {status}"),
                retry_after: reply.retry_after,
            },
            _ => Self::Permanent {
                reason: format!("HTTP {status}"),
            },
        }
    }

    pub fn from_transport(failure: &TransportFailure) -> Self {
        Self::retryable(failure.to_string())
    }

    pub fn from_guarded(err: &GuardedError) -> Self {
        match err {
            GuardedError::Refused(refusal) => Self::permanent(format!("refused: {refusal}")),
            GuardedError::Transport(failure) => Self::from_transport(failure),
        }
    }
}

/// Retry delays by receive count, with jitter, never above `cap`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    steps: Vec<Duration>,
    jitter: f64,
    cap: Duration,
}

impl RetrySchedule {
    /// SQS's ceiling for a visibility timeout.
    pub const SQS_MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

    /// The Standard Webhooks schedule cut to what one visibility timeout can express, ±10 %
    /// jitter, capped 15 minutes under 12 h (a Lambda invocation lasts at most 15 minutes and
    /// the 12 h count from the receive, not from our call).
    pub fn standard() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        Self {
            steps: vec![
                Duration::from_secs(5),
                minutes(5),
                minutes(30),
                minutes(2 * 60),
                minutes(5 * 60),
                minutes(10 * 60),
                minutes(11 * 60 + 30),
            ],
            jitter: 0.1,
            cap: Self::SQS_MAX_VISIBILITY - minutes(15),
        }
    }

    /// A custom schedule (tests use second-long steps). `jitter` is a fraction (0.1 = ±10 %);
    /// `cap` is clamped to the SQS maximum. No steps means "retry at once".
    pub fn new(steps: Vec<Duration>, jitter: f64, cap: Duration) -> Self {
        Self {
            steps,
            jitter: jitter.clamp(0.0, 1.0),
            cap: cap.min(Self::SQS_MAX_VISIBILITY),
        }
    }

    pub fn steps(&self) -> &[Duration] {
        &self.steps
    }

    /// The visibility timeout to set after the `receive_count`-th receive failed (1 = the first
    /// receive; beyond the last step the last step repeats). A longer `Retry-After` wins.
    pub fn delay(
        &self,
        receive_count: u32,
        retry_after: Option<Duration>,
        rng: &mut fastrand::Rng,
    ) -> Duration {
        let index = usize::try_from(receive_count.saturating_sub(1)).unwrap_or(usize::MAX);
        let base = self
            .steps
            .get(index)
            .or(self.steps.last())
            .copied()
            .unwrap_or(Duration::ZERO);
        let factor = 1.0 + self.jitter * (rng.f64() * 2.0 - 1.0);
        let jittered = base.mul_f64(factor.max(0.0));
        jittered
            .max(retry_after.unwrap_or(Duration::ZERO))
            .min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16) -> HttpReply {
        HttpReply {
            status,
            retry_after: None,
            redirect_host: None,
            body: Vec::new(),
            truncated: false,
        }
    }

    #[test]
    fn statuses_classify_as_standard_webhooks_says() {
        assert_eq!(
            AttemptOutcome::from_status(&reply(204)),
            AttemptOutcome::Delivered { status: 204 }
        );
        assert!(matches!(
            AttemptOutcome::from_status(&reply(410)),
            AttemptOutcome::Gone { .. }
        ));
        for status in [429, 500, 502, 503, 504] {
            assert!(matches!(
                AttemptOutcome::from_status(&reply(status)),
                AttemptOutcome::Retryable { .. }
            ));
        }
        for status in [301, 302, 400, 401, 403, 404, 422] {
            assert!(matches!(
                AttemptOutcome::from_status(&reply(status)),
                AttemptOutcome::Permanent { .. }
            ));
        }
        let redirect = HttpReply {
            redirect_host: Some("10.0.0.1".to_owned()),
            ..reply(302)
        };
        assert_eq!(
            AttemptOutcome::from_status(&redirect),
            AttemptOutcome::permanent("HTTP 302: redirect to 10.0.0.1 not followed")
        );
    }

    #[test]
    fn standard_schedule_stays_under_the_visibility_cap_with_jitter() {
        let schedule = RetrySchedule::standard();
        let mut rng = fastrand::Rng::with_seed(7);
        for receive in 1..=20 {
            for _ in 0..200 {
                let delay = schedule.delay(receive, None, &mut rng);
                assert!(delay <= RetrySchedule::SQS_MAX_VISIBILITY - Duration::from_secs(900));
                let index = usize::try_from(receive - 1).expect("small").min(6);
                let base = schedule.steps()[index];
                assert!(delay >= base.mul_f64(0.9) && delay <= base.mul_f64(1.1).min(schedule.cap));
            }
        }
        let total: Duration = schedule.steps().iter().sum();
        assert_eq!(
            total.as_secs(),
            5 + 300 + 1800 + 7200 + 18000 + 36000 + 41400
        );
    }

    #[test]
    fn retry_after_wins_when_longer_but_never_passes_the_cap() {
        let schedule =
            RetrySchedule::new(vec![Duration::from_secs(5)], 0.0, Duration::from_secs(600));
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(schedule.delay(1, None, &mut rng), Duration::from_secs(5));
        assert_eq!(
            schedule.delay(1, Some(Duration::from_secs(60)), &mut rng),
            Duration::from_secs(60)
        );
        assert_eq!(
            schedule.delay(9, Some(Duration::from_secs(86_400)), &mut rng),
            Duration::from_secs(600)
        );
    }
}
