//! The layers against real loopback HTTP servers, through the production wiring: retries
//! of safe calls only, `metadata.attempts`, the circuit breaker tripping, answering at
//! once, degrading health but not readiness, and healing; the request's deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_lite::future;
use onex_host::contract::RuntimeHostContract;
use onex_host::envelope::{Envelope, Stamp};
use onex_host::host::RuntimeHost;
use onex_host::wiring::{self, Profile};
use serde_json::{Value, json};

use crate::support::fixture::Fixture;
use crate::support::http_server::{Gate, Reply, TestServer, response};
use crate::support::within;

/// Every future in `futures`, run together; their outputs in order.
async fn join_all<T>(mut futures: Vec<std::pin::Pin<Box<impl Future<Output = T>>>>) -> Vec<T> {
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    future::poll_fn(|context| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(context) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// A production host's contracts: one http binding whose `config` is `config` (YAML,
/// indented under `config:`), and one node `web` declaring http.get and http.post.
fn fixture(config: &str) -> Fixture {
    Fixture::new()
        .with(
            "runtime.yaml",
            &format!(
                "schema_version: \"1.1.0\"\nruntime:\n  name: \"r\"\n  version: \"1.0.0\"\n  event_bus:\n    kind: \"inmemory\"\n  handlers:\n    - type: \"http\"\n      config:\n{config}  nodes:\n    - slug: \"web\"\n"
            ),
        )
        .with(
            "nodes/web.yaml",
            "schema_version: \"1.0.0\"\nnode_version: \"1.0.0\"\nname: \"web\"\nnode_type: \"EFFECT_GENERIC\"\nio_operations:\n  - type: \"http\"\n    operations: [\"http.get\", \"http.post\"]\n",
        )
}

/// A production host on the contracts of [`fixture`], started.
fn host(config: &str) -> (Fixture, RuntimeHost) {
    let fixture = fixture(config);
    let contract =
        RuntimeHostContract::load(&fixture.path("runtime.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let host = wiring::build_host(&contract, Profile::Production, Stamp::deterministic(1), 8)
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = within(10, host.start()).expect("the host starts");
    (fixture, host)
}

/// Fast retries, so that tests wait milliseconds.
const QUICK: &str = "        retry_policy: {max_retries: 3, base_delay_ms: 1, max_delay_ms: 5}\n";

fn call(host: &RuntimeHost, operation: &str, payload: Value, metadata: Value) -> Envelope {
    within(30, send(host, operation, payload, metadata))
}

/// [`call`], for running several at once.
async fn send(host: &RuntimeHost, operation: &str, payload: Value, metadata: Value) -> Envelope {
    let request = json!({
        "envelope_id": "6f1c1a4e-0000-4000-8000-000000000001",
        "target_node": "web",
        "operation": operation,
        "payload": payload,
        "metadata": metadata,
    });
    *host.process(request.to_string().as_bytes()).await
}

/// A server answering the statuses `script` gives, in turn (the last one repeats).
fn scripted(script: &'static [&'static str]) -> TestServer {
    let served = AtomicUsize::new(0);
    TestServer::start(move |_| {
        let n = served.fetch_add(1, Ordering::SeqCst).min(script.len() - 1);
        Reply::Send(response(script[n], &[], b"{}"))
    })
}

/// A server that answers only once the test opens its gate: an upstream slower than any
/// limit under test.
pub(crate) fn gated() -> (Arc<Gate>, TestServer) {
    let gate = Gate::new();
    let server = {
        let gate = gate.clone();
        TestServer::start(move |_| {
            gate.pass();
            Reply::Send(response("200 OK", &[], b"{}"))
        })
    };
    (gate, server)
}

#[test]
fn a_get_answered_503_twice_then_200_takes_three_attempts() {
    let server = scripted(&[
        "503 Service Unavailable",
        "503 Service Unavailable",
        "200 OK",
    ]);
    let (_fixture, host) = host(QUICK);
    let response = call(
        &host,
        "http.get",
        json!({"url": server.url("/a")}),
        json!({}),
    );
    assert_eq!(response.success, Some(true), "{:?}", response.error);
    assert_eq!(
        response.payload.as_ref().map(|p| p["status_code"].clone()),
        Some(json!(200))
    );
    assert_eq!(response.metadata["attempts"], 3);
    assert_eq!(server.received().len(), 3);
}

#[test]
fn a_post_answered_503_is_sent_once_and_says_no_attempts() {
    let server = scripted(&["503 Service Unavailable", "200 OK"]);
    let (_fixture, host) = host(QUICK);
    let response = call(
        &host,
        "http.post",
        json!({"url": server.url("/a"), "body": {}}),
        json!({}),
    );
    assert_eq!(
        response.payload.as_ref().map(|p| p["status_code"].clone()),
        Some(json!(503))
    );
    assert_eq!(response.metadata.get("attempts"), None);
    assert_eq!(server.received().len(), 1);
}

#[test]
fn a_post_with_an_idempotency_key_is_retried_and_sends_the_header_each_time() {
    let server = scripted(&["502 Bad Gateway", "504 Gateway Timeout", "201 Created"]);
    let (_fixture, host) = host(QUICK);
    let payload =
        json!({"url": server.url("/orders"), "body": {"n": 1}, "idempotency_key": "order-7"});
    let response = call(&host, "http.post", payload, json!({}));
    assert_eq!(
        response.payload.as_ref().map(|p| p["status_code"].clone()),
        Some(json!(201))
    );
    assert_eq!(response.metadata["attempts"], 3);
    let received = server.received();
    assert_eq!(received.len(), 3);
    assert!(
        received
            .iter()
            .all(|r| r.header("idempotency-key") == Some("order-7"))
    );
}

/// The copy of a request the retry layer keeps is charged to the memory budget: a
/// retryable POST of 300 KiB is retried under a 2 MiB budget, and sent once, answered with
/// the upstream's failure and a warning, under 1 MiB, where the request fits but the copy
/// does not. Before, the copy was not charged and the request was retried under both.
#[test]
fn the_copy_retries_keep_is_charged_to_the_memory_budget() {
    let fixture = fixture(QUICK);
    for (budget, calls, status) in [("2", 3, 201), ("1", 1, 503)] {
        let server = scripted(&[
            "503 Service Unavailable",
            "503 Service Unavailable",
            "201 Created",
        ]);
        let payload = json!({
            "url": server.url("/orders"),
            "body": "x".repeat(300 * 1024),
            "idempotency_key": "order-7",
        });
        let line = crate::support::request_line(0, "web", "http.post", &payload.to_string());
        let run = crate::support::process::run(
            crate::support::process::PRODUCTION,
            &["--stdin", "--memory-budget", budget, "runtime.yaml"],
            fixture.root(),
            format!("{line}\n").as_bytes(),
            &[],
        );
        assert_eq!(run.status, Some(0), "{}", run.stderr);
        let lines = run.lines();
        assert_eq!(lines.len(), 1, "{}", run.stderr);
        let response: Value = serde_json::from_str(lines[0]).expect("a response");
        assert_eq!(
            response["payload"]["status_code"], status,
            "budget {budget} MiB"
        );
        assert_eq!(server.received().len(), calls, "budget {budget} MiB");
        let warned = run
            .warnings()
            .iter()
            .any(|line| line.contains("no room in the memory budget for the copy"));
        assert_eq!(warned, calls == 1, "{}", run.stderr);
    }
}

#[test]
fn a_server_that_is_down_opens_the_breaker_which_answers_at_once_and_degrades_health_only() {
    // A port nothing listens on: every call is refused before anything is sent.
    let port = crate::support::closed_port();
    let url = format!("http://127.0.0.1:{port}/a");
    let (_fixture, host) = host(
        "        retry_policy: {max_retries: 1, base_delay_ms: 1, max_delay_ms: 1}\n        circuit_breaker: {failure_threshold: 4, reset_timeout_ms: 60000}\n",
    );
    // Two requests of two calls each: four failures in a row.
    for _ in 0..2 {
        let response = call(&host, "http.get", json!({"url": url}), json!({}));
        let error = response.error.expect("refused");
        assert!(
            error.message.contains("could not connect"),
            "{}",
            error.message
        );
        assert_eq!(response.metadata["attempts"], 2);
    }
    let started = Instant::now();
    let response = call(&host, "http.get", json!({"url": url}), json!({}));
    let error = response.error.expect("circuit open");
    assert_eq!(error.code.as_str(), "HANDLER_EXECUTION_ERROR");
    assert!(error.message.contains("circuit open"), "{}", error.message);
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );

    let readiness = within(10, host.readiness());
    assert!(readiness.ready, "{readiness:?}");
    assert_eq!(readiness.degraded, ["http"]);
    let report = within(10, host.handlers_report());
    assert_eq!(report["handlers"][0]["state"], "degraded", "{report}");
    assert_eq!(
        report["handlers"][0]["health"]["circuit"], "open",
        "{report}"
    );
}

#[test]
fn a_500_then_503_storm_trips_the_breaker_in_under_10_s_and_it_heals_when_the_upstream_does() {
    // 500 to the first three calls, 503 after, until the upstream recovers.
    let healthy = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let server = {
        let (healthy, served) = (healthy.clone(), served.clone());
        TestServer::start(move |_| {
            let status = if healthy.load(Ordering::SeqCst) {
                "200 OK"
            } else if served.fetch_add(1, Ordering::SeqCst) < 3 {
                "500 Internal Server Error"
            } else {
                "503 Service Unavailable"
            };
            Reply::Send(response(status, &[], b"{}"))
        })
    };
    // Defaults but the reset timeout: longer than the storm takes on a loaded machine (no
    // trial call during it), short enough for the test to wait for the trial.
    let (_fixture, host) = host("        circuit_breaker: {reset_timeout_ms: 3000}\n");
    let get = || {
        let started = Instant::now();
        let response = call(
            &host,
            "http.get",
            json!({"url": server.url("/a")}),
            json!({}),
        );
        (response, started.elapsed())
    };
    let storm = Instant::now();
    let mut tripped = None;
    let mut slowest_refusal = Duration::ZERO;
    for n in 0..100 {
        let (response, took) = get();
        if response
            .error
            .is_some_and(|e| e.message.contains("circuit open"))
        {
            tripped.get_or_insert((n, storm.elapsed()));
            if n > 4 {
                slowest_refusal = slowest_refusal.max(took);
            }
        }
    }
    let (first_refused, after) = tripped.expect("the breaker opened");
    // Three 500s, then a 503 retried once (a GET): the fifth failure in a row opens it,
    // and that request's next attempt is already refused.
    assert!(first_refused <= 5, "first refused: request {first_refused}");
    assert!(after < Duration::from_secs(10), "tripped after {after:?}");
    // The upstream saw the five calls that tripped it, none of those after.
    assert!(
        storm.elapsed() < Duration::from_secs(3),
        "{:?}",
        storm.elapsed()
    );
    assert_eq!(server.received().len(), 5);
    assert!(
        slowest_refusal < Duration::from_millis(50),
        "a refusal took {slowest_refusal:?}"
    );
    let report = within(10, host.handlers_report());
    assert_eq!(
        report["handlers"][0]["health"]["circuit"], "open",
        "{report}"
    );

    healthy.store(true, Ordering::SeqCst);
    let healed = within(10, async {
        loop {
            let (response, _) = get();
            if response.success == Some(true) {
                return response;
            }
            smol::Timer::after(Duration::from_millis(20)).await;
        }
    });
    assert_eq!(
        healed.payload.as_ref().map(|p| p["status_code"].clone()),
        Some(json!(200))
    );
    assert_eq!(server.received().len(), 6, "one trial call closed it");
    let report = within(10, host.handlers_report());
    assert_eq!(
        report["handlers"][0]["health"]["circuit"], "closed",
        "{report}"
    );
    let readiness = within(10, host.readiness());
    assert!(
        readiness.ready && readiness.degraded.is_empty(),
        "{readiness:?}"
    );
}

#[test]
fn no_handler_works_past_the_requests_deadline() {
    let (gate, server) = gated();
    let (_fixture, host) = host(QUICK);
    let started = Instant::now();
    let response = call(
        &host,
        "http.get",
        json!({"url": server.url("/slow")}),
        json!({"timeout_ms": 100}),
    );
    let elapsed = started.elapsed();
    let error = response.error.expect("cut at the deadline");
    assert!(error.message.contains("deadline"), "{}", error.message);
    assert!(
        elapsed >= Duration::from_millis(100) && elapsed < Duration::from_millis(300),
        "{elapsed:?}"
    );

    let response = call(
        &host,
        "http.get",
        json!({"url": server.url("/slow")}),
        json!({"timeout_ms": -1}),
    );
    assert_eq!(
        response.error.expect("refused").code.as_str(),
        "ENVELOPE_VALIDATION_ERROR"
    );
    gate.open();
}

#[test]
fn a_slow_upstream_is_cut_at_timeout_ms_and_the_host_stays_responsive() {
    let (gate, slow) = gated();
    let fast = TestServer::start(|_| Reply::Send(response("200 OK", &[], b"{}")));
    let (_fixture, host) = host("        timeout_ms: 200\n");
    let timed = |url: String| {
        let host = &host;
        async move {
            let started = Instant::now();
            let response = send(host, "http.get", json!({"url": url}), json!({})).await;
            (response, started.elapsed())
        }
    };
    let (answer, fast_answer) = within(
        20,
        future::zip(timed(slow.url("/slow")), async {
            // Asked once the slow call is under way.
            smol::Timer::after(Duration::from_millis(20)).await;
            timed(fast.url("/f")).await
        }),
    );
    let (response, elapsed) = answer;
    let error = response.error.expect("timed out");
    assert!(error.message.contains("200 ms"), "{}", error.message);
    assert!(
        // timeout_ms ± 10%.
        elapsed >= Duration::from_millis(180) && elapsed <= Duration::from_millis(220),
        "answered after {elapsed:?}"
    );
    // A timeout after the call was sent is never repeated.
    assert_eq!(slow.received().len(), 1);
    assert_eq!(fast_answer.0.success, Some(true));
    assert!(
        fast_answer.1 < Duration::from_millis(150),
        "{:?}",
        fast_answer.1
    );
    gate.open();
}

#[test]
fn over_the_rate_limit_a_call_waits_within_its_deadline_or_is_refused_at_once() {
    let server = TestServer::start(|_| Reply::Send(response("200 OK", &[], b"{}")));
    let (_fixture, host) = host("        rate_limit_per_second: 10\n");
    let calls = (0..14).map(|_| {
        let (payload, metadata) = (json!({"url": server.url("/a")}), json!({"timeout_ms": 250}));
        Box::pin(send(&host, "http.get", payload, metadata))
    });
    let answers = within(20, join_all(calls.collect()));
    let refused: Vec<String> = answers
        .iter()
        .filter_map(|response| response.error.as_ref().map(|e| e.message.clone()))
        .collect();
    // A burst of 10, then one token every 100 ms: within 250 ms two more calls get
    // theirs; the other two are refused at once, saying why.
    assert_eq!(answers.len() - refused.len(), 12, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|m| m.contains("rate limit of 10 calls a second reached")),
        "{refused:?}"
    );
    assert_eq!(server.received().len(), 12);
}
