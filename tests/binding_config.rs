//! Handler bindings' `config` (schema 1.1.0): defaults, every field's range and type,
//! unknown keys, and the 1.0.0 refusal, each problem with its line, hint and action; and
//! a `local` binding's config taken by the dev host and applied.

use std::path::Path;
use std::time::Duration;

use onex_host::contract::{
    Backoff, BreakerPolicy, ContractError, HandlerConfig, RetryPolicy, RuntimeHostContract,
};
use onex_host::handler::HandlerType;
use serde_json::json;

use crate::api::{http, json_of, listening};
use crate::support::fixture::{Fixture, node};
use crate::support::process::{DEVELOPMENT, serve_stdin};

/// A runtime contract of `version` whose handlers are `handlers` (YAML list items,
/// indented under `handlers:`).
fn contract(version: &str, handlers: &str) -> String {
    format!(
        "schema_version: \"{version}\"\nruntime:\n  name: \"t\"\n  version: \"1.0.0\"\n  event_bus:\n    kind: \"inmemory\"\n  nodes: []\n  handlers:\n{handlers}"
    )
}

fn parse(text: &str) -> Result<RuntimeHostContract, ContractError> {
    RuntimeHostContract::parse(text, Path::new("r.yaml"))
}

fn refused(handlers: &str) -> ContractError {
    parse(&contract("1.1.0", handlers)).expect_err("the contract must be refused")
}

#[test]
fn a_binding_without_config_keeps_todays_behaviour_and_an_empty_one_takes_every_default() {
    let loaded = parse(&contract(
        "1.1.0",
        "    - type: \"http\"\n    - type: \"db\"\n      config: {}\n",
    ))
    .expect("valid");
    assert_eq!(loaded.handlers[0].config, None);
    let db = loaded.handlers[1].config.clone().expect("a config");
    assert_eq!(db, HandlerConfig::default());
    assert_eq!(db.timeout, Duration::from_secs(30));
    assert_eq!(
        db.retry,
        RetryPolicy {
            max_retries: 3,
            backoff: Backoff::Exponential,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(5000),
        }
    );
    assert_eq!(
        db.circuit_breaker,
        BreakerPolicy {
            failure_threshold: 5,
            reset_timeout: Duration::from_secs(10),
        }
    );
    assert_eq!((db.rate_limit_per_second, db.pool_size), (None, None));
}

#[test]
fn every_field_is_read() {
    let loaded = parse(&contract(
        "1.1.0",
        "    - type: \"http\"
      config:
        timeout_ms: 2000
        retry_policy:
          max_retries: 2
          backoff_strategy: \"fixed\"
          base_delay_ms: 10
          max_delay_ms: 20
        rate_limit_per_second: 200
        circuit_breaker:
          failure_threshold: 3
          reset_timeout_ms: 500
    - type: \"db\"
      config:
        pool_size: 12
        timeout_ms: 1500
",
    ))
    .expect("valid");
    let http = loaded.handlers[0].config.clone().expect("a config");
    assert_eq!(http.timeout, Duration::from_secs(2));
    assert_eq!(
        http.retry,
        RetryPolicy {
            max_retries: 2,
            backoff: Backoff::Fixed,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
        }
    );
    assert_eq!(http.rate_limit_per_second, Some(200));
    assert_eq!(http.circuit_breaker.failure_threshold, 3);
    assert_eq!(
        http.circuit_breaker.reset_timeout,
        Duration::from_millis(500)
    );
    let db = loaded.handlers[1].config.clone().expect("a config");
    assert_eq!(db.pool_size, Some(12));
    assert_eq!(db.timeout, Duration::from_millis(1500));
    assert_eq!(loaded.handlers[1].handler_type, HandlerType::Db);
}

#[test]
fn a_1_0_0_contract_with_config_is_told_to_set_1_1_0() {
    let error = parse(&contract(
        "1.0.0",
        "    - type: \"http\"\n      config:\n        timeout_ms: 100\n",
    ))
    .expect_err("refused");
    let problem = &error.problems()[0];
    assert_eq!(
        problem.message,
        "a handler's config is a schema 1.1.0 feature, and this contract is 1.0.0"
    );
    assert_eq!(problem.action, "set schema_version: \"1.1.0\"");
    assert_eq!(problem.line, Some(11));
}

