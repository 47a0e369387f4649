//! The DB handler against a real throwaway PostgreSQL that fails: frozen (SIGSTOP), cut off
//! or reset by a loopback proxy, its backends terminated, a server that never answers the
//! handshake, a database refusing connections, a read-only server, a host that is down;
//! and the production host's probes and requests while the server is frozen. During a
//! fault every statement and health check gets an error within its deadline; after it,
//! every statement succeeds. (Stopping and restarting the server is in `db`.)

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use onex_host::envelope::Envelope;
use onex_host::handlers::db::HandlerDb;
use onex_host::health::HealthReport;
use onex_host::runtime::NodeRuntime;
use serde_json::json;

use crate::db::{call, failed, ok, route, runtime};
use crate::support::postgres::PgCluster;
use crate::support::proxy::Proxy;
use crate::support::{closed_port, within};

/// Short limits, so that each fault costs a test about a second: a statement's host-side
/// deadline is 500 ms + 1 s.
const SHORT: &str = "connect_timeout=1 options='-c statement_timeout=500'";
/// What a statement past its deadline says.
const PAST_DEADLINE: &str =
    "handler 'db': the database did not answer within 1500 ms; the statement was cancelled";

/// Runs `work` on smol's executor and measures how long it took.
fn timed<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> smol::Task<(T, Duration)> {
    smol::spawn(async move {
        let started = Instant::now();
        let done = work.await;
        (done, started.elapsed())
    })
}

/// The db handler's health check, measured.
fn check_health(runtime: &Arc<NodeRuntime>) -> smol::Task<(HealthReport, Duration)> {
    let check = runtime
        .handlers()
        .next()
        .expect("the db handler")
        .health_check();
    timed(check)
}

/// `sql` as a request of its own, measured.
fn timed_route(runtime: &Arc<NodeRuntime>, sql: &str) -> smol::Task<(Envelope, Duration)> {
    timed(route(runtime, sql, json!([])))
}

/// `count` one-row statements and a health check at once, each measured (within 20 s).
#[allow(clippy::type_complexity)]
fn statements_and_health(
    runtime: &Arc<NodeRuntime>,
    count: usize,
) -> (Vec<(Envelope, Duration)>, (HealthReport, Duration)) {
    within(20, async {
        let statements: Vec<_> = (0..count)
            .map(|_| timed_route(runtime, "SELECT 1::int4 AS one"))
            .collect();
        let health = check_health(runtime);
        let mut answers = Vec::new();
        for statement in statements {
            answers.push(statement.await);
        }
        (answers, health.await)
    })
}

/// Polls `check` every 10 ms until it holds, failing after `seconds`.
pub(crate) fn wait_until(what: &str, seconds: u64, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < Duration::from_secs(seconds),
            "{what}: not within {seconds} s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How many other backends are running a statement containing `text`.
pub(crate) fn running(admin: &mut postgres::Client, text: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() AND strpos(query, $1) > 0",
            &[&text],
        )
        .expect("asks")
        .get(0)
}

fn cluster_address(cluster: &PgCluster) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], cluster.port))
}

/// Asserts `count` statements succeed, one after another, each with its own answer.
fn all_succeed(runtime: &NodeRuntime, count: i32) {
    for n in 0..count {
        let rows = ok(call(
            runtime,
            "db.query",
            "SELECT $1::int4 AS n",
            json!([n]),
        ))["rows"]
            .clone();
        assert_eq!(rows, json!([{"n": n}]));
    }
}

