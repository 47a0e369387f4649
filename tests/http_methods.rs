//! The Beta HTTP operations (`http.put`, `http.patch`, `http.delete`) against real loopback
//! servers: what is sent, the target guard, how each redirect is followed, the body limit
//! and the memory budget, and the schema version a node contract needs for them.

use onex_host::handlers::http::HttpHandler;
use serde_json::json;

use crate::http::{call, failed, ok, runtime};
use crate::support::fixture::Fixture;
use crate::support::http_server::{Reply, TestServer, redirect, response};

const WRITES: [(&str, &str); 3] = [
    ("http.put", "PUT"),
    ("http.patch", "PATCH"),
    ("http.delete", "DELETE"),
];

#[test]
fn writes_send_their_method_body_headers_and_idempotency_key() {
    let server = TestServer::start(|request| {
        let status = if request.method == "DELETE" {
            "204 No Content"
        } else {
            "200 OK"
        };
        Reply::Send(response(
            status,
            &[("Content-Type", "application/json")],
            if status.starts_with("204") {
                b""
            } else {
                br#"{"saved":true}"#
            },
        ))
    });
    let runtime = runtime(HttpHandler::new(), None);
    let put = ok(call(
        &runtime,
        "http.put",
        json!({"url": server.url("/users/7"), "body": {"name": "ada"}, "idempotency_key": "k-1"}),
    ));
    assert_eq!(
        (put["status_code"].clone(), put["body"].clone()),
        (json!(200), json!({"saved": true}))
    );
    ok(call(
        &runtime,
        "http.patch",
        json!({"url": server.url("/users/7"), "body": "name=bea", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
    ));
    let deleted = ok(call(
        &runtime,
        "http.delete",
        json!({"url": server.url("/users/7")}),
    ));
    assert_eq!(deleted["status_code"], 204);
    assert_eq!(deleted["body"], "");
    ok(call(
        &runtime,
        "http.delete",
        json!({"url": server.url("/users"), "body": [7, 8]}),
    ));
    let received = server.received();
    let asked: Vec<(&str, &str, &[u8])> = received
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.body.as_slice()))
        .collect();
    assert_eq!(
        asked,
        [
            ("PUT", "/users/7", &br#"{"name":"ada"}"#[..]),
            ("PATCH", "/users/7", b"name=bea"),
            ("DELETE", "/users/7", b""),
            ("DELETE", "/users", b"[7,8]"),
        ]
    );
    assert_eq!(received[0].header("content-type"), Some("application/json"));
    assert_eq!(received[0].header("idempotency-key"), Some("k-1"));
    assert_eq!(
        received[1].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(received[1].header("idempotency-key"), None);
    assert_eq!(received[3].header("content-type"), Some("application/json"));
}

#[test]
fn an_idempotency_key_must_be_one_non_empty_string() {
    let runtime = runtime(HttpHandler::new(), None);
    for (payload, message) in [
        (
            json!({"url": "http://127.0.0.1:9/", "idempotency_key": 7}),
            "'idempotency_key' must be a non-empty string",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "idempotency_key": ""}),
            "'idempotency_key' must be a non-empty string",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "idempotency_key": "a", "headers": {"Idempotency-Key": "b"}}),
            "'idempotency_key' and an Idempotency-Key header were both given; give one",
        ),
    ] {
        let error = failed(call(&runtime, "http.put", payload));
        assert_eq!(error.code.as_str(), "ENVELOPE_VALIDATION_ERROR");
        assert_eq!(
            error.message,
            format!("handler 'http': invalid payload: {message}")
        );
    }
}

#[test]
fn writes_outside_the_target_or_with_encoded_separators_are_never_sent() {
    let server = TestServer::start(|_| Reply::Send(response("200 OK", &[], b"done")));
    let confined = runtime(HttpHandler::new(), Some(&server.url("/api")));
    for (operation, method) in WRITES {
        ok(call(
            &confined,
            operation,
            json!({"url": server.url("/api/items/1"), "body": {"a": 1}}),
        ));
        for path in [
            "/admin",
            "/api/..%2fadmin",
            "/api/%2e%2e/admin",
            "/api/..;/admin",
        ] {
            let error = failed(call(
                &confined,
                operation,
                json!({"url": server.url(path), "body": {"a": 1}}),
            ));
            assert_eq!(
                error.code.as_str(),
                "INVALID_OPERATION_ERROR",
                "{method} {path}"
            );
        }
    }
    let asked: Vec<(String, String)> = server
        .received()
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert_eq!(
        asked,
        WRITES.map(|(_, method)| (method.to_owned(), "/api/items/1".to_owned()))
    );
}

