//! Chaos test 4 of issue 21 through the production binary's HTTP API: an upstream slower
//! than the binding's `timeout_ms` is answered with the timeout error at `timeout_ms`
//! (± 10%), while liveness and another request are answered meanwhile. (The same cut in
//! process, and the 500/503 storm, are in `resilience`.)

use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::api::{http, json_of};
use crate::db_faults::wait_until;
use crate::resilience::gated;
use crate::support::daemon::Daemon;
use crate::support::fixture::Fixture;
use crate::support::http_server::{Reply, TestServer, response};
use crate::support::process::PRODUCTION;

/// A 1.1.0 contract whose http binding cuts calls at 200 ms, hosting the node `web`.
fn contract() -> Fixture {
    Fixture::new()
        .with(
            "runtime.yaml",
            "schema_version: \"1.1.0\"\nruntime:\n  name: \"chaos\"\n  version: \"1.0.0\"\n  event_bus:\n    kind: \"inmemory\"\n  handlers:\n    - type: \"http\"\n      config:\n        timeout_ms: 200\n  nodes:\n    - slug: \"web\"\n",
        )
        .with(
            "nodes/web.yaml",
            "schema_version: \"1.0.0\"\nnode_version: \"1.0.0\"\nname: \"web\"\nnode_type: \"EFFECT_GENERIC\"\nio_operations:\n  - type: \"http\"\n    operations: [\"http.get\"]\n",
        )
}

/// An `http.get` of `url` through the API at `api`: the response and how long it took.
fn get(api: &str, url: &str) -> (serde_json::Value, Duration) {
    let request = json!({
        "envelope_id": "6f1c1a4e-0000-4000-8000-000000000004",
        "target_node": "web",
        "operation": "http.get",
        "payload": {"url": url},
    });
    let started = Instant::now();
    let (_, _, body) = http("POST", api, request.to_string().into_bytes());
    (json_of(&body), started.elapsed())
}

#[test]
fn a_slow_upstream_is_cut_at_timeout_ms_while_the_host_answers_others() {
    let (gate, slow) = gated();
    let fast = TestServer::start(|_| Reply::Send(response("200 OK", &[], b"{}")));
    let fixture = contract();
    let daemon = Daemon::start(
        PRODUCTION,
        // Two at once: by default the host handles one request at a time, in order.
        &[
            "--listen",
            "127.0.0.1:0",
            "--max-in-flight",
            "2",
            "runtime.yaml",
        ],
        fixture.root(),
        &[],
    );
    let api = daemon.url("/v1/envelopes");

    let cut = {
        let (api, url) = (api.clone(), slow.url("/slow"));
        thread::spawn(move || get(&api, &url))
    };
    // Once the slow call waits at the upstream: liveness and a fast call, answered at once.
    wait_until("the slow call reaches the upstream", 10, || {
        gate.waiting() == 1
    });
    let started = Instant::now();
    let (status, _, _) = http("GET", &daemon.url("/health/live"), vec![]);
    assert_eq!(status, 200);
    let live = started.elapsed();
    let (answer, other) = get(&api, &fast.url("/f"));
    assert_eq!(answer["success"], true, "{answer}");

    let (answer, took) = cut.join().expect("the slow call's answer");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("200 ms"), "{answer}");
    assert!(
        took >= Duration::from_millis(180) && took <= Duration::from_millis(220),
        "answered after {took:?}"
    );
    assert!(
        live < Duration::from_millis(100) && other < Duration::from_millis(100),
        "liveness took {live:?}, the other call {other:?}"
    );
    eprintln!("cut after {took:?}; meanwhile liveness in {live:?}, another call in {other:?}");
    gate.open();
}