#[test]
fn the_statement_timeout_comes_from_the_connection_string() {
    let cluster = PgCluster::start();
    let url = cluster.url_via(cluster.port, "options='-c statement_timeout=200'");
    let runtime = runtime(&url);
    let shown = ok(call(
        &runtime,
        "db.query",
        "SELECT current_setting('statement_timeout') AS t",
        json!([]),
    ));
    assert_eq!(shown["rows"][0]["t"], "200ms");
    let limits = runtime
        .handlers()
        .next()
        .expect("the db handler")
        .describe()
        .limits;
    assert_eq!(limits["statement_timeout_ms"], 200);
    let started = Instant::now();
    let error = failed(call(
        &runtime,
        "db.query",
        "SELECT pg_sleep(5)::text AS slept",
        json!([]),
    ));
    assert!(
        error.message.starts_with(
            "handler 'db': the statement was cancelled (statement_timeout) (SQLSTATE 57014)"
        ),
        "{}",
        error.message
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let default = crate::db::runtime(&cluster.url());
    let shown = ok(call(
        &default,
        "db.query",
        "SELECT current_setting('statement_timeout') AS t",
        json!([]),
    ));
    assert_eq!(shown["rows"][0]["t"], "30s");
}

#[test]
fn a_frozen_server_fails_statements_at_their_deadline_and_health_at_its_own() {
    let cluster = PgCluster::start();
    let runtime = Arc::new(runtime(&cluster.url_via(cluster.port, SHORT)));
    all_succeed(&runtime, 1);
    let frozen = cluster.freeze();
    let (statements, health) = statements_and_health(&runtime, 8);
    for (response, took) in statements {
        let error = failed(response);
        // One waiting for a new connection fails with it, at connect_timeout.
        let connect = format!(
            "handler 'db': could not connect to the database at 127.0.0.1:{}/postgres: no answer within 1 s",
            cluster.port
        );
        assert!(
            error.message == PAST_DEADLINE || error.message == connect,
            "{}",
            error.message
        );
        assert!(took < Duration::from_millis(2500), "{took:?}");
    }
    let (report, took) = health;
    assert!(!report.healthy, "{report:?}");
    assert!(took < Duration::from_millis(2500), "{took:?}");

    drop(frozen);
    all_succeed(&runtime, 5);
    let (report, _) = within(10, check_health(&runtime));
    assert!(report.healthy, "{report:?}");
}

#[test]
fn a_cancelled_statement_is_cancelled_on_the_server_and_its_connection_retired() {
    let cluster = PgCluster::start();
    cancelled_midway(&cluster, &cluster.url());
}

#[test]
fn a_cancelled_statement_over_a_unix_socket_is_cancelled_on_the_server_too() {
    let cluster = PgCluster::start();
    cancelled_midway(&cluster, &cluster.socket_url());
}

/// Drops a request while the server runs its statement, then checks that the next
/// statement is answered at once on another connection and the server stops the first.
fn cancelled_midway(cluster: &PgCluster, url: &str) {
    let runtime = Arc::new(runtime(url));
    let mut admin = cluster.admin();
    let pid = |runtime: &NodeRuntime| {
        ok(call(
            runtime,
            "db.query",
            "SELECT pg_backend_pid() AS pid",
            json!([]),
        ))["rows"][0]["pid"]
            .as_i64()
            .expect("a pid")
    };
    let first = pid(&runtime);
    let sleeping = route(&runtime, "SELECT pg_sleep(3)::text AS slept", json!([]));
    wait_until("the statement runs", 10, || {
        running(&mut admin, "pg_sleep(3)") == 1
    });
    // As the shutdown deadline does: the request is dropped mid-statement.
    assert!(
        within(10, sleeping.cancel()).is_none(),
        "the statement finished"
    );

    let started = Instant::now();
    let next = pid(&runtime);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_ne!(
        next, first,
        "the connection the server was still busy on was used"
    );
    // The server stops the abandoned statement, though nothing else happens on the host.
    wait_until("the server cancels the statement", 2, || {
        running(&mut admin, "pg_sleep(3)") == 0
    });
}

#[test]
fn a_health_check_does_not_queue_behind_statements() {
    let cluster = PgCluster::start();
    let runtime = Arc::new(runtime(&cluster.url()));
    let mut admin = cluster.admin();
    // Five connections, each busy with a slow statement, then a sixth queued on one.
    let mut slow = Vec::new();
    for n in 1..=6 {
        slow.push(route(
            &runtime,
            "SELECT pg_sleep(1.5)::text AS slept",
            json!([]),
        ));
        let expected = n.min(5);
        wait_until("the statements run", 10, || {
            running(&mut admin, "pg_sleep(1.5)") == expected
        });
        // Past PROMPT: a connection busy this long takes no more while the pool has room.
        std::thread::sleep(Duration::from_millis(5));
    }
    let (report, took) = within(10, check_health(&runtime));
    assert!(report.healthy, "{report:?}");
    assert!(
        took < Duration::from_millis(700),
        "the check queued: {took:?}"
    );
    for statement in slow {
        ok(within(20, statement));
    }
}

#[test]
fn connects_run_concurrently_and_their_waiters_fail_with_them() {
    // Accepts connections and never answers the handshake.
    let silent = Proxy::start(SocketAddr::from(([127, 0, 0, 1], closed_port())));
    silent.blackhole(true);
    let cluster = PgCluster::start();
    let runtime = Arc::new(runtime(
        &cluster.url_via(silent.port(), "connect_timeout=1"),
    ));
    let (statements, health) = within(30, async {
        let statements: Vec<_> = (0..12)
            .map(|_| timed_route(&runtime, "SELECT 1::int4 AS one"))
            .collect();
        let health = check_health(&runtime);
        let mut answers = Vec::new();
        for statement in statements {
            answers.push(statement.await);
        }
        (answers, health.await)
    });
    let expected = format!(
        "handler 'db': could not connect to the database at 127.0.0.1:{}/postgres: no answer within 1 s",
        silent.port()
    );
    for (response, took) in statements {
        assert_eq!(failed(response).message, expected);
        assert!(
            took < Duration::from_millis(1900),
            "connects queued: {took:?}"
        );
    }
    let (report, took) = health;
    assert!(!report.healthy, "{report:?}");
    assert!(
        took < Duration::from_millis(1900),
        "readiness queued: {took:?}"
    );
}

#[test]
fn a_reset_connection_fails_its_statements_and_the_next_ones_succeed() {
    let cluster = PgCluster::start();
    let proxy = Proxy::start(cluster_address(&cluster));
    let runtime = Arc::new(runtime(&cluster.url_via(proxy.port(), SHORT)));
    all_succeed(&runtime, 1);
    let mut admin = cluster.admin();
    let statements: Vec<_> = (0..4)
        .map(|_| timed_route(&runtime, "SELECT pg_sleep(0.4)::text AS slept"))
        .collect();
    wait_until("the statements run", 10, || {
        running(&mut admin, "pg_sleep(0.4)") >= 1
    });
    proxy.reset();
    let mut failures = 0;
    for statement in statements {
        let (response, took) = within(10, statement);
        assert!(took < Duration::from_millis(1500), "{took:?}");
        if response.success != Some(true) {
            assert_eq!(failed(response).code.as_str(), "HANDLER_EXECUTION_ERROR");
            failures += 1;
        }
    }
    assert!(failures >= 1, "the reset failed no statement");
    all_succeed(&runtime, 5);
}

#[test]
fn a_blackholed_connection_fails_at_the_deadline_and_the_pool_recovers() {
    let cluster = PgCluster::start();
    let proxy = Proxy::start(cluster_address(&cluster));
    let runtime = Arc::new(runtime(&cluster.url_via(proxy.port(), SHORT)));
    all_succeed(&runtime, 1);
    proxy.blackhole(true);
    let (statements, health) = statements_and_health(&runtime, 4);
    for (response, took) in statements {
        let error = failed(response);
        assert!(
            error.message == PAST_DEADLINE || error.message.contains("no answer within 1 s"),
            "{}",
            error.message
        );
        assert!(took < Duration::from_millis(2500), "{took:?}");
    }
    let (report, took) = health;
    assert!(
        !report.healthy && took < Duration::from_millis(2500),
        "{report:?} {took:?}"
    );
    proxy.blackhole(false);
    all_succeed(&runtime, 5);
    let (report, _) = within(10, check_health(&runtime));
    assert!(report.healthy, "{report:?}");
}

#[test]
fn terminated_backends_fail_only_their_statements_and_the_pool_recovers() {
    let cluster = PgCluster::start();
    let runtime = Arc::new(runtime(&cluster.url_via(cluster.port, SHORT)));
    all_succeed(&runtime, 1);
    let mut admin = cluster.admin();
    // Queued: pipelined behind each other on the pool's connections.
    let statements: Vec<_> = (0..12)
        .map(|_| timed_route(&runtime, "SELECT pg_sleep(0.2)::text AS slept"))
        .collect();
    wait_until("the statements run", 10, || {
        running(&mut admin, "pg_sleep(0.2)") >= 1
    });
    let terminated: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = current_user AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
            &[],
        )
        .expect("terminates")
        .get(0);
    assert!(terminated >= 1);
    let mut failures = 0;
    for statement in statements {
        let (response, took) = within(10, statement);
        assert!(took < Duration::from_millis(2500), "{took:?}");
        if response.success != Some(true) {
            failures += 1;
        }
    }
    assert!(failures >= 1, "no statement saw its backend terminated");
    all_succeed(&runtime, 5);
}

