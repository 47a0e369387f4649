//! The HTTP API (`--listen`) as users' tools see it: every route, bad bodies, readiness,
//! and metrics that count exactly what was sent.

use std::io::Read;

use isahc::{Request, RequestExt};
use serde_json::{Value, json};

use crate::support::daemon::Daemon;
use crate::support::fixture::dev_host;
use crate::support::process::{DEVELOPMENT, PRODUCTION, repo};
use crate::support::request_line;

/// Sends `method` to `url` with `body`; returns the status, the headers and the body text.
/// Fails the test, instead of hanging it, when no answer comes within 60 s.
pub fn http(method: &str, url: &str, body: Vec<u8>) -> (u16, isahc::http::HeaderMap, String) {
    use isahc::config::Configurable;
    let mut response = Request::builder()
        .method(method)
        .uri(url)
        .timeout(std::time::Duration::from_secs(60))
        .body(body)
        .expect("a request")
        .send()
        .unwrap_or_else(|error| panic!("{method} {url}: {error}"));
    let mut text = String::new();
    response
        .body_mut()
        .read_to_string(&mut text)
        .expect("a text body");
    (response.status().as_u16(), response.headers().clone(), text)
}

pub fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("not JSON ({error}): {text}"))
}

/// The dev binary serving `fixture`'s runtime contract `contract` with the API on a
/// free port.
pub fn listening(fixture: &crate::support::fixture::Fixture, contract: &str) -> Daemon {
    Daemon::start(
        DEVELOPMENT,
        &["--listen", "127.0.0.1:0", contract],
        fixture.root(),
        &[],
    )
}

/// The dev host of [`dev_host`], serving the API on a free port.
fn listening_dev_host() -> (crate::support::fixture::Fixture, Daemon) {
    let fixture = dev_host();
    let daemon = listening(&fixture, "runtime/dev.yaml");
    (fixture, daemon)
}

#[test]
fn every_route_answers_as_specified() {
    let (_fixture, daemon) = listening_dev_host();

    let (status, _, body) = http("GET", &daemon.url("/health/live"), vec![]);
    assert_eq!((status, json_of(&body)), (200, json!({"status": "live"})));

    let (status, _, body) = http("GET", &daemon.url("/health/ready"), vec![]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json_of(&body),
        json!({"ready": true, "state": "ready", "components": {"bus": true, "local": true}})
    );

    let (status, _, body) = http("GET", &daemon.url("/health/handlers"), vec![]);
    let report = json_of(&body);
    assert_eq!(status, 200);
    assert_eq!(report["handlers"][0]["handler_type"], "local");
    assert_eq!(report["handlers"][0]["state"], "healthy");
    assert_eq!(report["handlers"][0]["health"]["dev_test_only"], true);
    assert_eq!(
        report["handlers"][0]["describe"]["supported_operations"],
        json!(["local.echo", "local.transform", "local.error"])
    );
    assert_eq!(report["bus"]["healthy"], true);

    let request = request_line(1, "upper_node", "local.transform", r#"{"s":"abc"}"#);
    let (status, headers, body) = http("POST", &daemon.url("/v1/envelopes"), request.into_bytes());
    let response = json_of(&body);
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        (response["success"].clone(), response["payload"].clone()),
        (json!(true), json!({"s": "ABC"}))
    );
    assert_eq!(
        response["causation_id"],
        "00000000-0000-4000-8000-000000000001"
    );

    let failing = request_line(2, "nowhere", "local.echo", "{}");
    let (status, _, body) = http("POST", &daemon.url("/v1/envelopes"), failing.into_bytes());
    assert_eq!(
        (status, json_of(&body)["error"]["code"].clone()),
        (200, json!("NODE_NOT_FOUND")),
        "a routed failure is still a reply"
    );

    let (status, _, body) = http(
        "POST",
        &daemon.url("/v1/envelopes"),
        b"{\"not\": \"an envelope\"".to_vec(),
    );
    assert_eq!(
        (status, json_of(&body)["error"]["code"].clone()),
        (400, json!("ENVELOPE_VALIDATION_ERROR"))
    );

    let (status, _, body) = http(
        "POST",
        &daemon.url("/v1/envelopes"),
        vec![b' '; 9 * 1024 * 1024],
    );
    assert_eq!(status, 413);
    assert_eq!(
        json_of(&body)["error"]["message"],
        "invalid envelope: the envelope is larger than the limit of 8388608 bytes"
    );

    let (status, headers, _) = http("GET", &daemon.url("/v1/envelopes"), vec![]);
    assert_eq!(
        (status, headers["allow"].to_str().ok()),
        (405, Some("POST"))
    );
    let (status, headers, _) = http("DELETE", &daemon.url("/metrics"), vec![]);
    assert_eq!((status, headers["allow"].to_str().ok()), (405, Some("GET")));
    assert_eq!(http("GET", &daemon.url("/nope"), vec![]).0, 404);

    let (status, headers, body) = http("GET", &daemon.url("/metrics"), vec![]);
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("application/openmetrics-text")
    );
    assert!(body.contains("onex_envelopes_in_flight 0"), "{body}");
    assert!(body.ends_with("# EOF\n"));

    daemon.signal("TERM");
    let (status, _, stderr) = daemon.exit();
    assert_eq!(status, Some(0), "{stderr}");
}