#[test]
fn every_out_of_range_value_is_named_with_its_line_and_range() {
    let cases = [
        (
            "timeout_ms: 0",
            "config.timeout_ms 0 is out of range",
            "from 1 to 600000",
        ),
        (
            "timeout_ms: 600001",
            "config.timeout_ms 600001 is out of range",
            "from 1 to 600000",
        ),
        (
            "rate_limit_per_second: 0",
            "config.rate_limit_per_second 0 is out of range",
            "from 1 to 1000000",
        ),
        (
            "retry_policy: {max_retries: 11}",
            "config.retry_policy.max_retries 11 is out of range",
            "from 0 to 10",
        ),
        (
            "retry_policy: {base_delay_ms: 0}",
            "config.retry_policy.base_delay_ms 0 is out of range",
            "from 1 to 60000",
        ),
        (
            "retry_policy: {max_delay_ms: 700000}",
            "config.retry_policy.max_delay_ms 700000 is out of range",
            "from 1 to 600000",
        ),
        (
            "circuit_breaker: {failure_threshold: 0}",
            "config.circuit_breaker.failure_threshold 0 is out of range",
            "from 1 to 1000",
        ),
        (
            "circuit_breaker: {reset_timeout_ms: 0}",
            "config.circuit_breaker.reset_timeout_ms 0 is out of range",
            "from 1 to 3600000",
        ),
        (
            "timeout_ms: 99999999999999",
            "config.timeout_ms 99999999999999 is out of range",
            "from 1 to 600000",
        ),
    ];
    for (field, message, hint) in cases {
        let error = refused(&format!(
            "    - type: \"http\"\n      config:\n        {field}\n"
        ));
        let problem = &error.problems()[0];
        assert_eq!(problem.message, message, "{field}");
        assert_eq!(problem.hint, hint, "{field}");
        assert_eq!(problem.line, Some(11), "{field}");
        assert!(problem.action.contains("within that range"), "{field}");
    }
    let error = refused("    - type: \"db\"\n      config:\n        pool_size: 101\n");
    assert_eq!(
        error.problems()[0].message,
        "config.pool_size 101 is out of range"
    );
}

#[test]
fn a_strategy_outside_the_two_and_delays_in_the_wrong_order_are_refused() {
    let error = refused(
        "    - type: \"http\"\n      config:\n        retry_policy:\n          backoff_strategy: \"linear\"\n",
    );
    let problem = &error.problems()[0];
    assert_eq!(
        problem.message,
        "retry_policy.backoff_strategy 'linear' is not a strategy"
    );
    assert_eq!(problem.line, Some(12));

    let error = refused(
        "    - type: \"http\"\n      config:\n        retry_policy:\n          base_delay_ms: 500\n          max_delay_ms: 100\n",
    );
    let problem = &error.problems()[0];
    assert_eq!(
        problem.message,
        "retry_policy.max_delay_ms (100) is below base_delay_ms (500)"
    );
    assert_eq!(problem.line, Some(13));
}

#[test]
fn pool_size_belongs_to_db_alone() {
    let error = refused("    - type: \"http\"\n      config:\n        pool_size: 5\n");
    let problem = &error.problems()[0];
    assert_eq!(
        problem.message,
        "pool_size is a db setting, not one of the http handler"
    );
    assert_eq!(problem.line, Some(11));
}

#[test]
fn unknown_keys_and_wrong_types_are_refused_with_their_line() {
    for (yaml, message, line) in [
        ("timeout: 5", "unknown field 'timeout'", 11),
        ("retry_policy: {retries: 2}", "unknown field 'retries'", 11),
        (
            "circuit_breaker: {threshold: 2}",
            "unknown field 'threshold'",
            11,
        ),
        ("dsn: \"x\"", "unknown field 'dsn'", 11),
    ] {
        let error = refused(&format!(
            "    - type: \"http\"\n      config:\n        {yaml}\n"
        ));
        let problem = &error.problems()[0];
        assert_eq!(problem.message, message, "{yaml}");
        assert_eq!(problem.line, Some(line), "{yaml}");
    }
    let error = refused("    - type: \"http\"\n      config:\n        timeout_ms: -1\n");
    assert_eq!(error.problems()[0].line, Some(11), "{error}");
    let error = refused("    - type: \"http\"\n      config:\n        timeout_ms: \"fast\"\n");
    assert_eq!(error.problems()[0].line, Some(11), "{error}");
}