#[test]
fn read_write_sessions_skip_a_read_only_server_and_a_host_that_is_down() {
    let cluster = PgCluster::start();
    let mut admin = cluster.admin();
    admin
        .simple_query("ALTER SYSTEM SET default_transaction_read_only = on")
        .and_then(|_| admin.simple_query("SELECT pg_reload_conf()"))
        .expect("configures");
    wait_until("new sessions are read-only", 10, || {
        let row = cluster
            .admin()
            .query_one("SHOW transaction_read_only", &[])
            .expect("asks");
        row.get::<_, String>(0) == "on"
    });
    let read_write = runtime(&cluster.url_via(
        cluster.port,
        "target_session_attrs=read-write connect_timeout=1",
    ));
    assert_eq!(
        failed(call(
            &read_write,
            "db.query",
            "SELECT 1::int4 AS one",
            json!([])
        ))
        .message,
        format!(
            "handler 'db': could not connect to the database at 127.0.0.1:{}/postgres: it does not allow writes (target_session_attrs=read-write)",
            cluster.port
        )
    );
    admin
        .simple_query("ALTER SYSTEM RESET default_transaction_read_only")
        .and_then(|_| admin.simple_query("SELECT pg_reload_conf()"))
        .expect("configures");
    wait_until("new sessions may write", 10, || {
        let row = cluster
            .admin()
            .query_one("SHOW transaction_read_only", &[])
            .expect("asks");
        row.get::<_, String>(0) == "off"
    });
    all_succeed(&read_write, 1);

    // The first host is down: the second answers.
    let url = format!(
        "host=127.0.0.1,127.0.0.1 port={},{} user={} password={} dbname=postgres connect_timeout=1",
        closed_port(),
        cluster.port,
        cluster.user,
        cluster.password
    );
    let handler = HandlerDb::new(&url).expect("a valid connection string");
    let multi = crate::support::runtime_with(Box::new(handler), crate::db::NODE);
    all_succeed(&multi, 3);
}

