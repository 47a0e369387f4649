//! Concurrency and shutdown: the in-flight bound, SIGTERM drains everything in flight,
//! the grace deadline answers the unfinished, and structured logs.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

use crate::api::{http, json_of};
use crate::support::daemon::Daemon;
use crate::support::fixture::{Fixture, dev_host, runtime};
use crate::support::http_server::{Gate, Reply, TestServer, response};
use crate::support::process::{DEVELOPMENT, PRODUCTION};
use crate::support::request_line;

/// A production host whose node `slow` may GET anything on `server`, which holds every
/// request at `gate`.
fn gated(extra: &[&str]) -> (Fixture, TestServer, Arc<Gate>, Daemon) {
    let gate = Gate::new();
    let held = Arc::clone(&gate);
    let server = TestServer::start(move |_| {
        held.pass();
        Reply::Send(response("200 OK", &[], b"done"))
    });
    let node = format!(
        "schema_version: \"1.0.0\"\nnode_version: \"1.0.0\"\nname: \"slow\"\nnode_type: \"EFFECT_GENERIC\"\nio_operations:\n  - type: \"http\"\n    operations: [\"http.get\"]\n    target: \"{}\"\n",
        server.url("/")
    );
    let fixture = Fixture::new()
        .with("runtime/r.yaml", &runtime("gated", &["http"], &["slow"]))
        .with("nodes/slow.yaml", &node);
    let mut args = if extra.contains(&"--stdin") {
        vec![]
    } else {
        vec!["--listen", "127.0.0.1:0"]
    };
    args.extend_from_slice(extra);
    args.push("runtime/r.yaml");
    let daemon = Daemon::start(PRODUCTION, &args, fixture.root(), &[]);
    (fixture, server, gate, daemon)
}

