//! The timeout layer: no call outlives the binding's `timeout_ms`, nor the request's own
//! deadline (`metadata.timeout_ms`), whichever comes first.
//!
//! The handlers have limits of their own (the http client's, the database's
//! `statement_timeout`); this layer is the backstop that holds for any handler, and the
//! only one that knows the request's deadline. Past it, the call's future is dropped,
//! which cancels it as far as the handler's protocol allows (the [`Handler`] rules).
//!
//! The binding's limit runs from the moment the call first waits: a call that answers
//! as soon as it is polled (the local handler's) takes no timer and no reading of the
//! clock, which would otherwise be most of what this layer costs it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::future::Boxed;

use super::clock::Clock;
use super::{Layered, Outcome, millis};
use crate::handler::{Description, Fault, Handler, HandlerError, HandlerRequest, HandlerType};
use crate::health::HealthReport;

/// A handler whose calls end at the first of its limit and the request's deadline.
pub struct Timeout<I> {
    inner: I,
    /// The inner handler's type, asked once: the errors name it.
    handler_type: HandlerType,
    limit: Option<Duration>,
    clock: Arc<dyn Clock>,
}

impl<I: Layered> Timeout<I> {
    /// `inner`, its calls cut at `limit` (`None`: only at the request's deadline).
    pub fn new(inner: I, limit: Option<Duration>, clock: Arc<dyn Clock>) -> Self {
        Timeout {
            handler_type: inner.handler_type(),
            inner,
            limit,
            clock,
        }
    }
}

/// A call under a time limit.
pub struct Limited<F> {
    /// The call; `None` when the request's deadline had passed before it was made.
    call: Option<F>,
    limit: Option<Duration>,
    deadline: Option<Instant>,
    handler_type: HandlerType,
    clock: Arc<dyn Clock>,
    /// Once the call has waited: the timer, and whether it is the request's deadline.
    timer: Option<(Boxed<()>, bool)>,
}

impl<F: Future<Output = Outcome> + Unpin> Future for Limited<F> {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let this = self.get_mut();
        let Some(call) = &mut this.call else {
            return Poll::Ready(Err(this.expired(true)));
        };
        if let Poll::Ready(outcome) = Pin::new(call).poll(cx) {
            return Poll::Ready(outcome);
        }
        let (timer, by_request) = match &mut this.timer {
            Some(timer) => timer,
            None => match this.start_timer() {
                Some(timer) => this.timer.insert(timer),
                None => return Poll::Pending,
            },
        };
        let by_request = *by_request;
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(this.expired(by_request))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F> Limited<F> {
    /// The timer of a call that has started to wait, and whether it is the request's
    /// deadline; `None` when there is no limit of either kind.
    fn start_timer(&self) -> Option<(Boxed<()>, bool)> {
        let now = self.clock.now();
        let limit = self.limit.and_then(|limit| now.checked_add(limit));
        // The request's deadline wins only when it comes first: then running out of time
        // is the request's doing, not the dependency's.
        let (until, by_request) = match (limit, self.deadline) {
            (Some(limit), Some(deadline)) if deadline < limit => (deadline, true),
            (Some(limit), _) => (limit, false),
            (None, Some(deadline)) => (deadline, true),
            (None, None) => return None,
        };
        Some((self.clock.sleep_until(until), by_request))
    }

    /// The error of a call cut short, by the request's deadline or the binding's limit.
    fn expired(&self, by_request: bool) -> HandlerError {
        let handler_type = self.handler_type;
        if by_request {
            HandlerError::execution(format!(
                "the request's deadline (metadata.timeout_ms) passed before the {handler_type} handler answered"
            ))
        } else {
            let ms = self.limit.unwrap_or_default().as_millis();
            let message =
                format!("the {handler_type} handler did not answer within {ms} ms (timeout_ms)");
            HandlerError::dependency(Fault::Lost, message, None)
        }
    }
}

impl<I: Layered> Layered for Timeout<I> {
    type Call = Limited<I::Call>;

    fn call(&self, request: HandlerRequest) -> Self::Call {
        let deadline = request.deadline;
        // A request already past its deadline is not made at all.
        let late = deadline.is_some_and(|deadline| deadline <= self.clock.now());
        Limited {
            call: (!late).then(|| self.inner.call(request)),
            limit: self.limit,
            deadline,
            handler_type: self.handler_type,
            clock: Arc::clone(&self.clock),
            timer: None,
        }
    }
}

impl<I: Layered> Handler for Timeout<I> {
    forward_to_inner!();

    fn execute(&self, request: HandlerRequest) -> Boxed<Outcome> {
        // Without a limit of either kind there is nothing to time.
        if self.limit.is_none() && request.deadline.is_none() {
            return self.inner.execute(request);
        }
        Box::pin(self.call(request))
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