#[test]
fn temporary_and_permanent_redirects_repeat_a_write_and_see_other_reads_the_result() {
    let server = TestServer::start(|request| match request.path.as_str() {
        "/307" => Reply::Send(redirect("307 Temporary Redirect", "/moved")),
        "/308" => Reply::Send(redirect("308 Permanent Redirect", "/moved")),
        "/301" => Reply::Send(redirect("301 Moved Permanently", "/moved")),
        "/302" => Reply::Send(redirect("302 Found", "/moved")),
        "/303" => Reply::Send(redirect("303 See Other", "/result")),
        _ => Reply::Send(response("200 OK", &[], b"here")),
    });
    let runtime = runtime(HttpHandler::new(), None);
    for (operation, method) in WRITES {
        for status in ["307", "308", "301", "302"] {
            let payload = ok(call(
                &runtime,
                operation,
                json!({"url": server.url(&format!("/{status}")), "body": {"n": 1}}),
            ));
            assert_eq!(payload["body"], "here");
            let received = server.received();
            let followed = received.last().expect("the redirected request");
            assert_eq!(
                (followed.method.as_str(), followed.path.as_str()),
                (method, "/moved"),
                "{method} after {status}"
            );
            assert_eq!(followed.body, br#"{"n":1}"#, "{method} after {status}");
            assert_eq!(followed.header("content-type"), Some("application/json"));
        }
        ok(call(
            &runtime,
            operation,
            json!({"url": server.url("/303"), "body": {"n": 1}}),
        ));
        let received = server.received();
        let followed = received.last().expect("the redirected request");
        assert_eq!(
            (followed.method.as_str(), followed.path.as_str()),
            ("GET", "/result"),
            "{method} after 303"
        );
        assert!(followed.body.is_empty());
        assert_eq!(followed.header("content-type"), None);
    }
    // POST keeps its old behaviour: 301 and 302 read the new location, 307 repeats.
    ok(call(
        &runtime,
        "http.post",
        json!({"url": server.url("/302"), "body": {"n": 1}}),
    ));
    assert_eq!(
        server.received().last().map(|r| r.method.clone()),
        Some("GET".to_owned())
    );
    ok(call(
        &runtime,
        "http.post",
        json!({"url": server.url("/307"), "body": {"n": 1}}),
    ));
    assert_eq!(
        server.received().last().map(|r| r.method.clone()),
        Some("POST".to_owned())
    );
}

#[test]
fn a_write_redirected_to_another_origin_keeps_its_body_and_drops_credentials() {
    let other = TestServer::start(|_| Reply::Send(response("200 OK", &[], b"stored")));
    let other_url = other.url("/store");
    let server =
        TestServer::start(move |_| Reply::Send(redirect("307 Temporary Redirect", &other_url)));
    let runtime = runtime(HttpHandler::new(), None);
    ok(call(
        &runtime,
        "http.put",
        json!({"url": server.url("/store"), "body": {"n": 1}, "idempotency_key": "k-9", "headers": {
            "Authorization": "Bearer s3cret", "Accept": "application/json"
        }}),
    ));
    let followed = &other.received()[0];
    assert_eq!(followed.method, "PUT");
    assert_eq!(followed.body, br#"{"n":1}"#);
    assert_eq!(followed.header("authorization"), None);
    assert_eq!(followed.header("idempotency-key"), None);
    assert_eq!(followed.header("accept"), Some("application/json"));
    assert_eq!(
        server.received()[0].header("authorization"),
        Some("Bearer s3cret")
    );
}

#[test]
fn a_write_redirected_outside_the_target_is_not_followed() {
    let other = TestServer::start(|_| Reply::Send(response("200 OK", &[], b"elsewhere")));
    let other_url = other.url("/api/x");
    let server = TestServer::start(move |request| match request.path.as_str() {
        "/api/up" => Reply::Send(redirect("308 Permanent Redirect", "../admin")),
        "/api/away" => Reply::Send(redirect("307 Temporary Redirect", &other_url)),
        "/api/encoded" => Reply::Send(redirect("307 Temporary Redirect", "/api/..%2fadmin")),
        _ => Reply::Send(response("200 OK", &[], b"ADMIN")),
    });
    let confined = runtime(HttpHandler::new(), Some(&server.url("/api")));
    for (operation, _) in WRITES {
        for path in ["/api/up", "/api/away", "/api/encoded"] {
            let error = failed(call(
                &confined,
                operation,
                json!({"url": server.url(path), "body": "x"}),
            ));
            assert_eq!(error.code.as_str(), "HANDLER_EXECUTION_ERROR");
            assert_eq!(
                error.message,
                format!(
                    "handler 'http': http://127.0.0.1:{} redirected outside the node's target; the redirect was not followed",
                    server.port()
                )
            );
        }
    }
    assert!(server.received().iter().all(|r| !r.path.contains("admin")));
    assert!(other.received().is_empty());
}

#[test]
fn a_write_whose_response_is_over_the_limit_or_the_budget_fails() {
    use onex_host::budget::Budget;
    use onex_host::envelope::{Envelope, Request, Stamp};
    let big = vec![b'x'; 4 * 1024 * 1024 + 1];
    let server = TestServer::start(move |request| match request.path.as_str() {
        "/big" => Reply::Send(response("200 OK", &[], &big)),
        _ => Reply::Send(response("200 OK", &[], &big[..900 * 1024])),
    });
    let runtime = runtime(HttpHandler::new(), None);
    for (operation, _) in WRITES {
        let error = failed(call(
            &runtime,
            operation,
            json!({"url": server.url("/big")}),
        ));
        assert_eq!(
            error.message,
            format!(
                "handler 'http': the response from http://127.0.0.1:{} is larger than the limit of 4194304 bytes",
                server.port()
            )
        );
    }
    let budget = Budget::new(2 * 1024 * 1024);
    let payload = json!({"url": server.url("/900k"), "body": {"a": 1}})
        .as_object()
        .cloned();
    let envelope = Envelope::request(&Stamp::deterministic(1), "web", "http.put", payload);
    let request = Request::check(Box::new(envelope)).expect("a request");
    let charge = budget.try_take(0).expect("room");
    let error = failed(*crate::support::within(10, runtime.route(request, charge)));
    assert!(
        error
            .message
            .ends_with("the host holds as much as its memory budget allows; retry"),
        "{}",
        error.message
    );
    assert_eq!(budget.held(), 0, "the charge is given back");
}

#[test]
fn a_node_contract_at_schema_1_0_0_cannot_declare_the_writes() {
    let node = |version: &str| {
        format!(
            "schema_version: \"{version}\"\nnode_version: \"1.0.0\"\nname: \"web\"\nnode_type: \"EFFECT_GENERIC\"\nio_operations:\n  - type: \"http\"\n    operations: [\"http.get\", \"http.delete\"]\n"
        )
    };
    let runtime_contract = "schema_version: \"1.0.0\"\nruntime:\n  name: \"r\"\n  version: \"1.0.0\"\n  event_bus:\n    kind: \"inmemory\"\n  handlers:\n    - type: \"http\"\n  nodes:\n    - slug: \"web\"\n";
    let old = Fixture::new()
        .with("runtime.yaml", runtime_contract)
        .with("nodes/web.yaml", &node("1.0.0"));
    let error = onex_host::contract::RuntimeHostContract::load(&old.path("runtime.yaml"))
        .expect_err("refused");
    let problem = error
        .problems()
        .iter()
        .find(|p| p.message.contains("http.delete"))
        .unwrap_or_else(|| panic!("{error}"));
    assert_eq!(
        problem.message,
        "operation 'http.delete' is a schema 1.1.0 (Beta) operation, and this contract is 1.0.0"
    );
    assert_eq!(problem.line, Some(7));
    assert_eq!(problem.action, "set schema_version: \"1.1.0\"");
    // The runtime contract may stay at 1.0.0: each contract's version covers its own fields.
    let new = Fixture::new()
        .with("runtime.yaml", runtime_contract)
        .with("nodes/web.yaml", &node("1.1.0"));
    onex_host::contract::RuntimeHostContract::load(&new.path("runtime.yaml"))
        .unwrap_or_else(|error| panic!("{error}"));
}
