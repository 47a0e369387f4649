//! The circuit breaker: after `failure_threshold` failed calls in a row the dependency
//! counts as down, and calls are answered at once ("circuit open") instead of waiting
//! on it; after `reset_timeout` one trial call goes through (half-open), and its success
//! closes the circuit again, its failure reopens it for another `reset_timeout`.
//!
//! A failure is what the verdict module says is the dependency's (no answer, a lost
//! call, an upstream 5xx); any other answer, an error of the request's own included,
//! shows the dependency working and resets the count. While the circuit is not closed,
//! the health report says `degraded`: the handler is up and other calls may work.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use futures_lite::future::Boxed;

use super::clock::Clock;
use super::verdict::fault_of;
use super::{Layered, Outcome, millis};
use crate::contract::BreakerPolicy;
use crate::handler::{Description, Handler, HandlerError, HandlerRequest, HandlerType};
use crate::health::HealthReport;

/// A handler that stops calling its dependency while it fails.
pub struct Breaker<I> {
    inner: I,
    /// The inner handler's type, asked once: the verdict on a call depends on it.
    handler_type: HandlerType,
    shared: Arc<Shared>,
}

struct Shared {
    /// What the logs call the handler: its name, and its binding's when named.
    label: Arc<str>,
    /// The binding, as the logs' `binding` key names it: its name, else its type's.
    binding: Arc<str>,
    handler_type: HandlerType,
    policy: BreakerPolicy,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    /// `state` is `Closed { failures: 0 }`, as of its last change: while it is, a call
    /// is admitted and a success recorded without taking the lock. Written only with
    /// the lock held.
    clean: AtomicBool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Calls go through; `failures` in a row so far.
    Closed { failures: u32 },
    /// Calls are refused until `until`; then the next one is the trial.
    Open { until: Instant },
    /// The trial call is under way; others are refused.
    HalfOpen,
}

impl<I: Layered> Breaker<I> {
    /// `inner`, cut off as `policy` says, timed by `clock`.
    pub fn new(inner: I, policy: BreakerPolicy, clock: Arc<dyn Clock>) -> Self {
        Self::named(inner, policy, clock, None)
    }

