//! Named bindings as an operator sees them: two bindings of one type counted apart in
//! `/metrics` (the `binding` label), and the log lines about a binding's calls (the
//! answer, the breaker, the db handler's own) naming it.

use serde_json::json;

use crate::api::{http, json_of, listening};
use crate::support::daemon::Daemon;
use crate::support::fixture::Fixture;
use crate::support::request_line;

/// A node contract (schema 1.1.0) named `name` whose local operations run on `binding`.
fn node_on(name: &str, binding: &str) -> String {
    format!(
        "schema_version: \"1.1.0\"\nnode_version: \"1.0.0\"\nname: \"{name}\"\nnode_type: \"EFFECT_GENERIC\"\nio_operations:\n  - type: \"local\"\n    binding: \"{binding}\"\n    operations: [\"local.echo\", \"local.error\"]\n"
    )
}

/// A dev host with two local bindings, `orders_local` (node `orders`) and
/// `billing_local` (node `billing`), serving the API on a free port.
fn two_local_bindings() -> (Fixture, Daemon) {
    let fixture = Fixture::new()
        .with(
            "runtime/r.yaml",
            "schema_version: \"1.1.0\"\nruntime:\n  name: \"two\"\n  version: \"1.0.0\"\n  event_bus:\n    kind: \"inmemory\"\n  handlers:\n    - type: \"local\"\n      name: \"orders_local\"\n    - type: \"local\"\n      name: \"billing_local\"\n  nodes:\n    - slug: \"orders\"\n    - slug: \"billing\"\n",
        )
        .with("nodes/orders.yaml", &node_on("orders", "orders_local"))
        .with("nodes/billing.yaml", &node_on("billing", "billing_local"));
    let daemon = listening(&fixture, "runtime/r.yaml");
    (fixture, daemon)
}