#[test]
fn readiness_is_503_while_a_handler_is_down() {
    let closed_port = crate::support::closed_port();
    let url = format!("postgresql://nobody:secret@127.0.0.1:{closed_port}/none?connect_timeout=2");
    let daemon = Daemon::start(
        PRODUCTION,
        &[
            "--listen",
            "127.0.0.1:0",
            "contracts/runtime/minimum_runtime_host.yaml",
        ],
        repo(),
        &[("DATABASE_URL", &url)],
    );
    let (status, _, body) = http("GET", &daemon.url("/health/ready"), vec![]);
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        json_of(&body),
        json!({"ready": false, "state": "ready", "components": {"bus": true, "http": true, "db": false}}),
        "{}",
        daemon.stderr()
    );
    assert_eq!(http("GET", &daemon.url("/health/live"), vec![]).0, 200);
    let (_, _, body) = http("GET", &daemon.url("/health/handlers"), vec![]);
    let db = &json_of(&body)["handlers"][1];
    assert_eq!(
        (db["handler_type"].clone(), db["state"].clone()),
        (json!("db"), json!("unhealthy"))
    );
    assert!(!body.contains("secret"), "{body}");
    daemon.signal("TERM");
    assert_eq!(daemon.exit().0, Some(0));
}

#[test]
fn metrics_count_exactly_what_was_sent() {
    let (_fixture, daemon) = listening_dev_host();
    for n in 0..7 {
        http(
            "POST",
            &daemon.url("/v1/envelopes"),
            request_line(n, "echo_node", "local.echo", "{}").into_bytes(),
        );
    }
    for n in 7..10 {
        http(
            "POST",
            &daemon.url("/v1/envelopes"),
            request_line(n, "ghost", "local.echo", "{}").into_bytes(),
        );
    }
    for _ in 0..2 {
        http("POST", &daemon.url("/v1/envelopes"), b"garbage".to_vec());
    }
    let (_, _, metrics) = http("GET", &daemon.url("/metrics"), vec![]);
    let value = |series: &str| -> Option<f64> {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    };
    // The unnamed binding is known by its type's name; a request no binding runs (its
    // node is not hosted here, or it is not a request at all) by `none`.
    assert_eq!(
        value(
            r#"onex_envelopes_received_total{handler_type="local",binding="local",operation="local.echo"}"#
        ),
        Some(7.0),
        "{metrics}"
    );
    assert_eq!(
        value(
            r#"onex_envelopes_received_total{handler_type="local",binding="none",operation="local.echo"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            r#"onex_envelopes_received_total{handler_type="unknown",binding="none",operation="other"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            r#"onex_envelopes_answered_total{handler_type="local",binding="local",operation="local.echo",outcome="success"}"#
        ),
        Some(7.0)
    );
    assert_eq!(
        value(
            r#"onex_envelopes_answered_total{handler_type="local",binding="none",operation="local.echo",outcome="NODE_NOT_FOUND"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            r#"onex_envelopes_answered_total{handler_type="unknown",binding="none",operation="other",outcome="ENVELOPE_VALIDATION_ERROR"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            r#"onex_envelope_duration_seconds_count{handler_type="local",binding="local",operation="local.echo"}"#
        ),
        Some(7.0)
    );
    assert_eq!(value("onex_envelopes_in_flight"), Some(0.0));
    assert_eq!(
        value(r#"onex_bus_queue_depth{topic="onex.dev_host.cmd.v1"}"#),
        Some(0.0)
    );
    daemon.signal("TERM");
    assert_eq!(daemon.exit().0, Some(0));
}

#[test]
fn the_healthcheck_mode_probes_liveness_without_a_shell_or_curl() {
    use crate::support::process::run;
    let (_fixture, daemon) = listening_dev_host();
    let live = run(
        PRODUCTION,
        &["healthcheck", &daemon.url("/health/live")],
        repo(),
        b"",
        &[],
    );
    assert_eq!(live.status, Some(0), "{}", live.stderr);
    let missing = run(
        PRODUCTION,
        &["healthcheck", &daemon.url("/nope")],
        repo(),
        b"",
        &[],
    );
    assert_eq!(missing.status, Some(1));
    assert!(
        missing.stderr.contains("answered 404"),
        "{}",
        missing.stderr
    );
    daemon.signal("TERM");
    assert_eq!(daemon.exit().0, Some(0));
    let down = run(
        PRODUCTION,
        &["healthcheck", "http://127.0.0.1:1/health/live"],
        repo(),
        b"",
        &[],
    );
    assert_eq!(down.status, Some(1));
    assert!(down.stderr.contains("failed to connect"), "{}", down.stderr);
}
