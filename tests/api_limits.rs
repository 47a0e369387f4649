//! The HTTP API against hostile clients: requests half-closed after their body, bodies
//! that never finish, more connections than it serves, more data than it may hold. The
//! API answers what it took in and liveness keeps answering.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api::{http, json_of};
use crate::support::daemon::Daemon;
use crate::support::fixture::{Fixture, dev_host};
use crate::support::process::DEVELOPMENT;
use crate::support::request_line;

/// The dev host serving the API with `extra` options.
pub fn listening(extra: &[&str]) -> (Fixture, Daemon) {
    let fixture = dev_host();
    let mut args = vec!["--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    args.push("runtime/dev.yaml");
    let daemon = Daemon::start(DEVELOPMENT, &args, fixture.root(), &[]);
    (fixture, daemon)
}

/// A connection that has sent a POST's headers, declaring `length` bytes of body.
pub fn post_head(daemon: &Daemon, length: usize) -> TcpStream {
    let mut stream = TcpStream::connect(daemon.addr()).expect("connects");
    let head = format!(
        "POST /v1/envelopes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    stream
        .write_all(head.as_bytes())
        .expect("sends the headers");
    stream
}

/// Reads a whole response (the server closes, or the body's length arrives) within
/// `seconds`; returns its status line and its body.
pub fn read_response(stream: &mut TcpStream, seconds: u64) -> (String, String) {
    stream
        .set_read_timeout(Some(Duration::from_secs(seconds)))
        .expect("a read timeout");
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 65536];
    loop {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok());
            if length.is_some_and(|length| body.len() >= length) {
                return (
                    head.lines().next().unwrap_or_default().to_owned(),
                    body.to_owned(),
                );
            }
        }
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buffer[..n]),
            Err(error) => panic!("no whole response within {seconds} s: {error}; got {text:?}"),
        }
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

/// The value of the gauge `name` in `/metrics` now.
pub fn gauge(daemon: &Daemon, name: &str) -> u64 {
    let (_, _, text) = http("GET", &daemon.url("/metrics"), vec![]);
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// `GET /health/live` on a fresh connection answers 200 within `seconds`.
fn live_within(daemon: &Daemon, seconds: u64) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(daemon.addr()).expect("connects");
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("sends");
    let (status, body) = read_response(&mut stream, seconds);
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(started.elapsed() < Duration::from_secs(seconds));
}

