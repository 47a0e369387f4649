//! The retry layer: a call that failed in a safe, transient way is made again, after a
//! jittered backoff, as long as the request's deadline leaves room for the wait.
//!
//! What is safe is the verdict module's rule: nothing sent, or a transient failure of a
//! read or of a request carrying an `idempotency_key`. The wait before retry `n` is
//! `base_delay` (fixed) or `base_delay · 2^(n-1)` (exponential), at most `max_delay`,
//! then drawn uniformly from its upper half ("equal jitter"): callers failing together
//! spread out, and none retries sooner than half the policy's wait. Each retry is
//! logged with the request's ids; the number of calls goes to the request's
//! [`Attempts`](crate::handler::Attempts), which the response reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use futures_lite::future::Boxed;

use super::clock::Clock;
use super::timeout::fits;
use super::verdict::{fault_of, retryable};
use super::{Layered, Outcome, millis};
use crate::contract::{Backoff, RetryPolicy};
use crate::envelope::Payload;
use crate::envelope::weight::payload_weight;
use crate::handler::{Description, Handler, HandlerError, HandlerRequest};
use crate::health::HealthReport;

/// A handler whose safe, transient failures are retried.
pub struct Retry<I> {
    inner: Arc<I>,
    /// Whether the inner handler has a dependency (else it is never retried), asked once.
    calls_out: bool,
    /// The binding the retry logs name: its name, else its handler type's.
    binding: Arc<str>,
    policy: RetryPolicy,
    clock: Arc<dyn Clock>,
    jitter: Arc<Jitter>,
}

impl<I: Layered> Retry<I> {
    /// `inner`, retried as `policy` says, waiting on `clock`, jittered by `jitter`.
    pub fn new(inner: I, policy: RetryPolicy, clock: Arc<dyn Clock>, jitter: Jitter) -> Self {
        Retry {
            calls_out: inner.has_dependency(),
            binding: inner.handler_type().as_str().into(),
            inner: Arc::new(inner),
            policy,
            clock,
            jitter: Arc::new(jitter),
        }
    }
}

impl<I> Retry<I> {
    /// This layer, its logs naming the binding `binding`.
    #[must_use]
    pub fn for_binding(mut self, binding: &str) -> Self {
        self.binding = binding.into();
        self
    }
}

impl<I: Layered> Handler for Retry<I> {
    forward_to_inner!();

    fn execute(&self, request: HandlerRequest) -> Boxed<Outcome> {
        // A retry needs a copy of the request, kept from before the first call; a handler
        // without a dependency never fails in a way that is retried.
        if !self.calls_out {
            return self.inner.execute(request);
        }
        // The copy is charged to the request's share of the memory budget, which gives it
        // back with the rest once the response has left. Without room for it the call is
        // made once, as if the policy allowed no retry: that may still succeed, where
        // refusing the request could not.
        let copy = payload_weight(&request.payload);
        if !request.charge.try_grow(copy) {
            log::warn!(
                correlation_id:% = request.correlation_id,
                envelope_id:? = request.envelope_id,
                binding = &*self.binding,
                operation = request.operation.as_str();
                "no room in the memory budget for the copy retries need ({copy} bytes): calling once, without retries"
            );
            return self.inner.execute(request);
        }
        let (inner, policy) = (Arc::clone(&self.inner), self.policy);
        let (clock, jitter) = (Arc::clone(&self.clock), Arc::clone(&self.jitter));
        let binding = Arc::clone(&self.binding);
        Box::pin(async move {
            let handler_type = inner.handler_type();
            let mut calls = 1;
            loop {
                let result = inner.call(request.clone()).await;
                let fault = fault_of(handler_type, &result);
                let again = calls <= policy.max_retries
                    && retryable(fault, &request.operation, &request.payload);
                let wait = jitter.spread(delay(&policy, calls));
                if !again || !fits(clock.now(), wait, request.deadline) {
                    request.attempts.set(calls);
                    return result;
                }
                log::warn!(
                    correlation_id:% = request.correlation_id,
                    envelope_id:? = request.envelope_id,
                    handler_type:% = handler_type,
                    binding = &*binding,
                    operation = request.operation.as_str(),
                    attempt = calls,
                    delay_ms = wait.as_millis() as u64;
                    "call {calls} failed ({}); retrying in {} ms",
                    reason(&result),
                    wait.as_millis()
                );
                clock.sleep_until(clock.now() + wait).await;
                calls += 1;
            }
        })
    }

