//! The circuit breaker: after `failure_threshold` failed calls in a row the dependency
//! counts as down, and calls are answered at once ("circuit open") instead of waiting
//! on it; after `reset_timeout` one trial call goes through (half-open), and its success
//! closes the circuit again, its failure reopens it for another `reset_timeout`.
//!
//! A failure is what the verdict module says is the dependency's (no answer, a lost
//! call, an upstream 5xx); any other answer, an error of the request's own included,
//! shows the dependency working and resets the count. While the circuit is not closed,
//! the health report says `degraded`: the handler is up and other calls may work.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures_lite::future::{self, Boxed};

use super::clock::Clock;
use super::millis;
use super::verdict::fault_of;
use crate::contract::BreakerPolicy;
use crate::envelope::Payload;
use crate::handler::{Description, Handler, HandlerError, HandlerRequest, HandlerType};
use crate::health::HealthReport;

/// A handler that stops calling its dependency while it fails.
pub struct Breaker {
    inner: Arc<dyn Handler>,
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

impl Breaker {
    /// `inner`, cut off as `policy` says, timed by `clock`.
    pub fn new(inner: Box<dyn Handler>, policy: BreakerPolicy, clock: Arc<dyn Clock>) -> Self {
        Self::named(inner, policy, clock, None)
    }

    /// As [`Breaker::new`], its logs naming the binding `binding` (two bindings of a
    /// type trip apart, and the log must say which).
    pub fn named(
        inner: Box<dyn Handler>,
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
            inner: Arc::from(inner),
            shared: Arc::new(Shared {
                label: label.into(),
                binding: binding.unwrap_or(handler_type.as_str()).into(),
                handler_type,
                policy,
                clock,
                state: Mutex::new(State::Closed { failures: 0 }),
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
        let mut state = self.state();
        match *state {
            State::Closed { .. } => Some(false),
            State::Open { until } if self.clock.now() >= until => {
                *state = State::HalfOpen;
                Some(true)
            }
            State::Open { .. } | State::HalfOpen => None,
        }
    }

    /// Records a call's outcome.
    fn record(&self, failed: bool, trial: bool) {
        let (name, binding) = (&self.label, &*self.binding);
        let handler_type = self.handler_type.as_str();
        let mut state = self.state();
        let reopen = State::Open {
            until: self.clock.now() + self.policy.reset_timeout,
        };
        *state = match (*state, failed) {
            (_, false) if trial => {
                log::info!(handler_type, binding; "{name}: the trial call succeeded; circuit closed");
                State::Closed { failures: 0 }
            }
            (_, true) if trial => reopen,
            (State::Closed { failures }, true) => {
                let failures = failures + 1;
                if failures >= self.policy.failure_threshold {
                    log::warn!(
                        handler_type, binding;
                        "{name}: {failures} failed calls in a row; circuit open for {} ms",
                        self.policy.reset_timeout.as_millis()
                    );
                    reopen
                } else {
                    State::Closed { failures }
                }
            }
            (State::Closed { .. }, false) => State::Closed { failures: 0 },
            // A call admitted before the circuit opened changes nothing now.
            (other, _) => other,
        };
    }
}

/// Reopens the circuit at once if a trial call is dropped unfinished, so that the next
/// call is the trial instead of the circuit staying half-open forever.
struct Trial<'a> {
    shared: &'a Shared,
    done: bool,
}

impl Drop for Trial<'_> {
    fn drop(&mut self) {
        if !self.done {
            *self.shared.state() = State::Open {
                until: self.shared.clock.now(),
            };
        }
    }
}

impl Handler for Breaker {
    forward_to_inner!();