#[test]
fn a_connect_to_a_server_that_never_answers_times_out() {
    let silent = Proxy::start(SocketAddr::from(([127, 0, 0, 1], closed_port())));
    silent.blackhole(true);
    let url = format!(
        "host=127.0.0.1 port={} user=nobody password=secret dbname=postgres connect_timeout=1",
        silent.port()
    );
    let runtime = runtime(&url);
    let started = Instant::now();
    let error = failed(call(&runtime, "db.query", "SELECT 1", json!([])));
    assert_eq!(
        error.message,
        format!(
            "handler 'db': could not connect to the database at 127.0.0.1:{}/postgres: no answer within 1 s",
            silent.port()
        )
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(1900),
        "{took:?}"
    );
}

#[test]
fn busy_connections_are_not_checked_behind_their_own_statements() {
    let cluster = PgCluster::start();
    let runtime = Arc::new(runtime(&cluster.url()));
    let mut admin = cluster.admin();
    let slow = "SELECT pg_backend_pid() AS pid FROM pg_sleep(4)";
    let busy = |admin: &mut postgres::Client, n: i64| {
        wait_until("the slow statements run", 10, || {
            running(admin, "pg_sleep(4)") == n
        });
        // Past PROMPT: a connection busy this long takes no more while the pool has room.
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut statements = Vec::new();
    for n in 1..=4 {
        statements.push(route(&runtime, slow, json!([])));
        busy(&mut admin, n);
    }
    // A connection is lost under its statement: the others are checked before their next
    // statement, but only once idle.
    statements.push(route(&runtime, slow, json!([])));
    busy(&mut admin, 5);
    admin
        .simple_query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state = 'active' AND strpos(query, 'pg_sleep(4)') > 0 AND pid <> pg_backend_pid() ORDER BY backend_start DESC LIMIT 1")
        .expect("terminates");
    let error = failed(within(10, statements.pop().expect("a statement")));
    assert!(
        error.message.contains("SQLSTATE 57P01"),
        "{}",
        error.message
    );
    statements.push(route(&runtime, slow, json!([])));
    busy(&mut admin, 5);
    // The pool is full and busy: this one queues on the oldest connection, which stays.
    let queued = within(
        20,
        route(&runtime, "SELECT pg_backend_pid() AS pid", json!([])),
    );
    let first = within(20, statements.remove(0));
    assert_eq!(
        ok(queued)["rows"][0]["pid"],
        ok(first)["rows"][0]["pid"],
        "a busy connection was checked, timed out behind its statement and dropped"
    );
    for statement in statements {
        ok(within(20, statement));
    }
}

#[test]
fn the_production_host_answers_probes_and_requests_while_the_server_is_frozen() {
    use crate::api::{http, json_of};
    use crate::support::daemon::Daemon;
    use crate::support::process::{PRODUCTION, repo};
    use crate::support::request_line;

    let cluster = PgCluster::start();
    let url = cluster.url_via(cluster.port, SHORT);
    let daemon = Daemon::start(
        PRODUCTION,
        &[
            "--listen",
            "127.0.0.1:0",
            "--max-in-flight",
            "8",
            "contracts/runtime/minimum_runtime_host.yaml",
        ],
        repo(),
        &[("DATABASE_URL", &url)],
    );
    let query = |n: u32| {
        let request = request_line(
            n,
            "example_node",
            "db.query",
            r#"{"sql": "SELECT 1::int4 AS one"}"#,
        );
        let url = daemon.url("/v1/envelopes");
        std::thread::spawn(move || {
            let started = Instant::now();
            let (_, _, body) = http("POST", &url, request.into_bytes());
            (json_of(&body), started.elapsed())
        })
    };
    let probe = |path: &str| {
        let started = Instant::now();
        let (status, _, _) = http("GET", &daemon.url(path), vec![]);
        (status, started.elapsed())
    };
    assert_eq!(probe("/health/ready").0, 200);

    let frozen = cluster.freeze();
    // Every slot taken by a statement on the frozen server.
    let statements: Vec<_> = (1..=8).map(query).collect();
    let (status, took) = probe("/health/ready");
    assert_eq!(status, 503);
    assert!(
        took < Duration::from_millis(2500),
        "readiness took {took:?}"
    );
    let (status, took) = probe("/health/handlers");
    assert_eq!(status, 200);
    assert!(
        took < Duration::from_millis(2500),
        "the report took {took:?}"
    );
    for statement in statements {
        let (response, took) = statement.join().expect("a reply");
        assert_eq!(response["success"], false, "{response}");
        assert!(
            took < Duration::from_millis(2500),
            "a statement took {took:?}"
        );
    }

    drop(frozen);
    let (response, _) = query(9).join().expect("a reply");
    assert_eq!(
        response["payload"]["rows"],
        json!([{"one": 1}]),
        "{response}"
    );
    assert_eq!(probe("/health/ready").0, 200);
    daemon.signal("TERM");
    assert_eq!(daemon.exit().0, Some(0));
}

#[test]
fn a_cancel_request_nothing_answers_is_given_up_after_a_second_and_logged() {
    let (port, line, took) = cancel_through(Proxy::ignore_new_connections);
    assert_eq!(
        line,
        format!(
            "WARN could not send a cancel request to the database at 127.0.0.1:{port}: no answer within 1000 ms; the statement it was for runs on until it ends or reaches statement_timeout"
        )
    );
    // Bounded by the cancel's own limit, not by TCP's retries (minutes).
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn a_cancel_request_the_server_refuses_is_logged_with_the_reason() {
    let (port, line, took) = cancel_through(Proxy::refuse_new_connections);
    assert_eq!(
        line,
        format!(
            "WARN could not send a cancel request to the database at 127.0.0.1:{port}: Connection refused (os error 111); the statement it was for runs on until it ends or reaches statement_timeout"
        )
    );
    assert!(took < Duration::from_millis(950), "{took:?}");
}

/// Runs a slow statement through a proxy, applies `fault` to the proxy (its connection to
/// the server carries on), drops the request mid-statement and waits for the warning that
/// the cancel request could not be sent: returns the proxy's port (where the cancel went),
/// the warning and how long after the drop it came. The server's statement runs on.
fn cancel_through(fault: fn(&mut Proxy)) -> (u16, String, Duration) {
    crate::support::logs::capture();
    let cluster = PgCluster::start();
    let mut proxy = Proxy::start(cluster_address(&cluster));
    let runtime = Arc::new(runtime(&cluster.url_via(proxy.port(), "")));
    let mut admin = cluster.admin();
    let sleeping = route(&runtime, "SELECT pg_sleep(10)::text AS slept", json!([]));
    wait_until("the statement runs", 10, || {
        running(&mut admin, "pg_sleep(10)") == 1
    });
    fault(&mut proxy);
    let dropped = Instant::now();
    assert!(
        within(10, sleeping.cancel()).is_none(),
        "the statement finished"
    );
    let line = crate::support::logs::wait_for(
        &format!(
            "could not send a cancel request to the database at 127.0.0.1:{}:",
            proxy.port()
        ),
        10,
    );
    let took = dropped.elapsed();
    assert_eq!(
        running(&mut admin, "pg_sleep(10)"),
        1,
        "the statement was cancelled"
    );
    (proxy.port(), line, took)
}

#[test]
fn a_connection_reset_during_the_handshake_is_reported_with_its_cause() {
    // Takes each connection's startup message and resets the connection, as a pooler or
    // firewall turning the host away does; a connection that sends nothing ends it.
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = listener.local_addr().expect("an address").port();
    let server = std::thread::spawn(move || {
        let mut startups = Vec::new();
        for stream in listener.incoming() {
            let mut stream = stream.expect("accepts");
            let mut length = [0u8; 4];
            if stream.read_exact(&mut length).is_err() {
                return startups;
            }
            let mut rest = vec![0; u32::from_be_bytes(length) as usize - 4];
            stream.read_exact(&mut rest).expect("the startup message");
            socket2::SockRef::from(&stream)
                .set_linger(Some(Duration::ZERO))
                .expect("SO_LINGER");
            startups.push(String::from_utf8_lossy(&rest).into_owned());
        }
        startups
    });
    let runtime = runtime(&format!(
        "host=127.0.0.1 port={port} user=app password=s3cret dbname=postgres connect_timeout=5"
    ));
    let error = failed(call(&runtime, "db.query", "SELECT 1", json!([])));
    assert_eq!(error.code.as_str(), "HANDLER_EXECUTION_ERROR");
    // The innermost cause, not tokio-postgres's "error communicating with the server".
    assert_eq!(
        error.message,
        format!(
            "handler 'db': could not connect to the database at 127.0.0.1:{port}/postgres: Connection reset by peer (os error 104)"
        )
    );
    drop(std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects"));
    let startups = server.join().expect("the server");
    // The handler's start and the statement each tried once, as the host's user.
    assert_eq!(startups.len(), 2, "{startups:?}");
    assert!(
        startups
            .iter()
            .all(|startup| startup.contains("user\0app\0")),
        "{startups:?}"
    );
}

#[test]
fn a_health_check_nothing_answers_fails_at_its_limit_and_the_checks_keep_one_connection() {
    let cluster = PgCluster::start();
    let proxy = Proxy::start(cluster_address(&cluster));
    let runtime = Arc::new(runtime(&cluster.url_via(proxy.port(), "connect_timeout=1")));
    all_succeed(&runtime, 1);
    // The pooled connection is idle: the check pings it, and nothing answers.
    proxy.blackhole(true);
    let (report, took) = within(10, check_health(&runtime));
    assert!(!report.healthy, "{report:?}");
    assert_eq!(
        report.details["error"], "the database did not answer a health check within 2000 ms",
        "{report:?}"
    );
    // The unanswered ping's connection is retired.
    assert_eq!(report.details["connections"], 0, "{report:?}");
    assert!(
        took >= Duration::from_millis(1950) && took < Duration::from_secs(3),
        "{took:?}"
    );
    proxy.blackhole(false);

    // Every pooled connection busy: the checks use a connection of their own, opened by
    // the first and kept for the next.
    let mut admin = cluster.admin();
    let backends = |admin: &mut postgres::Client| -> Vec<i32> {
        admin
            .query(
                "SELECT pid FROM pg_stat_activity WHERE usename = current_user AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                &[],
            )
            .expect("asks")
            .iter()
            .map(|row| row.get(0))
            .collect()
    };
    let slow = route(&runtime, "SELECT pg_sleep(2)::text AS slept", json!([]));
    wait_until("the statement runs", 10, || {
        running(&mut admin, "pg_sleep(2)") == 1
    });
    let (report, _) = within(10, check_health(&runtime));
    assert!(report.healthy, "{report:?}");
    let after_first = backends(&mut admin);
    let (report, _) = within(10, check_health(&runtime));
    assert!(report.healthy, "{report:?}");
    let opened: Vec<i32> = backends(&mut admin)
        .into_iter()
        .filter(|pid| !after_first.contains(pid))
        .collect();
    assert_eq!(
        opened,
        Vec::<i32>::new(),
        "the second check opened a connection"
    );
    assert_eq!(running(&mut admin, "pg_sleep(2)"), 1, "the check queued");
    ok(within(10, slow));
}