#[test]
fn two_bindings_of_one_type_have_series_of_their_own() {
    let (_fixture, daemon) = two_local_bindings();
    let post = |n: u32, node: &str, operation: &str| {
        let line = request_line(n, node, operation, r#"{"message":"billing is down"}"#);
        let (status, _, body) = http("POST", &daemon.url("/v1/envelopes"), line.into_bytes());
        assert_eq!(status, 200, "{body}");
        json_of(&body)
    };
    for n in 0..3 {
        assert_eq!(post(n, "orders", "local.echo")["success"], true);
    }
    for n in 3..5 {
        let failed = post(n, "billing", "local.error");
        assert_eq!(failed["error"]["code"], "HANDLER_EXECUTION_ERROR");
    }
    assert_eq!(post(5, "billing", "local.echo")["success"], true);
    assert_eq!(
        post(6, "nowhere", "local.echo")["error"]["code"],
        "NODE_NOT_FOUND"
    );

    let (_, _, metrics) = http("GET", &daemon.url("/metrics"), vec![]);
    let value = |labels: &str| -> Option<f64> {
        metrics.lines().find_map(|line| {
            let rest = line.strip_prefix(labels)?;
            rest.strip_prefix(' ')?.trim().parse().ok()
        })
    };
    let answered = |binding: &str, operation: &str, outcome: &str| {
        value(&format!(
            r#"onex_envelopes_answered_total{{handler_type="local",binding="{binding}",operation="{operation}",outcome="{outcome}"}}"#
        ))
    };
    assert_eq!(
        answered("orders_local", "local.echo", "success"),
        Some(3.0),
        "{metrics}"
    );
    assert_eq!(
        answered("billing_local", "local.error", "HANDLER_EXECUTION_ERROR"),
        Some(2.0)
    );
    assert_eq!(
        answered("billing_local", "local.echo", "success"),
        Some(1.0)
    );
    assert_eq!(answered("none", "local.echo", "NODE_NOT_FOUND"), Some(1.0));
    // The healthy binding has no failures to show, and nothing is counted under the
    // type alone: there is no unnamed binding.
    assert!(!metrics.contains(r#"binding="orders_local",operation="local.error""#));
    assert!(!metrics.contains(r#"binding="local""#), "{metrics}");
    for (binding, count) in [("orders_local", 3.0), ("billing_local", 1.0)] {
        let received = format!(
            r#"onex_envelopes_received_total{{handler_type="local",binding="{binding}",operation="local.echo"}}"#
        );
        let timed = format!(
            r#"onex_envelope_duration_seconds_count{{handler_type="local",binding="{binding}",operation="local.echo"}}"#
        );
        assert_eq!(
            (value(&received), value(&timed)),
            (Some(count), Some(count))
        );
    }

    let (_, _, body) = http("GET", &daemon.url("/health/handlers"), vec![]);
    let bindings: Vec<_> = json_of(&body)["handlers"]
        .as_array()
        .map(|handlers| handlers.iter().map(|h| h["binding"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(bindings, [json!("billing_local"), json!("orders_local")]);

    daemon.signal("TERM");
    let (status, _, stderr) = daemon.exit();
    assert_eq!(status, Some(0), "{stderr}");
    let failures: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("code=HANDLER_EXECUTION_ERROR"))
        .collect();
    assert_eq!(failures.len(), 2, "{stderr}");
    assert!(
        failures
            .iter()
            .all(|line| line.contains("binding=billing_local") && line.contains("node=billing")),
        "{stderr}"
    );
}

#[test]
fn a_db_bindings_log_lines_and_series_name_it() {
    let closed_port = crate::support::closed_port();
    let url = format!("postgresql://nobody@127.0.0.1:{closed_port}/none");
    let fixture = Fixture::new()
        .with(
            "runtime/r.yaml",
            "schema_version: \"1.1.0\"\nruntime:\n  name: \"orders\"\n  version: \"1.0.0\"\n  event_bus:\n    kind: \"inmemory\"\n  handlers:\n    - type: \"db\"\n      name: \"orders_db\"\n      config:\n        dsn_env: \"ORDERS_DB_URL\"\n        retry_policy: {max_retries: 0}\n        circuit_breaker: {failure_threshold: 1, reset_timeout_ms: 60000}\n  nodes:\n    - slug: \"store\"\n",
        )
        .with(
            "nodes/store.yaml",
            "schema_version: \"1.1.0\"\nnode_version: \"1.0.0\"\nname: \"store\"\nnode_type: \"EFFECT_GENERIC\"\nio_operations:\n  - type: \"db\"\n    binding: \"orders_db\"\n    operations: [\"db.query\"]\n",
        );
    let daemon = Daemon::start(
        crate::support::process::PRODUCTION,
        &["--listen", "127.0.0.1:0", "runtime/r.yaml"],
        fixture.root(),
        &[("ORDERS_DB_URL", &url)],
    );
    daemon.wait_for(
        |d| d.stderr().contains("ready. Listening"),
        "the host to start",
    );
    let line = request_line(1, "store", "db.query", r#"{"sql":"SELECT 1"}"#);
    let (_, _, body) = http("POST", &daemon.url("/v1/envelopes"), line.into_bytes());
    assert_eq!(json_of(&body)["error"]["code"], "HANDLER_EXECUTION_ERROR");
    let (_, _, metrics) = http("GET", &daemon.url("/metrics"), vec![]);
    assert!(
        metrics.contains(
            r#"onex_envelopes_answered_total{handler_type="db",binding="orders_db",operation="db.query",outcome="HANDLER_EXECUTION_ERROR"} 1"#
        ),
        "{metrics}"
    );
    daemon.signal("TERM");
    let (status, _, stderr) = daemon.exit();
    assert_eq!(status, Some(0), "{stderr}");
    // The database not reachable at start, the breaker opening on the failed call, and
    // the call's answer: each line names the binding.
    for said in [
        "not reachable yet",
        "circuit open for 60000 ms",
        "code=HANDLER_EXECUTION_ERROR",
    ] {
        let line = stderr
            .lines()
            .find(|line| line.contains(said))
            .unwrap_or_else(|| panic!("no line saying {said:?}: {stderr}"));
        assert!(
            line.contains("handler_type=db") && line.contains("binding=orders_db"),
            "{line}"
        );
    }
}
