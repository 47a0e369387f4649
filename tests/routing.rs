//! Routing (docs/INTERFACE.md's five steps): every error code, with deterministic ids and clock,
//! and the full response envelope checked field by field.

use onex_host::envelope::{Envelope, Stamp};
use onex_host::host::RuntimeHost;
use onex_host::wiring;
use serde_json::{Value, json};

use crate::support::fixture::{Fixture, dev_host, node, runtime};
use crate::support::{correlation_of, request_line, within};

fn host_of(fixture: &Fixture, contract: &str) -> RuntimeHost {
    crate::support::host::build(fixture, contract, 1000)
}

fn answer(host: &RuntimeHost, line: &str) -> Value {
    let response: Envelope = *within(5, host.process(line.as_bytes()));
    serde_json::to_value(&response).expect("a response serialises")
}

#[test]
fn a_success_response_has_every_field_as_specified() {
    let fixture = dev_host();
    let host = host_of(&fixture, "runtime/dev.yaml");
    let line = r#"{"envelope_id":"00000000-0000-4000-8000-000000000001","correlation_id":"00000000-0000-4000-9000-000000000001","source_node":"caller","target_node":"echo_node","operation":"local.echo","payload":{"k":[1,"two"]},"metadata":{"trace":"t"},"timestamp":"2024-05-06T07:08:09Z"}"#;
    assert_eq!(
        answer(&host, line),
        json!({
            "envelope_id": "00000000-0000-0000-0000-0000000003e9",
            "envelope_version": "1.0.0",
            "correlation_id": "00000000-0000-4000-9000-000000000001",
            "causation_id": "00000000-0000-4000-8000-000000000001",
            "source_node": "echo_node",
            "target_node": "caller",
            "handler_type": "local",
            "operation": "local.echo",
            "payload": {"k": [1, "two"]},
            "metadata": {"trace": "t", "original_target_node": "echo_node"},
            "timestamp": "2024-01-01T00:00:00Z",
            "is_response": true,
            "success": true,
            "error": null
        })
    );
}

#[test]
fn envelope_validation_error_echoes_the_correlation_id_and_names_missing_fields() {
    let fixture = dev_host();
    let host = host_of(&fixture, "runtime/dev.yaml");
    let response = answer(
        &host,
        r#"{"correlation_id":"00000000-0000-4000-9000-000000000007","payload":{}}"#,
    );
    assert_eq!(response["correlation_id"], correlation_of(7));
    assert_eq!(response["causation_id"], Value::Null);
    assert_eq!(response["success"], false);
    assert_eq!(response["payload"], Value::Null);
    assert_eq!(
        response["error"],
        json!({
            "code": "ENVELOPE_VALIDATION_ERROR",
            "message": "invalid envelope: missing required fields: envelope_id, target_node, operation",
            "handler_type": null,
            "operation": null
        })
    );
}

#[test]
fn a_request_without_correlation_id_gets_one_assigned() {
    let fixture = dev_host();
    let host = host_of(&fixture, "runtime/dev.yaml");
    let response = answer(
        &host,
        r#"{"envelope_id":"00000000-0000-4000-8000-000000000001","target_node":"echo_node","operation":"local.echo"}"#,
    );
    assert_eq!(response["success"], true);
    assert_eq!(
        response["correlation_id"],
        "00000000-0000-0000-0000-0000000003e9"
    );
    assert_eq!(
        response["envelope_id"],
        "00000000-0000-0000-0000-0000000003ea"
    );
}

#[test]
fn node_not_found_lists_the_available_nodes() {
    let fixture = dev_host();
    let host = host_of(&fixture, "runtime/dev.yaml");
    let response = answer(&host, &request_line(2, "billing", "local.echo", "{}"));
    assert_eq!(response["correlation_id"], correlation_of(2));
    assert_eq!(
        response["error"],
        json!({
            "code": "NODE_NOT_FOUND",
            "message": "node 'billing' is not hosted by this runtime",
            "handler_type": "local",
            "operation": "local.echo",
            "available_nodes": ["echo_node", "upper_node"]
        })
    );
    assert_eq!(response["metadata"]["original_target_node"], "billing");
}

#[test]
fn an_undeclared_operation_is_an_invalid_operation_naming_the_declared_ones() {
    let fixture = dev_host();
    let host = host_of(&fixture, "runtime/dev.yaml");
    let response = answer(
        &host,
        &request_line(3, "echo_node", "local.transform", "{}"),
    );
    assert_eq!(
        response["error"],
        json!({
            "code": "INVALID_OPERATION_ERROR",
            "message": "node 'echo_node' does not allow operation 'local.transform'",
            "handler_type": "local",
            "operation": "local.transform",
            "available_operations": ["local.echo", "local.error"]
        })
    );
}