    fn describe(&self) -> Description {
        let mut description = self.inner.describe();
        let limits = &mut description.limits;
        limits.insert("max_retries".to_owned(), u64::from(self.policy.max_retries));
        limits.insert(
            "retry_base_delay_ms".to_owned(),
            millis(self.policy.base_delay),
        );
        limits.insert(
            "retry_max_delay_ms".to_owned(),
            millis(self.policy.max_delay),
        );
        description
    }

    fn health_check(&self) -> Boxed<HealthReport> {
        self.inner.health_check()
    }
}

/// What a failed call's result says, for the log.
fn reason(result: &Result<Option<Payload>, HandlerError>) -> String {
    match result {
        Err(error) => error.to_string(),
        Ok(payload) => {
            let status = payload.as_ref().and_then(|p| p.get("status_code"));
            format!(
                "upstream status {}",
                status.map_or("?".into(), ToString::to_string)
            )
        }
    }
}

/// The policy's wait before the retry that follows call `calls` (1 for the first).
fn delay(policy: &RetryPolicy, calls: u32) -> Duration {
    let wait = match policy.backoff {
        Backoff::Fixed => policy.base_delay,
        Backoff::Exponential => {
            let factor = 1u32
                .checked_shl(calls.saturating_sub(1))
                .unwrap_or(u32::MAX);
            policy.base_delay.saturating_mul(factor)
        }
    };
    wait.min(policy.max_delay)
}

/// A tiny random source for the backoff's jitter (xorshift64*): seeded, so that tests
/// see the same waits every run; no cryptographic quality needed.
#[derive(Debug)]
pub struct Jitter(AtomicU64);

impl Jitter {
    /// A source that always draws the same sequence for the same `seed`.
    pub fn seeded(seed: u64) -> Self {
        Jitter(AtomicU64::new(seed | 1))
    }

