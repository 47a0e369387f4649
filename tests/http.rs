//! The HTTP handler against real loopback servers: operations, payloads, the response
//! shape, every error mapping, the target guard on redirects, and secrets kept out.

use std::time::Duration;

use onex_host::envelope::{Envelope, ErrorBody, Payload};
use onex_host::handler::Handler;
use onex_host::handlers::http::HttpHandler;
use onex_host::runtime::NodeRuntime;
use serde_json::{Value, json};

use crate::support::http_server::{Reply, TestServer, redirect, response};
use crate::support::{runtime_with, within};

/// A runtime with `handler` and one node `web` (schema 1.1.0) declaring every http
/// operation and `http.head`, which the handler does not support, confined to `target`
/// if given.
pub(crate) fn runtime(handler: HttpHandler, target: Option<&str>) -> NodeRuntime {
    let target = target.map_or(String::new(), |t| format!("    target: \"{t}\"\n"));
    let node = format!(
        "schema_version: \"1.1.0\"\nnode_version: \"1.0.0\"\nname: \"web\"\nnode_type: \"EFFECT_GENERIC\"\nio_operations:\n  - type: \"http\"\n    operations: [\"http.get\", \"http.post\", \"http.put\", \"http.patch\", \"http.delete\", \"http.head\"]\n{target}"
    );
    runtime_with(Box::new(handler), &node)
}

pub(crate) fn call(runtime: &NodeRuntime, operation: &str, payload: Value) -> Envelope {
    crate::support::call(runtime, "web", operation, payload)
}

pub(crate) fn ok(response: Envelope) -> Payload {
    assert_eq!(response.success, Some(true), "{:?}", response.error);
    response.payload.expect("a payload")
}

pub(crate) fn failed(response: Envelope) -> ErrorBody {
    assert_eq!(response.success, Some(false));
    response.error.expect("an error")
}