    fn execute(&self, request: HandlerRequest) -> Boxed<Result<Option<Payload>, HandlerError>> {
        let handler_type = self.inner.handler_type();
        let Some(trial) = self.shared.admit() else {
            let message = format!(
                "circuit open: the {handler_type} handler's dependency is failing; calls resume with one trial call within {} ms",
                self.shared.policy.reset_timeout.as_millis()
            );
            return Box::pin(future::ready(Err(HandlerError::execution(message))));
        };
        let (inner, shared) = (Arc::clone(&self.inner), Arc::clone(&self.shared));
        Box::pin(async move {
            let mut guard = Trial {
                shared: &shared,
                done: !trial,
            };
            let result = inner.execute(request).await;
            guard.done = true;
            let failed = fault_of(handler_type, &result).is_some();
            shared.record(failed, trial);
            result
        })
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
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::handler::{Fault, HandlerType};
    use crate::layers::clock::ManualClock;
    use crate::layers::script::{Script, Step, request};

    fn breaker(script: &Script, clock: &Arc<ManualClock>) -> Breaker {
        let policy = BreakerPolicy {
            failure_threshold: 3,
            reset_timeout: Duration::from_secs(10),
        };
        Breaker::new(script.handler(), policy, clock.clone())
    }

    #[test]
    fn its_logs_name_a_named_binding() {
        let clock = ManualClock::new();
        let script = Script::of(HandlerType::Db, &clock, Vec::new());
        let name = script.handler().name();
        assert_eq!(&*breaker(&script, &clock).shared.label, name);
        let named = Breaker::named(
            script.handler(),
            BreakerPolicy::default(),
            clock.clone(),
            Some("orders_db"),
        );
        assert_eq!(&*named.shared.label, format!("{name} (binding orders_db)"));
    }

    #[test]
    fn opens_after_n_failures_answers_at_once_then_one_trial_closes_it() {
        let clock = ManualClock::new();
        let steps = vec![
            Step::Fail(Fault::NotSent),
            Step::Status(500),
            Step::Fail(Fault::Lost),
            Step::Status(200),
        ];
        let script = Script::of(HandlerType::Http, &clock, steps);
        let breaker = breaker(&script, &clock);
        for _ in 0..3 {
            let _ = clock.run(breaker.execute(request("http.get")));
        }
        assert!(clock.run(breaker.health_check()).degraded);
        let started = clock.now();
        let error = clock.run(breaker.execute(request("http.get"))).unwrap_err();
        assert!(error.to_string().starts_with("circuit open"), "{error}");
        assert_eq!((script.calls(), clock.now()), (3, started));

        clock.advance(Duration::from_secs(10));
        assert!(clock.run(breaker.execute(request("http.get"))).is_ok());
        assert_eq!(script.calls(), 4);
        let report = clock.run(breaker.health_check());
        assert!(!report.degraded);
        assert_eq!(report.details["circuit"], "closed");
    }

    #[test]
    fn a_failed_trial_reopens_and_a_success_resets_the_count() {
        let clock = ManualClock::new();
        let steps = vec![
            Step::Fail(Fault::Lost),
            Step::Fail(Fault::Lost),
            Script::ok(),
            Step::Fail(Fault::Lost),
            Step::Fail(Fault::Lost),
            Step::Fail(Fault::Lost),
            Step::Fail(Fault::Lost),
        ];
        let script = Script::new(&clock, steps);
        let breaker = breaker(&script, &clock);
        for _ in 0..5 {
            let _ = clock.run(breaker.execute(request("local.echo")));
        }
        // Two failures, a success (count reset), two failures: still closed.
        assert_eq!(
            clock.run(breaker.health_check()).details["circuit"],
            "closed"
        );
        let _ = clock.run(breaker.execute(request("local.echo")));
        assert_eq!(clock.run(breaker.health_check()).details["circuit"], "open");
        clock.advance(Duration::from_secs(10));
        assert!(clock.run(breaker.execute(request("local.echo"))).is_err());
        assert_eq!(script.calls(), 7);
        // The failed trial reopened it: refused without a call.
        assert!(clock.run(breaker.execute(request("local.echo"))).is_err());
        assert_eq!(script.calls(), 7);
    }

    #[test]
    fn only_one_trial_goes_while_half_open() {
        let clock = ManualClock::new();
        let steps = vec![
            Step::Fail(Fault::Lost),
            Step::Fail(Fault::Lost),
            Step::Fail(Fault::Lost),
            Step::Sleep(Duration::from_secs(1)),
        ];
        let script = Script::new(&clock, steps);
        let breaker = breaker(&script, &clock);
        for _ in 0..3 {
            let _ = clock.run(breaker.execute(request("local.echo")));
        }
        clock.advance(Duration::from_secs(10));
        let trial = breaker.execute(request("local.echo"));
        let other = clock.run(breaker.execute(request("local.echo")));
        assert!(other.is_err());
        assert_eq!(
            clock.run(breaker.health_check()).details["circuit"],
            "half_open"
        );
        assert!(clock.run(trial).is_ok());
        assert_eq!(script.calls(), 4);
    }
}