    /// As [`Breaker::new`], its logs naming the binding `binding` (two bindings of a
    /// type trip apart, and the log must say which).
    pub fn named(
        inner: I,
        policy: BreakerPolicy,
        clock: Arc<dyn Clock>,
        binding: Option<&str>,
    ) -> Self {
        let label = match binding {
            Some(binding) => format!("{} (binding {binding})", inner.name()),
            None => inner.name().to_owned(),
        };
        let handler_type = inner.handler_type();
        Breaker {
            handler_type: inner.handler_type(),
            inner,
            shared: Arc::new(Shared {
                label: label.into(),
                binding: binding.unwrap_or(handler_type.as_str()).into(),
                handler_type,
                policy,
                clock,
                state: Mutex::new(State::Closed { failures: 0 }),
                clean: AtomicBool::new(true),
            }),
        }
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Whether a call may go now, and whether it is the trial.
    fn admit(&self) -> Option<bool> {
        if self.clean.load(Ordering::Acquire) {
            return Some(false);
        }
        let mut state = self.state();
        match *state {
            State::Closed { .. } => Some(false),
            State::Open { until } if self.clock.now() >= until => {
                self.set(&mut state, State::HalfOpen);
                Some(true)
            }
            State::Open { .. } | State::HalfOpen => None,
        }
    }

    /// Records a call's outcome.
    fn record(&self, failed: bool, trial: bool) {
        // A success while the circuit is clean leaves it so.
        if !failed && !trial && self.clean.load(Ordering::Acquire) {
            return;
        }
        let (name, binding) = (&self.label, &*self.binding);
        let handler_type = self.handler_type.as_str();
        let mut state = self.state();
        let reopen = || State::Open {
            until: self.clock.now() + self.policy.reset_timeout,
        };
        let next = match (*state, failed) {
            (_, false) if trial => {
                log::info!(handler_type, binding; "{name}: the trial call succeeded; circuit closed");
                State::Closed { failures: 0 }
            }
            (_, true) if trial => reopen(),
            (State::Closed { failures }, true) => {
                let failures = failures + 1;
                if failures >= self.policy.failure_threshold {
                    log::warn!(
                        handler_type, binding;
                        "{name}: {failures} failed calls in a row; circuit open for {} ms",
                        self.policy.reset_timeout.as_millis()
                    );
                    reopen()
                } else {
                    State::Closed { failures }
                }
            }
            (State::Closed { .. }, false) => State::Closed { failures: 0 },
            // A call admitted before the circuit opened changes nothing now.
            (other, _) => other,
        };
        self.set(&mut state, next);
    }

    /// Moves the circuit, whose lock is `state`, to `next`.
    fn set(&self, state: &mut State, next: State) {
        *state = next;
        let clean = next == State::Closed { failures: 0 };
        self.clean.store(clean, Ordering::Release);
    }
}

/// Reopens the circuit at once if a trial call is dropped unfinished, so that the next
/// call is the trial instead of the circuit staying half-open forever.
struct Trial {
    shared: Arc<Shared>,
    done: bool,
}

impl Trial {
    /// The trial call ended: its outcome is recorded instead.
    fn finish(mut self) {
        self.done = true;
    }
}

impl Drop for Trial {
    fn drop(&mut self) {
        if !self.done {
            let shared = &self.shared;
            let until = shared.clock.now();
            shared.set(&mut shared.state(), State::Open { until });
        }
    }
}

/// A call the circuit let through, or refused.
pub struct Guarded<F>(Admission<F>);

enum Admission<F> {
    /// The call, and the circuit it reports to when it ends.
    Admitted {
        call: F,
        shared: Arc<Shared>,
        handler_type: HandlerType,
        /// Set for the trial call: reopens the circuit if the call is dropped unfinished.
        trial: Option<Trial>,
    },
    /// The circuit is open: this error, once.
    Refused(Option<HandlerError>),
}

impl<F: Future<Output = Outcome> + Unpin> Future for Guarded<F> {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        match &mut self.get_mut().0 {
            Admission::Admitted {
                call,
                shared,
                handler_type,
                trial,
            } => {
                let outcome = ready!(Pin::new(call).poll(cx));
                let was_trial = trial.take().map(Trial::finish).is_some();
                shared.record(fault_of(*handler_type, &outcome).is_some(), was_trial);
                Poll::Ready(outcome)
            }
            Admission::Refused(error) => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| HandlerError::execution("circuit open")))),
        }
    }
}

impl<I: Layered> Layered for Breaker<I> {
    type Call = Guarded<I::Call>;

    fn call(&self, request: HandlerRequest) -> Self::Call {
        let handler_type = self.handler_type;
        let Some(is_trial) = self.shared.admit() else {
            let message = format!(
                "circuit open: the {handler_type} handler's dependency is failing; calls resume with one trial call within {} ms",
                self.shared.policy.reset_timeout.as_millis()
            );
            return Guarded(Admission::Refused(Some(HandlerError::execution(message))));
        };
        let shared = Arc::clone(&self.shared);
        // Made now rather than when the call is first polled: a trial dropped before it
        // ran must reopen the circuit too.
        let trial = is_trial.then(|| Trial {
            shared: Arc::clone(&shared),
            done: false,
        });
        Guarded(Admission::Admitted {
            call: self.inner.call(request),
            shared,
            handler_type,
            trial,
        })
    }
}

impl<I: Layered> Handler for Breaker<I> {
    forward_to_inner!();

    fn execute(&self, request: HandlerRequest) -> Boxed<Outcome> {
        Box::pin(self.call(request))
    }

    fn describe(&self) -> Description {
        let mut description = self.inner.describe();
        let (limits, policy) = (&mut description.limits, &self.shared.policy);
        let threshold = u64::from(policy.failure_threshold);
        limits.insert("breaker_failure_threshold".to_owned(), threshold);
        limits.insert(
            "breaker_reset_timeout_ms".to_owned(),
            millis(policy.reset_timeout),
        );
        description
    }

    fn health_check(&self) -> Boxed<HealthReport> {
        let (check, state) = (self.inner.health_check(), *self.shared.state());
        Box::pin(async move {
            let mut report = check.await;
            let circuit = match state {
                State::Closed { .. } => "closed",
                State::Open { .. } => "open",
                State::HalfOpen => "half_open",
            };
            report.degraded |= circuit != "closed";
            report.with("circuit", circuit)
        })
    }
}

#[cfg(test)]
mod tests;