#[test]
fn get_returns_status_headers_and_a_parsed_json_body() {
    let server = TestServer::start(|_| {
        Reply::Send(response(
            "200 OK",
            &[
                ("Content-Type", "application/json; charset=utf-8"),
                ("X-Multi", "a"),
                ("X-Multi", "b"),
            ],
            br#"{"id":7,"tags":["x"]}"#,
        ))
    });
    let runtime = runtime(HttpHandler::new(), None);
    let payload = ok(call(
        &runtime,
        "http.get",
        json!({"url": server.url("/users/7"), "headers": {"X-Trace": "t-1"}}),
    ));
    assert_eq!(payload["status_code"], 200);
    assert_eq!(payload["body"], json!({"id": 7, "tags": ["x"]}));
    assert_eq!(
        payload["headers"]["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(payload["headers"]["x-multi"], "a, b");
    let received = server.received();
    assert_eq!(
        (received[0].method.as_str(), received[0].path.as_str()),
        ("GET", "/users/7")
    );
    assert_eq!(received[0].header("x-trace"), Some("t-1"));
}

#[test]
fn non_json_bodies_are_text_and_error_statuses_are_still_results() {
    let server = TestServer::start(|_| {
        Reply::Send(response(
            "404 Not Found",
            &[("Content-Type", "text/plain")],
            b"no such user",
        ))
    });
    let runtime = runtime(HttpHandler::new(), None);
    let payload = ok(call(
        &runtime,
        "http.get",
        json!({"url": server.url("/users/8")}),
    ));
    assert_eq!(payload["status_code"], 404);
    assert_eq!(payload["body"], "no such user");
}

#[test]
fn post_sends_objects_as_json_and_strings_as_they_are() {
    let server = TestServer::start(|_| Reply::Send(response("201 Created", &[], b"")));
    let runtime = runtime(HttpHandler::new(), None);
    ok(call(
        &runtime,
        "http.post",
        json!({"url": server.url("/a"), "body": {"name": "ada"}}),
    ));
    ok(call(
        &runtime,
        "http.post",
        json!({"url": server.url("/b"), "body": "raw text"}),
    ));
    ok(call(
        &runtime,
        "http.post",
        json!({"url": server.url("/c"), "body": [1], "headers": {"Content-Type": "application/vnd.x+json"}}),
    ));
    let received = server.received();
    assert_eq!(received[0].body, br#"{"name":"ada"}"#);
    assert_eq!(received[0].header("content-type"), Some("application/json"));
    assert_eq!(received[1].body, b"raw text");
    assert_eq!(
        received[2].header("content-type"),
        Some("application/vnd.x+json")
    );
    assert_eq!(received[2].body, b"[1]");
    assert_eq!(server.connections(), 1, "one client reuses its connection");
}

#[test]
fn other_methods_are_invalid_operations_naming_the_supported_ones() {
    let runtime = runtime(HttpHandler::new(), None);
    let error = failed(call(
        &runtime,
        "http.head",
        json!({"url": "http://127.0.0.1:9/"}),
    ));
    assert_eq!(error.code.as_str(), "INVALID_OPERATION_ERROR");
    assert_eq!(
        error.message,
        "handler 'http': operation 'http.head' not supported. Available: http.get, http.post, http.put, http.patch, http.delete"
    );
    assert_eq!(
        error.details["available_operations"],
        json!([
            "http.get",
            "http.post",
            "http.put",
            "http.patch",
            "http.delete"
        ])
    );
}

#[test]
fn payloads_that_cannot_be_sent_are_refused_before_any_connection() {
    let runtime = runtime(HttpHandler::new(), None);
    for (payload, message) in [
        (json!({}), "'url' is required for http.get"),
        (json!({"url": 5}), "'url' must be a string"),
        (
            json!({"url": "/relative"}),
            "'url' is not an absolute URL: relative URL without a base",
        ),
        (
            json!({"url": "file:///etc/passwd"}),
            "'url' must be http or https, not 'file'",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "body": "x"}),
            "http.get takes no 'body'",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "headers": {"a": 1}}),
            "header 'a' must have a string value",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "headers": {"bad name": "v"}}),
            "the request cannot be built: invalid HTTP header name",
        ),
    ] {
        let error = failed(call(&runtime, "http.get", payload));
        assert_eq!(
            error.code.as_str(),
            "ENVELOPE_VALIDATION_ERROR",
            "{}",
            error.message
        );
        assert_eq!(
            error.message,
            format!("handler 'http': invalid payload: {message}")
        );
    }
}

#[test]
fn a_refused_connection_names_the_origin_and_nothing_secret() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.local_addr().expect("an address").port()
    };
    let runtime = runtime(HttpHandler::new(), None);
    let url = format!("http://admin:hunter2@127.0.0.1:{port}/private?token=SECRET");
    let response = call(&runtime, "http.get", json!({"url": url}));
    let text = serde_json::to_string(&response).expect("serialises");
    assert!(
        !text.contains("hunter2") && !text.contains("SECRET") && !text.contains("/private"),
        "{text}"
    );
    let error = failed(response);
    assert_eq!(error.code.as_str(), "HANDLER_EXECUTION_ERROR");
    assert_eq!(
        error.message,
        format!(
            "handler 'http': could not connect to http://127.0.0.1:{port}: nothing is listening, or the TLS handshake failed"
        )
    );
}

#[test]
fn tls_to_a_plain_http_server_is_an_execution_error() {
    let server = TestServer::start(|_| Reply::Send(response("200 OK", &[], b"plain")));
    let runtime = runtime(HttpHandler::new(), None);
    let error = failed(call(
        &runtime,
        "http.get",
        json!({"url": format!("https://127.0.0.1:{}/", server.port())}),
    ));
    assert_eq!(error.code.as_str(), "HANDLER_EXECUTION_ERROR");
    assert!(
        error.message.starts_with(&format!(
            "handler 'http': could not connect to https://127.0.0.1:{}",
            server.port()
        )),
        "{}",
        error.message
    );
}

