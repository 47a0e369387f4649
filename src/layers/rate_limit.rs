//! The rate limiter: a token bucket of `rate_limit_per_second` tokens a second, holding
//! at most a second's worth (the burst). A call takes a token; when none is left it
//! waits for the next one, but only if that comes within the request's time left (its
//! deadline, else the binding's `timeout_ms`); otherwise it is refused at once with an
//! error that says so.
//!
//! A waiting call reserves its token before it waits (the bucket goes into debt), so
//! waits are served in order and a burst cannot wake together; the debt is bounded by
//! the time a request may wait, so the calls waiting are never more than `rate` times
//! that: no unbounded queue.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::future::Boxed;

use super::clock::Clock;
use super::{Layered, Outcome};
use crate::handler::{Description, Handler, HandlerError, HandlerRequest};
use crate::health::HealthReport;

/// A handler called at most `rate` times a second.
pub struct RateLimit<I> {
    inner: Arc<I>,
    rate: f64,
    budget: Duration,
    clock: Arc<dyn Clock>,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens left; below zero, the tokens already promised to waiting calls.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

impl<I: Layered> RateLimit<I> {
    /// `inner`, called at most `rate` times a second; a call waits for a token at most
    /// `budget` when its request has no deadline.
    pub fn new(inner: I, rate: u32, budget: Duration, clock: Arc<dyn Clock>) -> Self {
        let rate = f64::from(rate.max(1));
        let at = clock.now();
        RateLimit {
            inner: Arc::new(inner),
            rate,
            budget,
            clock,
            bucket: Mutex::new(Bucket { tokens: rate, at }),
        }
    }

    /// Takes a token: `Ok(wait)` until it is ours, or `Err(wait)` if that is later than
    /// `until` (nothing taken).
    fn take(&self, now: Instant, until: Instant) -> Result<Duration, Duration> {
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.rate);
        bucket.at = now;
        let wait = if bucket.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate)
        };
        if now + wait > until {
            return Err(wait);
        }
        bucket.tokens -= 1.0;
        Ok(wait)
    }
}

/// A call with its token: made at once, after a wait for the token, or refused.
pub struct Metered<F>(Turn<F>);

enum Turn<F> {
    Now(F),
    Later(Boxed<Outcome>),
    Refused(Option<HandlerError>),
}

impl<F: Future<Output = Outcome> + Unpin> Future for Metered<F> {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        match &mut self.get_mut().0 {
            Turn::Now(call) => Pin::new(call).poll(cx),
            Turn::Later(call) => call.as_mut().poll(cx),
            Turn::Refused(error) => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| HandlerError::execution("rate limit reached")))),
        }
    }
}

impl<I: Layered> Layered for RateLimit<I> {
    type Call = Metered<I::Call>;

    fn call(&self, request: HandlerRequest) -> Self::Call {
        let now = self.clock.now();
        let until = request.deadline.unwrap_or(now + self.budget);
        Metered(match self.take(now, until) {
            Ok(wait) if wait.is_zero() => Turn::Now(self.inner.call(request)),
            Ok(wait) => {
                let (inner, sleep) = (Arc::clone(&self.inner), self.clock.sleep_until(now + wait));
                Turn::Later(Box::pin(async move {
                    sleep.await;
                    inner.call(request).await
                }))
            }
            Err(wait) => {
                let left = until.saturating_duration_since(now);
                let message = format!(
                    "rate limit of {} calls a second reached: the next free slot is in {} ms, after this request's time left ({} ms); try again later",
                    self.rate,
                    wait.as_millis(),
                    left.as_millis()
                );
                Turn::Refused(Some(HandlerError::execution(message)))
            }
        })
    }
}

impl<I: Layered> Handler for RateLimit<I> {
    forward_to_inner!();

    fn execute(&self, request: HandlerRequest) -> Boxed<Outcome> {
        Box::pin(self.call(request))
    }

    fn describe(&self) -> Description {
        let mut description = self.inner.describe();
        let rate = self.rate as u64;
        description
            .limits
            .insert("rate_limit_per_second".to_owned(), rate);
        description
    }

    fn health_check(&self) -> Boxed<HealthReport> {
        self.inner.health_check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::clock::ManualClock;
    use crate::layers::script::{Script, request};

    #[test]
    fn a_burst_of_the_rate_goes_at_once_and_the_next_call_waits_for_its_token() {
        let clock = ManualClock::new();
        let script = Script::new(&clock, vec![Script::ok()]);
        let limit = RateLimit::new(script.handler(), 10, Duration::from_secs(1), clock.clone());
        let started = clock.now();
        for _ in 0..10 {
            assert!(clock.run(limit.execute(request("local.echo"))).is_ok());
        }
        assert_eq!(clock.now(), started);
        assert!(clock.run(limit.execute(request("local.echo"))).is_ok());
        assert_eq!(clock.now() - started, Duration::from_millis(100));
        assert_eq!(script.calls(), 11);
    }

    #[test]
    fn waiting_calls_are_served_in_turn_and_one_past_its_time_is_refused_at_once() {
        let clock = ManualClock::new();
        let script = Script::new(&clock, vec![Script::ok()]);
        let limit = RateLimit::new(script.handler(), 2, Duration::from_secs(1), clock.clone());
        let calls: Vec<_> = (0..4)
            .map(|_| limit.execute(request("local.echo")))
            .collect();
        // Two tokens now, then one every 500 ms: the fourth call's is 1 s away, which
        // the budget of 1 s just allows; the fifth's is past a 700 ms deadline.
        let mut late = request("local.echo");
        late.deadline = Some(clock.now() + Duration::from_millis(700));
        let started = clock.now();
        let error = clock.run(limit.execute(late)).unwrap_err();
        assert_eq!(clock.now(), started);
        assert!(
            error
                .to_string()
                .starts_with("rate limit of 2 calls a second reached"),
            "{error}"
        );
        for call in calls {
            assert!(clock.run(call).is_ok());
        }
        assert_eq!(clock.now() - started, Duration::from_secs(1));
        assert_eq!(script.calls(), 4);
    }
}
