//! The timeout layer: no call outlives the binding's `timeout_ms`, nor the request's own
//! deadline (`metadata.timeout_ms`), whichever comes first.
//!
//! The handlers have limits of their own (the http client's, the database's
//! `statement_timeout`); this layer is the backstop that holds for any handler, and the
//! only one that knows the request's deadline. Past it, the call's future is dropped,
//! which cancels it as far as the handler's protocol allows (the [`Handler`] rules).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future::{self, Boxed};

use super::clock::Clock;
use super::millis;
use crate::envelope::Payload;
use crate::handler::{Description, Fault, Handler, HandlerError, HandlerRequest};
use crate::health::HealthReport;

/// A handler whose calls end at the first of its limit and the request's deadline.
pub struct Timeout {
    inner: Arc<dyn Handler>,
    limit: Option<Duration>,
    clock: Arc<dyn Clock>,
}

impl Timeout {
    /// `inner`, its calls cut at `limit` (`None`: only at the request's deadline).
    pub fn new(inner: Box<dyn Handler>, limit: Option<Duration>, clock: Arc<dyn Clock>) -> Self {
        Timeout {
            inner: Arc::from(inner),
            limit,
            clock,
        }
    }
}

impl Handler for Timeout {
    forward_to_inner!();

    fn execute(&self, request: HandlerRequest) -> Boxed<Result<Option<Payload>, HandlerError>> {
        let now = self.clock.now();
        let limit = self.limit.and_then(|limit| now.checked_add(limit));
        // The request's deadline wins only when it comes first: then running out of time
        // is the request's doing, not the dependency's.
        let (until, by_request) = match (limit, request.deadline) {
            (None, None) => return self.inner.execute(request),
            (Some(limit), Some(deadline)) if deadline < limit => (deadline, true),
            (Some(limit), _) => (limit, false),
            (None, Some(deadline)) => (deadline, true),
        };
        let handler_type = self.inner.handler_type();
        let expired = move |limit: Option<Duration>| {
            if by_request {
                HandlerError::execution(format!(
                    "the request's deadline (metadata.timeout_ms) passed before the {handler_type} handler answered"
                ))
            } else {
                let ms = limit.unwrap_or_default().as_millis();
                let message = format!(
                    "the {handler_type} handler did not answer within {ms} ms (timeout_ms)"
                );
                HandlerError::dependency(Fault::Lost, message, None)
            }
        };
        if until <= now {
            return Box::pin(future::ready(Err(expired(self.limit))));
        }
        let (call, sleep, limit) = (
            self.inner.execute(request),
            self.clock.sleep_until(until),
            self.limit,
        );
        Box::pin(future::or(call, async move {
            sleep.await;
            Err(expired(limit))
        }))
    }

    fn describe(&self) -> Description {
        let mut description = self.inner.describe();
        if let Some(limit) = self.limit {
            description
                .limits
                .insert("timeout_ms".to_owned(), millis(limit));
        }
        description
    }

    fn health_check(&self) -> Boxed<HealthReport> {
        self.inner.health_check()
    }
}

/// Whether `deadline` leaves room for `wait` from `now`.
pub(crate) fn fits(now: Instant, wait: Duration, deadline: Option<Instant>) -> bool {
    deadline.is_none_or(|deadline| now.checked_add(wait).is_some_and(|end| end < deadline))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::Fault;
    use crate::layers::clock::ManualClock;
    use crate::layers::script::{Script, request};

    #[test]
    fn a_call_past_the_limit_is_the_dependencys_timeout() {
        let clock = ManualClock::new();
        let script = Script::new(&clock, vec![Script::sleep(Duration::from_secs(5))]);
        let layer = Timeout::new(
            script.handler(),
            Some(Duration::from_secs(2)),
            clock.clone(),
        );
        let started = clock.now();
        let error = clock.run(layer.execute(request("http.get"))).unwrap_err();
        assert_eq!(clock.now() - started, Duration::from_secs(2));
        assert_eq!(error.fault(), Some(Fault::Lost));
        assert_eq!(
            error.to_string(),
            "the local handler did not answer within 2000 ms (timeout_ms)"
        );
    }

    #[test]
    fn the_requests_deadline_cuts_sooner_and_is_the_requests_doing() {
        let clock = ManualClock::new();
        let script = Script::new(&clock, vec![Script::sleep(Duration::from_secs(5))]);
        let layer = Timeout::new(
            script.handler(),
            Some(Duration::from_secs(2)),
            clock.clone(),
        );
        let mut call = request("http.get");
        call.deadline = Some(clock.now() + Duration::from_millis(300));
        let started = clock.now();
        let error = clock.run(layer.execute(call)).unwrap_err();
        assert_eq!(clock.now() - started, Duration::from_millis(300));
        assert_eq!(error.fault(), None);
        assert!(error.to_string().contains("metadata.timeout_ms"), "{error}");
    }

    #[test]
    fn a_request_already_past_its_deadline_is_not_called() {
        let clock = ManualClock::new();
        let script = Script::new(&clock, vec![Script::ok()]);
        let layer = Timeout::new(script.handler(), None, clock.clone());
        let mut call = request("http.get");
        call.deadline = Some(clock.now());
        assert!(clock.run(layer.execute(call)).is_err());
        assert_eq!(script.calls(), 0);
    }

    #[test]
    fn a_prompt_call_is_answered_as_it_is() {
        let clock = ManualClock::new();
        let script = Script::new(&clock, vec![Script::ok()]);
        let layer = Timeout::new(
            script.handler(),
            Some(Duration::from_secs(2)),
            clock.clone(),
        );
        assert!(clock.run(layer.execute(request("http.get"))).is_ok());
        assert_eq!(script.calls(), 1);
    }
}