#[test]
fn a_request_half_closed_after_its_body_is_answered() {
    let (_fixture, daemon) = listening(&[]);
    let body = request_line(1, "echo_node", "local.echo", r#"{"n":1}"#);
    let mut stream = post_head(&daemon, body.len());
    stream.write_all(body.as_bytes()).expect("sends the body");
    stream.shutdown(Shutdown::Write).expect("half-closes");
    let (status, body) = read_response(&mut stream, 10);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(json_of(&body)["payload"]["n"], 1);
}

#[test]
fn bodies_that_never_finish_are_cut_at_the_timeout_and_liveness_keeps_answering() {
    let (_fixture, daemon) = listening(&["--request-timeout", "2"]);
    // More than the API serves at once, each one byte into a body of a thousand.
    let mut slow: Vec<TcpStream> = (0..560)
        .map(|_| {
            let mut stream = post_head(&daemon, 1000);
            stream.write_all(b"{").expect("one byte");
            stream
        })
        .collect();
    for _ in 0..5 {
        live_within(&daemon, 2);
    }
    // The ones taken in are answered 408 when their time is up, and closed.
    let (status, body) = read_response(&mut slow[0], 10);
    assert_eq!(status, "HTTP/1.1 408 Request Timeout", "{body}");
    assert!(
        json_of(&body)["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("did not arrive within 2 s")),
        "{body}"
    );
    live_within(&daemon, 2);
    drop(slow);
    daemon.signal("TERM");
    let (status, _, stderr) = daemon.exit();
    assert_eq!(status, Some(0), "{stderr}");
}

#[test]
fn idle_connections_past_the_limit_give_way_and_probes_are_answered() {
    let (_fixture, daemon) = listening(&[]);
    let mut idle: Vec<TcpStream> = (0..600)
        .map(|_| TcpStream::connect(daemon.addr()).expect("connects"))
        .collect();
    for _ in 0..5 {
        live_within(&daemon, 2);
    }
    let request = request_line(1, "echo_node", "local.echo", "{}");
    let (status, _, _) = http("POST", &daemon.url("/v1/envelopes"), request.into_bytes());
    assert_eq!(status, 200);
    // The oldest idle ones were closed to make room.
    let (_, rest) = read_response(&mut idle[0], 5);
    assert!(rest.is_empty());
    idle.clear();
    daemon.signal("TERM");
    assert_eq!(daemon.exit().0, Some(0));
}

#[test]
fn a_body_the_memory_budget_cannot_hold_now_gets_503_with_retry_after() {
    let (_fixture, daemon) = listening(&["--memory-budget", "8", "--max-in-flight", "1"]);
    // Two bodies of 1200 KiB, held all but sent: each charged about three times its size
    // (as read, parsed, and answered), 7 MiB of the 8.
    let payload = format!(r#"{{"s":"{}"}}"#, "x".repeat(1200 * 1024));
    let line = request_line(1, "echo_node", "local.echo", &payload);
    let (first, second) = line.as_bytes().split_at(line.len() - 10);
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = post_head(&daemon, line.len());
            stream.write_all(first).expect("most of the body");
            stream
        })
        .collect();
    // Wait until the host holds both: then a third cannot fit.
    daemon.wait_for(
        |d| gauge(d, "onex_memory_held_bytes") >= 2 * 3 * first.len() as u64,
        "both bodies charged",
    );
    let (status, headers, body) = http(
        "POST",
        &daemon.url("/v1/envelopes"),
        line.clone().into_bytes(),
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(headers["retry-after"], "1");
    assert!(
        json_of(&body)["error"]
            .as_str()
            .is_some_and(|e| e.contains("memory budget")),
        "{body}"
    );
    // The held ones finish and are answered in full.
    for stream in &mut held {
        stream.write_all(second).expect("the rest of the body");
        let (status, body) = read_response(stream, 30);
        assert_eq!(status, "HTTP/1.1 200 OK");
        let response: Value = json_of(&body);
        assert_eq!(
            response["payload"]["s"].as_str().map(str::len),
            Some(1200 * 1024)
        );
    }
    assert!(
        daemon
            .stderr()
            .contains("the memory budget (8388608 bytes) is spent")
    );
}

#[test]
fn a_response_holds_its_charge_to_the_memory_budget_until_it_has_been_written() {
    let (_fixture, daemon) = listening(&[]);
    // 6 MiB back: more than the kernel's buffers between host and client take (4 MiB
    // sent at most, the client's receive buffer kept small), so the host cannot finish
    // writing it until the client reads.
    let payload = format!(r#"{{"s":"{}"}}"#, "x".repeat(6 * 1024 * 1024));
    let line = request_line(1, "echo_node", "local.echo", &payload);
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a small buffer");
    let addr: std::net::SocketAddr = daemon.addr().parse().expect("an address");
    socket.connect(&addr.into()).expect("connects");
    let mut stream = TcpStream::from(socket);
    let head = format!(
        "POST /v1/envelopes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        line.len()
    );
    stream
        .write_all(head.as_bytes())
        .expect("sends the headers");
    stream.write_all(line.as_bytes()).expect("sends the body");
    // The first bytes of the answer: the host has handled the request and is writing.
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a read timeout");
    stream.peek(&mut [0u8; 1]).expect("the answer begins");
    let held = gauge(&daemon, "onex_memory_held_bytes");
    assert!(
        held >= 6 * 1024 * 1024,
        "only {held} bytes charged while the response is being written"
    );
    let (status, body) = read_response(&mut stream, 30);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        json_of(&body)["payload"]["s"].as_str().map(str::len),
        Some(6 * 1024 * 1024)
    );
    daemon.wait_for(
        |d| gauge(d, "onex_memory_held_bytes") == 0,
        "the charge given back once the response has been read",
    );
}

#[test]
fn many_large_bodies_at_once_stay_inside_the_memory_bound_and_are_all_answered() {
    let (_fixture, daemon) = listening(&["--max-in-flight", "1"]);
    let payload = format!(r#"{{"s":"{}"}}"#, "x".repeat(4 * 1024 * 1024));
    let url = daemon.url("/v1/envelopes");
    let posts: Vec<_> = (0..16)
        .map(|n| {
            let (url, line) = (
                url.clone(),
                request_line(n, "echo_node", "local.echo", &payload),
            );
            thread::spawn(move || http("POST", &url, line.into_bytes()))
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for post in posts {
        let (status, headers, body) = post.join().expect("an answer");
        match status {
            200 => ok += 1,
            503 => {
                assert_eq!(headers["retry-after"], "1", "{body}");
                refused += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(ok + refused, 16);
    assert!(ok >= 1);
    let peak = daemon.peak_rss_kib();
    assert!(peak < 100 * 1024, "peak RSS {peak} KiB");
}

#[test]
fn a_post_on_a_reserve_connection_is_refused_and_the_client_reads_why() {
    let (_fixture, daemon) = listening(&[]);
    // Every place taken by a request whose body is being read: `100 Continue` comes only
    // once the host reads the body, so each is known to be in a request, not idle.
    let busy: Vec<TcpStream> = (0..512)
        .map(|_| {
            let mut stream = TcpStream::connect(daemon.addr()).expect("connects");
            stream
                .write_all(
                    b"POST /v1/envelopes HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n",
                )
                .expect("sends the headers");
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("a read timeout");
            let mut continued = [0u8; 25];
            stream.read_exact(&mut continued).expect("100 Continue");
            assert!(continued.starts_with(b"HTTP/1.1 100 Continue"));
            stream
        })
        .collect();
    // A POST from the reserve with a body larger than the sockets' buffers, sent whole
    // before the answer is read, as simple clients do: the host reads it, so the client
    // finishes sending and reads why it was refused, instead of a reset connection.
    let body = vec![b' '; 4 * 1024 * 1024];
    let mut stream = post_head(&daemon, body.len());
    stream
        .write_all(&body)
        .expect("the host reads the whole body");
    let (status, answer) = read_response(&mut stream, 10);
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable", "{answer}");
    assert!(answer.contains("answers health probes only"), "{answer}");
    drop(busy);
    daemon.signal("TERM");
    assert_eq!(daemon.exit().0, Some(0));
}