#[test]
fn an_operation_of_an_unregistered_handler_is_handler_not_found() {
    let fixture = Fixture::new()
        .with("runtime/r.yaml", &runtime("r", &["local"], &["fetcher"]))
        .with(
            "nodes/fetcher.yaml",
            &node("fetcher", "http", &["http.get"]),
        );
    let host = host_of(&fixture, "runtime/r.yaml");
    let response = answer(
        &host,
        &request_line(4, "fetcher", "http.get", r#"{"url":"http://127.0.0.1:9/"}"#),
    );
    assert_eq!(
        response["error"],
        json!({
            "code": "HANDLER_NOT_FOUND",
            "message": "no handler registered for type 'http'",
            "handler_type": "http",
            "operation": "http.get",
            "available_handlers": ["local"]
        })
    );
}

#[test]
fn an_operation_the_handler_refuses_is_an_invalid_operation_naming_its_operations() {
    // Wiring refuses such a node at start-up; this drives the runtime directly to show
    // the handler still refuses what it does not support.
    use onex_host::contract::NodeContract;
    use onex_host::handler::HandlerType;
    use onex_host::runtime::{NodeInstance, NodeRuntime};
    use std::path::Path;

    let contract = NodeContract::parse(
        &node("sleeper", "local", &["local.sleep"]),
        Path::new("sleeper.yaml"),
    )
    .expect("a valid node");
    let mut runtime = NodeRuntime::new(Stamp::deterministic(0));
    runtime
        .register_handler(wiring::build_handler(HandlerType::Local))
        .expect("registers");
    runtime
        .register_node(NodeInstance::new(contract))
        .expect("registers");
    let stamp = Stamp::deterministic(50);
    let request = Envelope::request(&stamp, "sleeper", "local.sleep", None);
    let response = within(5, runtime.route_envelope(Box::new(request)));
    let error = response.error.expect("an error");
    assert_eq!(error.code.as_str(), "INVALID_OPERATION_ERROR");
    assert_eq!(
        error.message,
        "handler 'local': operation 'local.sleep' not supported. Available: local.echo, local.transform, local.error"
    );
    assert_eq!(
        error.details["available_operations"],
        json!(["local.echo", "local.transform", "local.error"])
    );
}

#[test]
fn a_failing_handler_is_a_handler_execution_error() {
    let fixture = dev_host();
    let host = host_of(&fixture, "runtime/dev.yaml");
    let response = answer(
        &host,
        &request_line(
            5,
            "echo_node",
            "local.error",
            r#"{"message":"disk on fire"}"#,
        ),
    );
    assert_eq!(response["correlation_id"], correlation_of(5));
    assert_eq!(
        response["error"],
        json!({
            "code": "HANDLER_EXECUTION_ERROR",
            "message": "handler 'local': disk on fire",
            "handler_type": "local",
            "operation": "local.error"
        })
    );
}

#[test]
fn handler_type_and_operation_must_agree() {
    let fixture = dev_host();
    let host = host_of(&fixture, "runtime/dev.yaml");
    let line = r#"{"envelope_id":"00000000-0000-4000-8000-000000000001","target_node":"echo_node","operation":"local.echo","handler_type":"db"}"#;
    let response = answer(&host, line);
    assert_eq!(response["error"]["code"], "ENVELOPE_VALIDATION_ERROR");
    assert_eq!(
        response["error"]["message"],
        "invalid envelope: handler_type: 'db' disagrees with operation 'local.echo'; omit handler_type or set it to 'local'"
    );
}

#[test]
fn an_http_url_outside_the_node_target_is_refused_before_any_handler_runs() {
    let fixture = Fixture::new()
        .with("runtime/r.yaml", &runtime("r", &["local"], &["users"]))
        .with(
            "nodes/users.yaml",
            "schema_version: \"1.0.0\"\nnode_version: \"1.0.0\"\nname: \"users\"\nnode_type: \"EFFECT_GENERIC\"\nio_operations:\n  - type: \"http\"\n    operations: [\"http.get\"]\n    target: \"https://api.example.com/users\"\n",
        );
    let host = host_of(&fixture, "runtime/r.yaml");
    let outside = answer(
        &host,
        &request_line(
            6,
            "users",
            "http.get",
            r#"{"url":"https://api.example.com/admin"}"#,
        ),
    );
    assert_eq!(outside["error"]["code"], "INVALID_OPERATION_ERROR");
    assert_eq!(
        outside["error"]["message"],
        "node 'users' does not allow the requested URL for 'http.get': it lies outside https://api.example.com/users"
    );
    let missing = answer(&host, &request_line(7, "users", "http.get", "{}"));
    assert_eq!(missing["error"]["code"], "ENVELOPE_VALIDATION_ERROR");
    // Inside the target, routing goes on to step 4 (no http handler in this host).
    let inside = answer(
        &host,
        &request_line(
            8,
            "users",
            "http.get",
            r#"{"url":"https://api.example.com/users/7"}"#,
        ),
    );
    assert_eq!(inside["error"]["code"], "HANDLER_NOT_FOUND");
}

#[test]
fn error_envelopes_carry_no_paths_or_traces() {
    let fixture = dev_host();
    let host = host_of(&fixture, "runtime/dev.yaml");
    let root = fixture.root().display().to_string();
    for line in [
        "{",
        "[]",
        &request_line(1, "x", "local.echo", "{}"),
        &request_line(2, "echo_node", "local.error", "{}"),
    ] {
        let text = answer(&host, line).to_string();
        assert!(!text.contains(&root), "{text}");
        assert!(
            !text.contains("panicked") && !text.contains("backtrace") && !text.contains(".rs:"),
            "{text}"
        );
    }
}