#[test]
fn every_problem_of_a_config_is_reported_at_once() {
    let error = refused(
        "    - type: \"http\"\n      config:\n        timeout_ms: 0\n        rate_limit_per_second: 0\n        circuit_breaker: {failure_threshold: 0}\n",
    );
    assert_eq!(error.problems().len(), 3, "{error}");
}

/// A dev host whose one `local` binding has a `config`, hosting `echo_node`.
fn configured_local() -> Fixture {
    let handlers = "    - type: \"local\"
      config:
        timeout_ms: 1500
        rate_limit_per_second: 1
        retry_policy: {max_retries: 2}
        circuit_breaker: {failure_threshold: 3, reset_timeout_ms: 60000}
";
    let runtime = contract("1.1.0", handlers)
        .replace("  nodes: []\n", "  nodes:\n    - slug: \"echo_node\"\n");
    Fixture::new().with("runtime/r.yaml", &runtime).with(
        "nodes/echo_node.yaml",
        &node("echo_node", "local", &["local.echo"]),
    )
}

#[test]
fn the_dev_host_takes_a_local_bindings_config_and_applies_it() {
    let fixture = configured_local();
    let daemon = listening(&fixture, "runtime/r.yaml");
    let (status, _, body) = http("GET", &daemon.url("/health/handlers"), vec![]);
    assert_eq!(status, 200, "{body}");
    let local = &json_of(&body)["handlers"][0];
    assert_eq!(local["binding"], "local");
    assert_eq!(
        (local["state"].clone(), local["health"]["circuit"].clone()),
        (json!("healthy"), json!("closed"))
    );
    let limits = &local["describe"]["limits"];
    assert_eq!(
        (
            limits["timeout_ms"].clone(),
            limits["rate_limit_per_second"].clone(),
            limits["max_retries"].clone(),
        ),
        (json!(1500), json!(1), json!(2)),
        "{body}"
    );
    assert_eq!(
        (
            limits["breaker_failure_threshold"].clone(),
            limits["breaker_reset_timeout_ms"].clone(),
        ),
        (json!(3), json!(60000))
    );
    daemon.signal("TERM");
    assert_eq!(daemon.exit().0, Some(0));

    // The limit at work: a second's token goes to the first line; the next two, read at
    // once after it, would wait about a second for theirs, past their 50 ms, and are
    // refused without waiting.
    let lines: String = (1..=3)
        .map(|n| {
            format!(
                "{{\"envelope_id\":\"00000000-0000-4000-8000-{n:012}\",\"target_node\":\"echo_node\",\"operation\":\"local.echo\",\"payload\":{{\"n\":{n}}},\"metadata\":{{\"timeout_ms\":50}}}}\n"
            )
        })
        .collect();
    let run = serve_stdin(
        DEVELOPMENT,
        fixture.root(),
        "runtime/r.yaml",
        lines.as_bytes(),
    );
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let responses: Vec<serde_json::Value> = run.lines().into_iter().map(json_of).collect();
    assert_eq!(responses.len(), 3, "{}", run.stdout);
    assert_eq!(responses[0]["payload"], json!({"n": 1}));
    for refused in &responses[1..] {
        assert_eq!(refused["error"]["code"], "HANDLER_EXECUTION_ERROR");
        let message = refused["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("rate limit of 1 calls a second reached"),
            "{message}"
        );
    }
    // The refusals' log lines name the binding, the unnamed one by its type.
    let logged = run
        .stderr
        .lines()
        .filter(|line| line.contains("rate limit of 1 calls") && line.contains("binding=local"))
        .count();
    assert_eq!(logged, 2, "{}", run.stderr);
}