#[test]
fn bodies_over_the_limit_are_errors_declared_or_not() {
    let big = vec![b'x'; 4 * 1024 * 1024 + 1];
    let declared = {
        let big = big.clone();
        TestServer::start(move |_| Reply::Send(response("200 OK", &[], &big)))
    };
    let undeclared = TestServer::start(move |_| {
        let mut bytes = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
        bytes.extend_from_slice(&big);
        Reply::SendAndClose(bytes)
    });
    let runtime = runtime(HttpHandler::new(), None);
    for server in [&declared, &undeclared] {
        let error = failed(call(
            &runtime,
            "http.get",
            json!({"url": server.url("/big")}),
        ));
        assert_eq!(error.code.as_str(), "HANDLER_EXECUTION_ERROR");
        assert_eq!(
            error.message,
            format!(
                "handler 'http': the response from http://127.0.0.1:{} is larger than the limit of 4194304 bytes",
                server.port()
            )
        );
    }
}

#[test]
fn a_server_that_stops_answering_times_out() {
    let silent = TestServer::start(|_| Reply::SendThenHang(Vec::new()));
    let stalled = TestServer::start(|_| {
        Reply::SendThenHang(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabcd".to_vec())
    });
    let runtime = runtime(HttpHandler::with_timeout(Duration::from_millis(200)), None);
    for server in [&silent, &stalled] {
        let error = failed(call(
            &runtime,
            "http.get",
            json!({"url": server.url("/slow")}),
        ));
        assert_eq!(error.code.as_str(), "HANDLER_EXECUTION_ERROR");
        assert_eq!(
            error.message,
            format!(
                "handler 'http': the request to http://127.0.0.1:{} timed out after 200 ms",
                server.port()
            )
        );
    }
}

#[test]
fn redirects_are_followed_within_the_target_only() {
    let other = TestServer::start(|_| Reply::Send(response("200 OK", &[], b"elsewhere")));
    let other_url = other.url("/api/x");
    let server = TestServer::start(move |request| match request.path.as_str() {
        "/api/start" => Reply::Send(redirect("302 Found", "next?x=1")),
        "/api/next?x=1" => Reply::Send(redirect("307 Temporary Redirect", "/api/final")),
        "/api/final" => Reply::Send(response("200 OK", &[], b"final")),
        "/api/up" => Reply::Send(redirect("302 Found", "../admin")),
        "/api/encoded" => Reply::Send(redirect("302 Found", "/api/%2e%2e/admin")),
        "/api/away" => Reply::Send(redirect("302 Found", &other_url)),
        "/api/loop" => Reply::Send(redirect("302 Found", "/api/loop")),
        _ => Reply::Send(response("200 OK", &[], b"ADMIN")),
    });
    let confined = runtime(HttpHandler::new(), Some(&server.url("/api")));
    let payload = ok(call(
        &confined,
        "http.get",
        json!({"url": server.url("/api/start")}),
    ));
    assert_eq!(payload["body"], "final");
    for path in ["/api/up", "/api/encoded", "/api/away"] {
        let error = failed(call(
            &confined,
            "http.get",
            json!({"url": server.url(path)}),
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
    assert!(
        server.received().iter().all(|r| r.path != "/admin"),
        "the admin page was never requested"
    );
    assert!(
        other.received().is_empty(),
        "the other server was never contacted"
    );
    let error = failed(call(
        &confined,
        "http.get",
        json!({"url": server.url("/api/loop")}),
    ));
    assert!(
        error.message.ends_with("redirected more than 10 times"),
        "{}",
        error.message
    );

    // A node with no target may follow redirects anywhere on http(s).
    let free = runtime(HttpHandler::new(), None);
    assert_eq!(
        ok(call(
            &free,
            "http.get",
            json!({"url": server.url("/api/away")})
        ))["body"],
        "elsewhere"
    );
}

/// How a plain file server reads a request path: percent-decoded until nothing changes,
/// `\\` taken for `/`, `;parameters` dropped, dot segments resolved.
fn as_a_naive_server_reads_it(path: &str) -> String {
    let mut decoded = path.split('?').next().unwrap_or_default().to_owned();
    loop {
        let next = percent_encoding::percent_decode_str(&decoded)
            .decode_utf8_lossy()
            .into_owned();
        if next == decoded {
            break;
        }
        decoded = next;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        match segment.split(';').next().unwrap_or_default() {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            name => segments.push(name),
        }
    }
    format!("/{}", segments.join("/"))
}

#[test]
fn encoded_separators_and_dot_segments_never_reach_outside_the_target() {
    let server =
        TestServer::start(
            |request| match as_a_naive_server_reads_it(&request.path).as_str() {
                "/secret.txt" => Reply::Send(response("200 OK", &[], b"SECRET")),
                "/allowed/hop" => Reply::Send(redirect("302 Found", "/allowed/..%2fsecret.txt")),
                "/allowed/hop-twice" => {
                    Reply::Send(redirect("302 Found", "/allowed/..%252fsecret.txt"))
                }
                _ => Reply::Send(response("200 OK", &[], b"public")),
            },
        );
    let confined = runtime(HttpHandler::new(), Some(&server.url("/allowed")));
    let reachable = ok(call(
        &confined,
        "http.get",
        json!({"url": server.url("/allowed/file.txt")}),
    ));
    assert_eq!(reachable["body"], "public");
    for path in [
        "/allowed/..%2fsecret.txt",
        "/allowed/%2e%2e%2fsecret.txt",
        "/allowed/..%2Fsecret.txt",
        "/allowed/..%5csecret.txt",
        "/allowed/..%252fsecret.txt",
        "/allowed/..;/secret.txt",
        "/allowed/%2e%2e;/secret.txt",
    ] {
        let error = failed(call(
            &confined,
            "http.get",
            json!({"url": server.url(path)}),
        ));
        assert_eq!(error.code.as_str(), "INVALID_OPERATION_ERROR", "{path}");
    }
    for path in ["/allowed/hop", "/allowed/hop-twice"] {
        let error = failed(call(
            &confined,
            "http.get",
            json!({"url": server.url(path)}),
        ));
        assert!(
            error
                .message
                .ends_with("redirected outside the node's target; the redirect was not followed"),
            "{path}: {}",
            error.message
        );
    }
    let asked: Vec<String> = server.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        asked,
        ["/allowed/file.txt", "/allowed/hop", "/allowed/hop-twice"]
    );
}

#[test]
fn a_see_other_turns_a_post_into_a_get_and_credentials_stay_home() {
    let other = TestServer::start(|_| Reply::Send(response("200 OK", &[], b"done")));
    let other_url = other.url("/result");
    let server = TestServer::start(move |request| match request.path.as_str() {
        "/submit" => Reply::Send(redirect("303 See Other", &other_url)),
        _ => Reply::Send(response("404 Not Found", &[], b"")),
    });
    let runtime = runtime(HttpHandler::new(), None);
    let payload = ok(call(
        &runtime,
        "http.post",
        json!({"url": server.url("/submit"), "body": {"a": 1}, "headers": {
            "Authorization": "Bearer s3cret", "X-Api-Key": "k3y", "Cookie": "s=1",
            "Accept": "application/json", "Accept-Language": "en", "User-Agent": "t/1"
        }}),
    ));
    assert_eq!(payload["body"], "done");
    let followed = &other.received()[0];
    assert_eq!(followed.method, "GET");
    assert!(followed.body.is_empty());
    for credential in ["authorization", "x-api-key", "cookie"] {
        assert_eq!(
            followed.header(credential),
            None,
            "{credential} never crosses origins"
        );
    }
    assert_eq!(followed.header("accept"), Some("application/json"));
    assert_eq!(followed.header("accept-language"), Some("en"));
    assert_eq!(followed.header("user-agent"), Some("t/1"));
    let first = &server.received()[0];
    assert_eq!(first.header("authorization"), Some("Bearer s3cret"));
    assert_eq!(first.header("x-api-key"), Some("k3y"));
}

#[test]
fn a_redirect_within_the_origin_keeps_the_callers_headers() {
    let server = TestServer::start(|request| match request.path.as_str() {
        "/start" => Reply::Send(redirect("307 Temporary Redirect", "/next")),
        _ => Reply::Send(response("200 OK", &[], b"next")),
    });
    let runtime = runtime(HttpHandler::new(), None);
    ok(call(
        &runtime,
        "http.get",
        json!({"url": server.url("/start"), "headers": {"X-Api-Key": "k3y"}}),
    ));
    assert_eq!(server.received()[1].header("x-api-key"), Some("k3y"));
}

#[test]
fn health_and_shutdown() {
    let handler = HttpHandler::new();
    assert!(
        !within(5, handler.health_check()).healthy,
        "not running before initialize"
    );
    within(5, handler.initialize()).expect("starts");
    assert!(within(5, handler.health_check()).healthy);
    within(5, handler.shutdown());
    assert!(!within(5, handler.health_check()).healthy);
}

#[test]
fn an_upstream_with_oversized_headers_is_named() {
    let server = TestServer::start(|_| {
        let mut reply = b"HTTP/1.1 200 OK\r\n".to_vec();
        for n in 0..400 {
            reply.extend_from_slice(format!("X-H{n}: {}\r\n", "v".repeat(1000)).as_bytes());
        }
        reply.extend_from_slice(b"Content-Length: 2\r\n\r\nok");
        Reply::SendAndClose(reply)
    });
    let runtime = runtime(HttpHandler::new(), None);
    let error = failed(call(&runtime, "http.get", json!({"url": server.url("/")})));
    assert_eq!(
        error.message,
        format!(
            "handler 'http': http://127.0.0.1:{} broke off its response: the connection was reset, or the response headers were over 300 KiB in all (too many or too large)",
            server.port()
        )
    );
    let silent = TestServer::start(|_| Reply::SendAndClose(Vec::new()));
    let error = failed(call(&runtime, "http.get", json!({"url": silent.url("/")})));
    assert_eq!(
        error.message,
        format!(
            "handler 'http': http://127.0.0.1:{} closed the connection without answering",
            silent.port()
        )
    );
}

#[test]
fn a_response_the_memory_budget_cannot_hold_is_refused_and_its_charge_given_back() {
    use onex_host::budget::Budget;
    use onex_host::envelope::{Request, Stamp};
    let body = vec![b'x'; 900 * 1024];
    let server = TestServer::start(move |_| Reply::Send(response("200 OK", &[], &body)));
    let runtime = runtime(HttpHandler::new(), None);
    let route = |budget: &std::sync::Arc<Budget>| {
        let payload = json!({"url": server.url("/big")}).as_object().cloned();
        let envelope = Envelope::request(&Stamp::deterministic(1), "web", "http.get", payload);
        let request = Request::check(Box::new(envelope)).expect("a request");
        let charge = budget.try_take(0).expect("room");
        *within(10, runtime.route(request, charge))
    };
    // Three times 900 KiB (as read, as parsed, as answered) is more than 2 MiB.
    let small = Budget::new(2 * 1024 * 1024);
    let error = failed(route(&small));
    assert_eq!(
        error.message,
        format!(
            "handler 'http': the response from http://127.0.0.1:{} was not read: the host holds as much as its memory budget allows; retry",
            server.port()
        )
    );
    assert_eq!(small.held(), 0, "the charge is given back");
    let large = Budget::new(4 * 1024 * 1024);
    assert_eq!(
        ok(route(&large))["body"].as_str().map(str::len),
        Some(900 * 1024)
    );
    assert_eq!(large.held(), 0);
}