    /// A source seeded from the time, so that hosts do not retry in step.
    pub fn from_time() -> Self {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |since| since.as_nanos() as u64);
        Self::seeded(nanos ^ u64::from(std::process::id()))
    }

    /// A number in `[0, 1)`.
    fn fraction(&self) -> f64 {
        let step = |mut x: u64| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x
        };
        let previous = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| Some(step(x)))
            .unwrap_or(1);
        let drawn = step(previous).wrapping_mul(0x2545_F491_4F6C_DD1D);
        (drawn >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `wait` drawn uniformly from `[wait / 2, wait]`.
    fn spread(&self, wait: Duration) -> Duration {
        let half = wait / 2;
        half + (wait - half).mul_f64(self.fraction())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::Fault;
    use crate::layers::clock::ManualClock;
    use crate::layers::script::{Script, Step, request};
    use serde_json::json;

    fn policy(max_retries: u32) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            backoff: Backoff::Exponential,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(5000),
        }
    }

    fn retry(
        script: &Script,
        clock: &Arc<ManualClock>,
        max_retries: u32,
    ) -> Retry<Box<dyn Handler>> {
        Retry::new(
            script.handler(),
            policy(max_retries),
            clock.clone(),
            Jitter::seeded(7),
        )
    }

    #[test]
    fn a_get_answered_503_twice_then_200_takes_three_calls_with_growing_waits() {
        let clock = ManualClock::new();
        let steps = vec![Step::Status(503), Step::Status(503), Step::Status(200)];
        let script = Script::of(crate::handler::HandlerType::Http, &clock, steps);
        let request = request("http.get");
        let attempts = request.attempts.clone();
        let result = clock
            .run(retry(&script, &clock, 3).execute(request))
            .unwrap();
        assert_eq!(result.unwrap()["status_code"], 200);
        assert_eq!((script.calls(), attempts.count()), (3, 3));
        let at = script.call_times();
        let (first, second) = (at[1] - at[0], at[2] - at[1]);
        assert!((50..=100).contains(&first.as_millis()), "{first:?}");
        assert!((100..=200).contains(&second.as_millis()), "{second:?}");
    }

    #[test]
    fn a_post_is_not_retried_after_a_transient_failure_unless_it_is_idempotent() {
        let clock = ManualClock::new();
        let script = Script::of(
            crate::handler::HandlerType::Http,
            &clock,
            vec![Step::Status(503)],
        );
        let result = clock.run(retry(&script, &clock, 3).execute(request("http.post")));
        assert_eq!(result.unwrap().unwrap()["status_code"], 503);
        assert_eq!(script.calls(), 1);

        let script = Script::of(
            crate::handler::HandlerType::Http,
            &clock,
            vec![Step::Status(503)],
        );
        let mut keyed = request("http.post");
        keyed.payload.insert("idempotency_key".into(), json!("k-1"));
        let attempts = keyed.attempts.clone();
        let result = clock.run(retry(&script, &clock, 3).execute(keyed));
        assert_eq!(result.unwrap().unwrap()["status_code"], 503);
        assert_eq!((script.calls(), attempts.count()), (4, 4));
    }

    #[test]
    fn nothing_sent_is_retried_for_any_operation_and_a_lost_call_never() {
        let clock = ManualClock::new();
        let script = Script::new(&clock, vec![Step::Fail(Fault::NotSent), Script::ok()]);
        assert!(
            clock
                .run(retry(&script, &clock, 3).execute(request("db.execute")))
                .is_ok()
        );
        assert_eq!(script.calls(), 2);

        let script = Script::new(&clock, vec![Step::Fail(Fault::Lost)]);
        assert!(
            clock
                .run(retry(&script, &clock, 3).execute(request("db.query")))
                .is_err()
        );
        assert_eq!(script.calls(), 1);
    }

    #[test]
    fn no_retry_waits_past_the_requests_deadline() {
        let clock = ManualClock::new();
        let script = Script::new(&clock, vec![Step::Fail(Fault::Transient)]);
        let mut call = request("db.query");
        call.deadline = Some(clock.now() + Duration::from_millis(180));
        let attempts = call.attempts.clone();
        let started = clock.now();
        assert!(clock.run(retry(&script, &clock, 3).execute(call)).is_err());
        // 50-100 ms before the second call, then 100-200 more would pass the deadline.
        assert!(clock.now() - started < Duration::from_millis(180));
        assert_eq!(attempts.count() as usize, script.calls());
        assert!(script.calls() <= 2);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_fixed_stays() {
        let mut policy = policy(10);
        policy.max_delay = Duration::from_millis(350);
        let waits: Vec<u128> = (1..=4).map(|n| delay(&policy, n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 350, 350]);
        policy.backoff = Backoff::Fixed;
        assert_eq!(delay(&policy, 4), Duration::from_millis(100));
        assert_eq!(delay(&policy, 40), Duration::from_millis(100));
    }

    #[test]
    fn jitter_stays_in_the_upper_half_and_repeats_for_a_seed() {
        let (a, b) = (Jitter::seeded(42), Jitter::seeded(42));
        for _ in 0..1000 {
            let wait = a.spread(Duration::from_millis(200));
            assert_eq!(wait, b.spread(Duration::from_millis(200)));
            assert!((100..=200).contains(&wait.as_millis()), "{wait:?}");
        }
    }
}
