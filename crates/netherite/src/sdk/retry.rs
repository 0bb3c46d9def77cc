//! Retries of activities, with durable timers between the attempts.
//!
//! A retry is plain orchestration code: schedule the activity, and if it fails, wait on a
//! durable timer and schedule it again. Every attempt and every wait is an action in the
//! history, so a replay walks through the same attempts, and a crash between two attempts
//! loses nothing. Delays and the retry timeout are measured on the orchestration's replayed
//! clock, never a real one.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::payload::encode;
use super::state::SlotKind;
use super::{OrchestrationContext, TaskError};

/// How often and how patiently to retry a failed activity.
///
/// Attempt `n + 1` starts `first_retry_interval * backoff_coefficient^(n - 1)` after attempt
/// `n` failed, capped at `max_retry_interval`. Retrying stops after `max_attempts` attempts,
/// on a failure marked non-retriable, or when the next attempt would start more than
/// `retry_timeout` after the first one started.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 0 counts as 1.
    pub max_attempts: u32,
    /// The wait before the second attempt.
    pub first_retry_interval: Duration,
    /// What each wait is multiplied by for the next; 1.0 keeps waits equal.
    pub backoff_coefficient: f64,
    /// The longest wait, if capped.
    pub max_retry_interval: Option<Duration>,
    /// How long after the first attempt the last one may start, if limited.
    pub retry_timeout: Option<Duration>,
}

impl RetryPolicy {
    /// Up to `max_attempts` attempts, `first_retry_interval` apart, with no backoff and no
    /// timeout.
    pub fn new(max_attempts: u32, first_retry_interval: Duration) -> Self {
        RetryPolicy {
            max_attempts,
            first_retry_interval,
            backoff_coefficient: 1.0,
            max_retry_interval: None,
            retry_timeout: None,
        }
    }

    /// The wait after failed attempt `attempt` (1 for the first).
    ///
    /// A coefficient that makes no sense (negative, not a number) or a wait too long for a
    /// `Duration` gives the cap, or the first interval when there is no cap.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs =
            self.first_retry_interval.as_secs_f64() * self.backoff_coefficient.powi(exponent);
        let fallback = self.max_retry_interval.unwrap_or(self.first_retry_interval);
        let delay = Duration::try_from_secs_f64(secs).unwrap_or(fallback);
        match self.max_retry_interval {
            Some(cap) => delay.min(cap),
            None => delay,
        }
    }
}

impl OrchestrationContext {
    /// Schedules activity `name` and retries it per `policy` while it fails; resolves to the
    /// first success or to the last failure.
    ///
    /// Each attempt is a `ScheduleTask` action and each wait a `CreateTimer` action, so the
    /// history shows every attempt.
    pub fn call_activity_with_retry<O: DeserializeOwned + 'static>(
        &self,
        name: &str,
        input: impl Serialize,
        policy: RetryPolicy,
    ) -> impl Future<Output = Result<O, TaskError>> + 'static {
        let ctx = self.clone();
        let name = name.to_string();
        let input = encode(&input, &format!("the input of activity '{name}'"));
        async move {
            let input = match input {
                Ok(input) => input,
                Err(error) => {
                    let label = format!("activity '{name}'");
                    return ctx.failed::<O>(SlotKind::Activity, label, &error).await;
                }
            };
            retry_loop(&ctx, &name, input, &policy).await
        }
    }
}

async fn retry_loop<O: DeserializeOwned>(
    ctx: &OrchestrationContext,
    name: &str,
    input: netherite_core::model::Payload,
    policy: &RetryPolicy,
) -> Result<O, TaskError> {
    let first_started = ctx.current_utc_datetime();
    let mut attempt = 1;
    loop {
        let error = match ctx.schedule_activity::<O>(name, input.clone()).await {
            Ok(output) => return Ok(output),
            Err(error) => error,
        };
        if error.failure.is_non_retriable || attempt >= policy.max_attempts {
            return Err(error);
        }

        let delay = policy.delay_after(attempt);
        let next_start = ctx.current_utc_datetime().saturating_add(delay);
        let too_late = policy
            .retry_timeout
            .is_some_and(|timeout| next_start.saturating_since(first_started) > timeout);
        if too_late {
            return Err(error);
        }
        tracing::debug!(
            activity = name,
            attempt,
            ?delay,
            "Activity failed; retrying"
        );
        ctx.create_timer(delay).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits grow by the coefficient and stop growing at the cap.
    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            backoff_coefficient: 2.0,
            max_retry_interval: Some(Duration::from_secs(5)),
            ..RetryPolicy::new(10, Duration::from_secs(1))
        };
        let delays: Vec<_> = (1..=5).map(|n| policy.delay_after(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 5, 5]);
    }

    /// Nonsense coefficients and overflowing waits fall back instead of panicking.
    #[test]
    fn nonsense_coefficients_fall_back() {
        let negative = RetryPolicy {
            backoff_coefficient: -3.0,
            ..RetryPolicy::new(3, Duration::from_secs(2))
        };
        assert_eq!(negative.delay_after(2), Duration::from_secs(2));

        let huge = RetryPolicy {
            backoff_coefficient: 1e300,
            max_retry_interval: Some(Duration::from_secs(60)),
            ..RetryPolicy::new(3, Duration::from_secs(2))
        };
        assert_eq!(huge.delay_after(u32::MAX), Duration::from_secs(60));
    }
}
