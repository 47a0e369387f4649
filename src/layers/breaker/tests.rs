//! The breaker's tests, on a scripted handler and a manual clock.

use std::time::Duration;

use super::*;
use crate::handler::{Fault, HandlerType};
use crate::layers::clock::ManualClock;
use crate::layers::script::{Script, Step, request};

fn breaker(script: &Script, clock: &Arc<ManualClock>) -> Breaker<Box<dyn Handler>> {
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

#[test]
fn a_trial_dropped_before_it_ran_lets_the_next_call_be_the_trial() {
    let clock = ManualClock::new();
    let steps = vec![
        Step::Fail(Fault::Lost),
        Step::Fail(Fault::Lost),
        Step::Fail(Fault::Lost),
        Script::ok(),
        Script::ok(),
    ];
    let script = Script::new(&clock, steps);
    let breaker = breaker(&script, &clock);
    for _ in 0..3 {
        let _ = clock.run(breaker.execute(request("local.echo")));
    }
    clock.advance(Duration::from_secs(10));
    drop(breaker.execute(request("local.echo")));
    assert!(clock.run(breaker.execute(request("local.echo"))).is_ok());
    let report = clock.run(breaker.health_check());
    assert_eq!(report.details["circuit"], "closed");
    // Closed and clean again: calls pass without the lock, and still count failures.
    assert!(breaker.shared.clean.load(Ordering::Acquire));
}