/// Posts `count` requests to `slow` from threads of their own; joining gives each
/// response's status and body.
fn post_many(
    daemon: &Daemon,
    server: &TestServer,
    count: u32,
) -> Vec<thread::JoinHandle<(u16, Value)>> {
    (0..count)
        .map(|n| {
            let (url, line) = (
                daemon.url("/v1/envelopes"),
                request_line(
                    n,
                    "slow",
                    "http.get",
                    &format!(r#"{{"url":"{}"}}"#, server.url(&format!("/r{n}"))),
                ),
            );
            thread::spawn(move || {
                let (status, _, body) = http("POST", &url, line.into_bytes());
                (status, json_of(&body))
            })
        })
        .collect()
}

#[test]
fn sigterm_with_fifty_in_flight_finishes_them_all_and_shuts_down_once() {
    let (_fixture, server, gate, daemon) = gated(&["--max-in-flight", "50"]);
    let posts = post_many(&daemon, &server, 50);
    daemon.wait_for(|_| gate.waiting() == 50, "50 requests at the server");

    daemon.signal("TERM");
    daemon.wait_for(|d| d.stderr().contains("Draining"), "the drain to start");
    let (status, _, body) = http("GET", &daemon.url("/health/ready"), vec![]);
    assert_eq!(
        (status, json_of(&body)["state"].clone()),
        (503, json!("draining"))
    );
    let late = request_line(
        99,
        "slow",
        "http.get",
        &format!(r#"{{"url":"{}"}}"#, server.url("/late")),
    );
    let (status, _, body) = http("POST", &daemon.url("/v1/envelopes"), late.into_bytes());
    assert_eq!(status, 503, "no new input while draining");
    assert_eq!(
        json_of(&body)["error"]["message"],
        "the host shut down before this request started; it did not run"
    );

    gate.open();
    for post in posts {
        let (status, response) = post.join().expect("a client thread");
        assert_eq!(status, 200);
        assert_eq!(response["payload"]["body"], "done", "{response}");
    }
    let (status, took, stderr) = daemon.exit();
    assert_eq!(status, Some(0), "{stderr}");
    assert!(took < Duration::from_secs(30), "exit within the grace");
    assert_eq!(
        stderr.matches("Shutting down handler: HttpHandler").count(),
        1,
        "{stderr}"
    );
    assert_eq!(gate.most_waiting(), 50);
    assert!(server.received().iter().all(|r| r.path != "/late"));
}

#[test]
fn no_more_than_max_in_flight_requests_reach_the_handler() {
    let (_fixture, server, gate, daemon) = gated(&["--max-in-flight", "4"]);
    let posts = post_many(&daemon, &server, 20);
    daemon.wait_for(|_| gate.waiting() == 4, "4 requests at the server");
    let (_, _, metrics) = http("GET", &daemon.url("/metrics"), vec![]);
    assert!(
        metrics.contains("onex_envelopes_in_flight 4\n"),
        "{metrics}"
    );
    gate.open();
    for post in posts {
        assert_eq!(post.join().expect("a client thread").1["success"], true);
    }
    assert_eq!(gate.most_waiting(), 4, "the bound was exceeded");
    daemon.signal("TERM");
    assert_eq!(daemon.exit().0, Some(0));
}

#[test]
fn at_the_grace_deadline_the_unfinished_get_failures_and_the_exit_status_says_so() {
    let (_fixture, server, gate, daemon) =
        gated(&["--max-in-flight", "5", "--shutdown-grace", "1"]);
    let posts = post_many(&daemon, &server, 5);
    daemon.wait_for(|_| gate.waiting() == 5, "5 requests at the server");
    daemon.signal("TERM");
    for post in posts {
        let (status, response) = post.join().expect("a client thread");
        assert_eq!(status, 503);
        assert_eq!(response["error"]["code"], "HANDLER_EXECUTION_ERROR");
        assert_eq!(
            response["error"]["message"],
            "the host shut down before this request finished; it may or may not have taken effect"
        );
    }
    let (status, _, stderr) = daemon.exit();
    gate.open();
    assert_eq!(status, Some(1), "{stderr}");
    assert!(
        stderr.contains("5 request(s) were cut short by the shutdown deadline"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("Shutting down handler: HttpHandler").count(),
        1
    );
}

#[test]
fn at_the_deadline_queued_api_requests_do_not_start_and_every_one_is_answered() {
    let (_fixture, server, gate, daemon) =
        gated(&["--max-in-flight", "4", "--shutdown-grace", "1"]);
    let posts = post_many(&daemon, &server, 12);
    daemon.wait_for(|_| gate.waiting() == 4, "4 requests at the server");
    // The other 8 wait for a slot; the deadline frees the 4 slots as it cuts them short.
    daemon.signal("TERM");
    let (mut started, mut not_started) = (0, 0);
    for post in posts {
        let (status, response) = post.join().expect("every request is answered");
        assert_eq!(status, 503, "{response}");
        match response["error"]["message"].as_str() {
            Some(
                "the host shut down before this request finished; it may or may not have taken effect",
            ) => started += 1,
            Some("the host shut down before this request started; it did not run") => {
                not_started += 1
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    let (status, _, stderr) = daemon.exit();
    gate.open();
    assert_eq!((started, not_started), (4, 8), "{stderr}");
    assert_eq!(
        server.received().len(),
        4,
        "nothing started after the deadline"
    );
    assert_eq!(status, Some(1), "{stderr}");
    assert!(
        stderr.contains("12 request(s) were cut short by the shutdown deadline"),
        "{stderr}"
    );
}

#[test]
fn requests_in_flight_at_sigterm_are_answered_before_the_host_exits() {
    // Slow requests keep arriving while the host drains: every request the host took in
    // gets its response; none sees its connection closed.
    let (_fixture, server, gate, daemon) =
        gated(&["--max-in-flight", "8", "--shutdown-grace", "30"]);
    let posts = post_many(&daemon, &server, 20);
    daemon.wait_for(|_| gate.waiting() == 8, "8 requests at the server");
    let metrics = daemon.url("/metrics");
    daemon.wait_for(
        |_| {
            let (_, _, text) = http("GET", &metrics, vec![]);
            text.contains(
                r#"onex_envelopes_received_total{handler_type="http",binding="http",operation="http.get"} 20"#,
            )
        },
        "all 20 requests taken in",
    );
    daemon.signal("TERM");
    daemon.wait_for(|d| d.stderr().contains("Draining"), "the drain to start");
    gate.open();
    let mut answered = 0;
    for post in posts {
        let (status, response) = post.join().expect("every request is answered");
        assert_eq!(status, 200, "{response}");
        assert_eq!(response["payload"]["body"], "done");
        answered += 1;
    }
    let (status, _, stderr) = daemon.exit();
    assert_eq!((answered, status), (20, Some(0)), "{stderr}");
    assert_eq!(server.received().len(), 20);
}

#[test]
fn a_request_still_sending_its_body_at_sigterm_is_answered_before_the_host_exits() {
    use std::io::Write;
    let (_fixture, mut daemon) = crate::api_limits::listening(&[]);
    let line = request_line(1, "echo_node", "local.echo", r#"{"n":1}"#);
    let (first, rest) = line.as_bytes().split_at(line.len() / 2);
    let mut stream = crate::api_limits::post_head(&daemon, line.len());
    stream.write_all(first).expect("half the body");
    daemon.wait_for(
        |d| crate::api_limits::gauge(d, "onex_memory_held_bytes") > 0,
        "the host reading the body",
    );
    daemon.signal("TERM");
    daemon.wait_for(|d| d.stderr().contains("Draining"), "the drain to start");
    // The host waits for the request it took in (it used to exit two seconds later).
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        assert!(!daemon.has_exited(), "the host exited before answering");
        thread::sleep(Duration::from_millis(10));
    }
    stream.write_all(rest).expect("the rest of the body");
    let (status, body) = crate::api_limits::read_response(&mut stream, 10);
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable", "{body}");
    assert_eq!(
        json_of(&body)["error"]["message"],
        "the host shut down before this request started; it did not run"
    );
    let (status, _, stderr) = daemon.exit();
    assert_eq!(status, Some(0), "{stderr}");
}

#[test]
fn in_stdin_mode_the_deadline_answers_the_request_in_flight_and_those_still_queued() {
    let (_fixture, server, gate, mut daemon) = gated(&["--stdin", "--shutdown-grace", "1"]);
    for n in 0..3 {
        let url = server.url(&format!("/r{n}"));
        daemon.send(
            format!(
                "{}\n",
                request_line(n, "slow", "http.get", &format!(r#"{{"url":"{url}"}}"#))
            )
            .as_bytes(),
        );
    }
    daemon.wait_for(|_| gate.waiting() == 1, "the first request at the server");
    daemon.signal("TERM");
    daemon.wait_for(|d| d.stdout().lines().count() == 3, "3 responses");
    let stdout = daemon.stdout();
    let (status, _, stderr) = daemon.exit();
    gate.open();
    assert_eq!(status, Some(1), "{stderr}");
    let messages: Vec<Value> = stdout
        .lines()
        .map(|line| json_of(line)["error"]["message"].clone())
        .collect();
    assert_eq!(
        messages,
        [
            json!(
                "the host shut down before this request finished; it may or may not have taken effect"
            ),
            json!("the host shut down before this request started; it did not run"),
            json!("the host shut down before this request started; it did not run"),
        ]
    );
}

#[test]
fn sigterm_in_stdin_mode_answers_every_line_read() {
    let fixture = dev_host();
    let mut daemon = Daemon::start(
        DEVELOPMENT,
        &["--stdin", "runtime/dev.yaml"],
        fixture.root(),
        &[],
    );
    for n in 0..3 {
        daemon.send(format!("{}\n", request_line(n, "echo_node", "local.echo", "{}")).as_bytes());
    }
    daemon.wait_for(|d| d.stdout().lines().count() == 3, "3 responses");
    daemon.signal("TERM");
    let stdout = {
        daemon.wait_for(|d| d.stderr().contains("stopped"), "the host to stop");
        daemon.stdout()
    };
    let (status, _, stderr) = daemon.exit();
    assert_eq!(status, Some(0), "{stderr}");
    assert_eq!(stdout.lines().count(), 3);
}

#[test]
fn with_several_in_flight_every_line_is_answered_and_matched_by_causation_id() {
    let fixture = dev_host();
    let mut daemon = Daemon::start(
        DEVELOPMENT,
        &["--stdin", "--max-in-flight", "8", "runtime/dev.yaml"],
        fixture.root(),
        &[],
    );
    let mut sent = BTreeSet::new();
    let mut input = String::new();
    for n in 0..500u32 {
        input.push_str(&request_line(
            n,
            "echo_node",
            "local.echo",
            &format!(r#"{{"n":{n}}}"#),
        ));
        input.push('\n');
        sent.insert(format!("00000000-0000-4000-8000-{n:012}"));
    }
    daemon.send(input.as_bytes());
    let stdout = {
        daemon.wait_for(|d| d.stdout().lines().count() == 500, "500 responses");
        daemon.stdout()
    };
    let (status, _, stderr) = daemon.exit();
    assert_eq!(status, Some(0), "{stderr}");
    let answered: BTreeSet<String> = stdout
        .lines()
        .map(|line| {
            json_of(line)["causation_id"]
                .as_str()
                .expect("a causation id")
                .to_owned()
        })
        .collect();
    assert_eq!(answered, sent);
}

#[test]
fn json_logs_are_one_object_a_line_with_the_ids_of_each_envelope() {
    let fixture = dev_host();
    let mut daemon = Daemon::start(
        DEVELOPMENT,
        &[
            "--stdin",
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "runtime/dev.yaml",
        ],
        fixture.root(),
        &[],
    );
    daemon.send(
        format!(
            "{}\n{}\nnot json\n",
            request_line(1, "echo_node", "local.echo", "{}"),
            request_line(2, "ghost", "local.echo", "{}")
        )
        .as_bytes(),
    );
    let (status, _, stderr) = daemon.exit();
    assert_eq!(status, Some(0), "{stderr}");
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|line| !line.starts_with("WARNING: omninode-runtime-host-dev"))
        .map(json_of)
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l["time"].is_string() && l["level"].is_string() && l["message"].is_string())
    );
    assert!(
        lines.iter().skip(2).all(|l| l["runtime"] == "dev_host"),
        "every line after the contract is loaded names the runtime"
    );
    let answered: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("answered"))
        })
        .collect();
    assert_eq!(answered.len(), 3);
    assert_eq!(
        answered[0]["correlation_id"],
        "00000000-0000-4000-9000-000000000001"
    );
    assert_eq!(
        answered[0]["envelope_id"],
        "00000000-0000-4000-8000-000000000001"
    );
    assert_eq!(
        (
            answered[0]["node"].clone(),
            answered[0]["handler_type"].clone()
        ),
        (json!("echo_node"), json!("local"))
    );
    assert_eq!(
        answered[1]["correlation_id"],
        "00000000-0000-4000-9000-000000000002"
    );
    assert_eq!(answered[1]["code"], "NODE_NOT_FOUND");
    assert!(
        answered[2]["correlation_id"].is_string(),
        "an unreadable line still gets a correlation id"
    );
}
