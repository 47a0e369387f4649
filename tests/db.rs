//! The DB handler against a real, throwaway PostgreSQL: both operations, the type mapping
//! both ways, every error mapping, placeholder checks, pool exhaustion, the server going
//! away and coming back, and secrets kept out of envelopes and logs.

use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;

use onex_host::budget::Budget;
use onex_host::envelope::{Envelope, ErrorBody, Payload, Request, Stamp};
use onex_host::handlers::db::HandlerDb;
use onex_host::runtime::NodeRuntime;
use serde_json::{Value, json};

use crate::support::fixture::Fixture;
use crate::support::http_server::{Reply, TestServer, response};
use crate::support::postgres::PgCluster;
use crate::support::process::{PRODUCTION, repo, run};
use crate::support::{runtime_with, within};

pub(crate) const NODE: &str = "schema_version: \"1.1.0\"\nnode_version: \"1.0.0\"\nname: \"store\"\nnode_type: \"EFFECT_GENERIC\"\nio_operations:\n  - type: \"db\"\n    operations: [\"db.query\", \"db.execute\", \"db.transaction\"]\n";

pub(crate) fn runtime(url: &str) -> NodeRuntime {
    runtime_with(Box::new(HandlerDb::new(url).expect("a valid URL")), NODE)
}

pub(crate) fn call(
    runtime: &NodeRuntime,
    operation: &str,
    sql: &str,
    parameters: Value,
) -> Envelope {
    crate::support::call(
        runtime,
        "store",
        operation,
        json!({"sql": sql, "parameters": parameters}),
    )
}

/// `db.query` with `payload` on `runtime`, charged to `budget`.
fn query_charged(runtime: &NodeRuntime, payload: Value, budget: &Arc<Budget>) -> Envelope {
    let envelope = Envelope::request(
        &Stamp::deterministic(1),
        "store",
        "db.query",
        payload.as_object().cloned(),
    );
    let request = Request::check(Box::new(envelope)).expect("a request");
    let charge = budget.try_take(0).expect("room");
    *within(30, runtime.route(request, charge))
}

pub(crate) fn ok(response: Envelope) -> Payload {
    assert_eq!(response.success, Some(true), "{:?}", response.error);
    response.payload.expect("a payload")
}

pub(crate) fn failed(response: Envelope) -> ErrorBody {
    assert_eq!(response.success, Some(false), "{:?}", response.payload);
    response.error.expect("an error")
}

#[test]
fn query_and_execute_map_the_common_types_both_ways() {
    let cluster = PgCluster::start();
    let runtime = runtime(&cluster.url());
    let created = ok(call(
        &runtime,
        "db.execute",
        "CREATE TABLE everything (i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, n numeric(12,2), t text, v varchar(8), c char(3), b bool, j json, jb jsonb, u uuid, d date, ts timestamp, tz timestamptz, by bytea, ai int4[], at text[], an numeric[])",
        json!([]),
    ));
    assert_eq!(created["row_count"], 0);
    let values = json!([
        -2, 40000, 9007199254740993i64, 0.5, 1.25, "12345.67", "text", "varchar", "ab", true,
        {"a": [1, 2]}, {"b": null}, "67e55044-10b1-426f-9247-bb680e5fe0c8", "2024-02-29",
        "2024-02-29T12:34:56.789", "2024-02-29T12:34:56.789+02:00", "\\xdeadbeef", [1, null, 3], ["x", "y"], [1.5, "2"]
    ]);
    let placeholders: Vec<String> = (1..=20).map(|n| format!("${n}")).collect();
    let insert = format!(
        "INSERT INTO everything VALUES ({})",
        placeholders.join(", ")
    );
    assert_eq!(
        ok(call(&runtime, "db.execute", &insert, values))["row_count"],
        1
    );
    assert_eq!(
        ok(call(
            &runtime,
            "db.execute",
            &insert,
            Value::Array(vec![Value::Null; 20])
        ))["row_count"],
        1
    );

    let result = ok(call(
        &runtime,
        "db.query",
        "SELECT * FROM everything ORDER BY i2 NULLS LAST",
        json!([]),
    ));
    assert_eq!(result["row_count"], 2);
    assert_eq!(
        result["rows"][0],
        json!({
            "i2": -2, "i4": 40000, "i8": 9007199254740993i64, "f4": 0.5, "f8": 1.25, "n": "12345.67",
            "t": "text", "v": "varchar", "c": "ab ", "b": true, "j": {"a": [1, 2]}, "jb": {"b": null},
            "u": "67e55044-10b1-426f-9247-bb680e5fe0c8", "d": "2024-02-29",
            "ts": "2024-02-29T12:34:56.789000", "tz": "2024-02-29T10:34:56.789000Z",
            "by": "\\xdeadbeef", "ai": [1, null, 3], "at": ["x", "y"], "an": ["1.5", "2"]
        })
    );
    assert!(
        result["rows"][1]
            .as_object()
            .expect("a row")
            .values()
            .all(Value::is_null)
    );
}

#[test]
fn placeholder_mismatches_are_refused_before_anything_is_sent() {
    let cluster = PgCluster::start();
    let runtime = runtime(&cluster.url());
    ok(call(
        &runtime,
        "db.execute",
        "CREATE TABLE t (a int4, b text)",
        json!([]),
    ));
    let error = failed(call(
        &runtime,
        "db.execute",
        "INSERT INTO t VALUES ($1, $2)",
        json!([1]),
    ));
    assert_eq!(error.code.as_str(), "ENVELOPE_VALIDATION_ERROR");
    assert_eq!(
        error.message,
        "handler 'db': invalid payload: the SQL uses 2 placeholder(s) ($1..$2) but 1 parameter(s) were given"
    );
    let error = failed(call(
        &runtime,
        "db.query",
        "SELECT '$1' AS literal",
        json!(["x"]),
    ));
    assert!(
        error.message.contains("uses 0 placeholder(s)"),
        "{}",
        error.message
    );
    assert_eq!(
        ok(call(
            &runtime,
            "db.query",
            "SELECT count(*)::int4 AS n FROM t",
            json!([])
        ))["rows"],
        json!([{"n": 0}])
    );
}

#[test]
fn parameters_and_columns_that_do_not_map_say_what_to_do() {
    let cluster = PgCluster::start();
    let runtime = runtime(&cluster.url());
    let error = failed(call(
        &runtime,
        "db.query",
        "SELECT $1::int4 AS n",
        json!(["seven"]),
    ));
    assert_eq!(error.code.as_str(), "ENVELOPE_VALIDATION_ERROR");
    assert_eq!(
        error.message,
        "handler 'db': invalid payload: parameter $1 is int4: expected an integer in range"
    );
    let error = failed(call(
        &runtime,
        "db.query",
        "SELECT $1::inet AS a",
        json!(["127.0.0.1"]),
    ));
    assert!(
        error.message.ends_with(
            "parameter $1 is inet, which the db handler does not map; cast it in SQL, e.g. $1::text"
        ),
        "{}",
        error.message
    );
    let error = failed(call(
        &runtime,
        "db.query",
        "SELECT '1 day'::interval AS span",
        json!([]),
    ));
    assert_eq!(error.code.as_str(), "HANDLER_EXECUTION_ERROR");
    assert!(error.message.ends_with("column 'span' has type interval, which the db handler does not map; cast it in SQL, e.g. span::text"), "{}", error.message);
}

#[test]
fn database_errors_are_described_by_sqlstate_class() {
    let cluster = PgCluster::start();
    let runtime = runtime(&cluster.url());
    ok(call(
        &runtime,
        "db.execute",
        "CREATE TABLE parent (id int4 PRIMARY KEY)",
        json!([]),
    ));
    ok(call(
        &runtime,
        "db.execute",
        "CREATE TABLE child (id int4 PRIMARY KEY, parent int4 NOT NULL REFERENCES parent, qty int4 CHECK (qty > 0))",
        json!([]),
    ));
    ok(call(
        &runtime,
        "db.execute",
        "INSERT INTO parent VALUES (1)",
        json!([]),
    ));
    for (sql, parameters, expected) in [
        ("SELEC 1", json!([]), "SQL syntax error (SQLSTATE 42601)"),
        (
            "SELECT * FROM missing",
            json!([]),
            "undefined table (SQLSTATE 42P01)",
        ),
        (
            "SELECT nope FROM parent",
            json!([]),
            "undefined column (SQLSTATE 42703)",
        ),
        (
            "INSERT INTO parent VALUES ($1)",
            json!([1]),
            "unique constraint violated (SQLSTATE 23505)",
        ),
        (
            "INSERT INTO child VALUES (1, $1, 1)",
            json!([99]),
            "foreign key constraint violated (SQLSTATE 23503)",
        ),
        (
            "INSERT INTO child VALUES (2, $1, 1)",
            json!([null]),
            "not-null constraint violated (SQLSTATE 23502)",
        ),
        (
            "INSERT INTO child VALUES (3, 1, $1)",
            json!([0]),
            "check constraint violated (SQLSTATE 23514)",
        ),
        (
            "SELECT no_such_function()",
            json!([]),
            "undefined function or operator (SQLSTATE 42883)",
        ),
        (
            "SELECT 'x'::int4",
            json!([]),
            "invalid data (SQLSTATE 22P02)",
        ),
        (
            "CREATE TABLE parent (id int4)",
            json!([]),
            "the statement is invalid (SQLSTATE 42P07)",
        ),
        (
            "ROLLBACK TO SAVEPOINT nowhere",
            json!([]),
            "the database refused the statement (SQLSTATE 25P01)",
        ),
    ] {
        let error = failed(call(&runtime, "db.execute", sql, parameters));
        assert_eq!(error.code.as_str(), "HANDLER_EXECUTION_ERROR", "{sql}");
        assert!(
            error
                .message
                .starts_with(&format!("handler 'db': {expected}: ")),
            "{sql}: {}",
            error.message
        );
    }
}

#[test]
fn twenty_slow_queries_share_five_connections_and_all_are_answered() {
    let cluster = PgCluster::start();
    let runtime = Arc::new(runtime(&cluster.url()));
    let responses: Vec<Envelope> = within(60, async {
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let runtime = Arc::clone(&runtime);
                smol::spawn(async move {
                    let payload = json!({"sql": "SELECT pg_backend_pid() AS pid FROM pg_sleep(0.05)", "parameters": []});
                    let payload = payload.as_object().cloned().unwrap_or_default();
                    let stamp = onex_host::envelope::Stamp::system();
                    runtime.route_envelope(Box::new(Envelope::request(&stamp, "store", "db.query", Some(payload)))).await
                })
            })
            .collect();
        let mut responses = Vec::new();
        for task in tasks {
            responses.push(*task.await);
        }
        responses
    });
    let mut backends: Vec<i64> = responses
        .into_iter()
        .map(|response| ok(response)["rows"][0]["pid"].as_i64().expect("a pid"))
        .collect();
    backends.sort_unstable();
    backends.dedup();
    assert!(
        backends.len() <= 5,
        "more than five connections: {backends:?}"
    );
}

/// Routes `sql` with `parameters` as a request of its own, for running concurrently.
pub(crate) fn route(
    runtime: &Arc<NodeRuntime>,
    sql: &str,
    parameters: Value,
) -> smol::Task<Envelope> {
    let runtime = Arc::clone(runtime);
    let payload = json!({"sql": sql, "parameters": parameters});
    let payload = payload.as_object().cloned();
    smol::spawn(async move {
        let stamp = onex_host::envelope::Stamp::system();
        let request = Envelope::request(&stamp, "store", "db.query", payload);
        *runtime.route_envelope(Box::new(request)).await
    })
}

#[test]
fn statements_sharing_connections_each_get_their_own_result_or_error() {
    let cluster = PgCluster::start();
    let runtime = Arc::new(runtime(&cluster.url()));
    // Many at once from several threads: they are pipelined on shared connections, and
    // every fifth fails (division by zero) between statements that must not notice.
    let responses = within(60, async {
        let tasks: Vec<_> = (0..300)
            .map(|i| {
                let divisor = if i % 5 == 0 { 0 } else { i };
                route(
                    &runtime,
                    "SELECT $1::int4 AS n, 600 / $2::int4 AS q, pg_backend_pid() AS pid",
                    json!([i, divisor]),
                )
            })
            .collect();
        let mut responses = Vec::new();
        for task in tasks {
            responses.push(task.await);
        }
        responses
    });
    let mut backends = Vec::new();
    for (i, response) in (0i64..).zip(responses) {
        if i % 5 == 0 {
            let error = failed(response);
            assert!(
                error.message.contains("SQLSTATE 22012"),
                "{}",
                error.message
            );
            continue;
        }
        let rows = ok(response)["rows"].clone();
        assert_eq!(rows[0]["n"], i, "another statement's result: {rows}");
        assert_eq!(rows[0]["q"], 600 / i, "{rows}");
        backends.push(rows[0]["pid"].as_i64().expect("a pid"));
    }
    backends.sort_unstable();
    backends.dedup();
    assert!(
        backends.len() <= 5,
        "more than five connections: {backends:?}"
    );
}

#[test]
fn a_slow_statement_does_not_hold_up_the_statements_after_it() {
    let cluster = PgCluster::start();
    let runtime = Arc::new(runtime(&cluster.url()));
    ok(call(
        &runtime,
        "db.query",
        "SELECT 1::int4 AS warm",
        json!([]),
    ));
    let (fast, slow) = within(30, async {
        let slow = route(
            &runtime,
            "SELECT 'slow' AS which FROM pg_sleep(2)",
            json!([]),
        );
        // Long enough for the slow one to be seen making no progress.
        smol::Timer::after(Duration::from_millis(30)).await;
        let fast = route(&runtime, "SELECT 'fast' AS which", json!([]));
        // Whichever answers first: the fast one must not be queued behind the slow one.
        future::or(async { (Some(fast.await), None) }, async {
            (None, Some(slow.await))
        })
        .await
    });
    assert!(slow.is_none(), "the slow statement answered first");
    let fast = fast.map(ok).expect("the fast answer");
    assert_eq!(fast["rows"][0]["which"], "fast");
}

#[test]
fn sequential_statements_reuse_one_connection_and_a_cancelled_one_retires_it() {
    let cluster = PgCluster::start();
    let runtime = runtime(&cluster.url());
    let backend = |n: i32| {
        let rows = ok(call(
            &runtime,
            "db.query",
            "SELECT $1::int4 AS n, pg_backend_pid() AS pid",
            json!([n]),
        ))["rows"]
            .clone();
        assert_eq!(rows[0]["n"], n, "another statement's result: {rows}");
        rows[0]["pid"].as_i64().expect("a pid")
    };
    let first = backend(1);
    assert!(
        (2..=10).all(|n| backend(n) == first),
        "light load cycled through connections"
    );

    // Sent, then dropped while the server still works on it (as the shutdown deadline does).
    let payload = json!({"sql": "SELECT 99 AS stale FROM pg_sleep(0.3)"});
    let request = Envelope::request(
        &onex_host::envelope::Stamp::system(),
        "store",
        "db.query",
        payload.as_object().cloned(),
    );
    let cancelled = within(10, async {
        future::or(
            async { Some(runtime.route_envelope(Box::new(request)).await) },
            async {
                smol::Timer::after(Duration::from_millis(50)).await;
                None
            },
        )
        .await
    });
    assert!(
        cancelled.is_none(),
        "the slow statement finished: {cancelled:?}"
    );
    // The abandoned statement's connection is retired: another answers next, with its own
    // result, and keeps answering.
    let next = backend(11);
    assert_ne!(next, first);
    assert!((12..=15).all(|n| backend(n) == next));
}

#[test]
fn a_connection_the_server_closed_while_idle_is_replaced_without_failing_a_request() {
    let cluster = PgCluster::start();
    let runtime = runtime(&cluster.url());
    let mut admin = cluster.admin();
    let request = |sql: &str| {
        let payload = json!({"sql": sql, "parameters": []});
        let stamp = onex_host::envelope::Stamp::system();
        let request = Envelope::request(&stamp, "store", "db.query", payload.as_object().cloned());
        runtime.route_envelope(Box::new(request))
    };
    let backend = || async {
        let rows = ok(*request("SELECT pg_backend_pid() AS pid").await)["rows"].clone();
        rows[0]["pid"].as_i64().expect("a pid")
    };
    // A statement kept in flight on a connection of its own, polled on this thread only,
    // and only within the `within` calls below: with one in flight, the next statement
    // takes a connection without giving the sockets a turn first (the statements in
    // flight do that, when polled). So between those calls nothing reads what the server
    // sends an idle connection, and whether or not the host's reactor has reported the
    // server's farewell, only the check before use can see it.
    let mut slow = Box::pin(request("SELECT pg_sleep(1)::text AS slept"));
    within(10, async {
        while crate::db_faults::running(&mut admin, "pg_sleep(1)") == 0 {
            assert!(
                future::poll_once(slow.as_mut()).await.is_none(),
                "the slow statement finished"
            );
            smol::Timer::after(Duration::from_millis(1)).await;
        }
    });
    // Past PROMPT: a connection busy this long takes no more while the pool has room.
    std::thread::sleep(Duration::from_millis(5));
    let first = alongside(slow.as_mut(), backend());
    let pid = i32::try_from(first).expect("a pid fits");
    let port: i32 = admin
        .query_one(
            "SELECT client_port FROM pg_stat_activity WHERE pid = $1",
            &[&pid],
        )
        .expect("asks")
        .get(0);
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .expect("terminates");
    // Usually the farewell then waits, unread, in the host's socket, and only the check
    // before use can see it. On a loaded machine the host's own reading may take it first
    // (the socket is then no longer established, or gone): the request must not fail
    // either way, but only the first way tests the check, so the test says which it saw.
    crate::db_faults::wait_until(
        "the server's farewell reaches the host's socket",
        10,
        || match socket_state(port) {
            Some((ESTABLISHED, unread)) => unread > 0,
            _ => true,
        },
    );
    if !matches!(socket_state(port), Some((_, unread)) if unread > 0) {
        eprintln!(
            "the host read the server's farewell itself: the check before use was not needed"
        );
    }
    // Past IDLE_PAUSE (1 ms): the pool asks the kernel only about a connection idle that
    // long.
    std::thread::sleep(Duration::from_millis(2));
    let next = alongside(slow.as_mut(), backend());
    assert_ne!(next, first, "the closed connection was used");
    ok(*within(10, slow));
}

/// Runs `work` to its end, polling `slow` (which must not end) after it each turn: every
/// request awaiting a statement must be polled when woken, or it keeps the pool's
/// sockets from the others (their executor wakes one waiting request at a time).
fn alongside<T>(
    slow: std::pin::Pin<&mut impl Future<Output = Box<Envelope>>>,
    work: impl Future<Output = T>,
) -> T {
    within(
        10,
        future::or(work, async {
            let response = slow.await;
            panic!("the slow statement finished: {response:?}")
        }),
    )
}

/// /proc/net/tcp's state of an established connection.
const ESTABLISHED: u8 = 0x01;

/// The state and the bytes waiting to be read of the 127.0.0.1 TCP socket bound to
/// `port`, from /proc/net/tcp (`local_address` is `0100007F:PORT`, `st` in hex,
/// `tx_queue:rx_queue` in hex); `None` once it is gone.
fn socket_state(port: i32) -> Option<(u8, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&local.as_str()) {
            return None;
        }
        let state = u8::from_str_radix(fields.get(3)?, 16).ok()?;
        let (_, rx) = fields.get(4)?.split_once(':')?;
        Some((state, u64::from_str_radix(rx, 16).ok()?))
    })
}

#[test]
fn connects_over_a_unix_socket() {
    let cluster = PgCluster::start();
    let runtime = runtime(&cluster.socket_url());
    let result = ok(call(
        &runtime,
        "db.query",
        "SELECT inet_server_addr() IS NULL AS over_a_socket",
        json!([]),
    ));
    assert_eq!(result["rows"][0]["over_a_socket"], true);
}

#[test]
fn the_server_going_away_gives_errors_and_its_return_needs_no_restart() {
    let mut cluster = PgCluster::start();
    let runtime = runtime(&cluster.url());
    ok(call(
        &runtime,
        "db.query",
        "SELECT 1::int4 AS one",
        json!([]),
    ));
    let handler_health = || {
        within(
            10,
            runtime
                .handlers()
                .next()
                .expect("the db handler")
                .health_check(),
        )
    };
    assert!(handler_health().healthy);

    cluster.stop("fast");
    let error = failed(call(
        &runtime,
        "db.query",
        "SELECT 1::int4 AS one",
        json!([]),
    ));
    assert_eq!(error.code.as_str(), "HANDLER_EXECUTION_ERROR");
    assert!(
        !error.message.contains(&cluster.password),
        "{}",
        error.message
    );
    let error = failed(call(
        &runtime,
        "db.query",
        "SELECT 1::int4 AS one",
        json!([]),
    ));
    assert_eq!(
        error.message,
        format!(
            "handler 'db': could not connect to the database at 127.0.0.1:{}/postgres: Connection refused (os error 111)",
            cluster.port
        )
    );
    assert!(!handler_health().healthy);

    cluster.restart();
    // Every statement after the server is back succeeds, the first included.
    for _ in 0..3 {
        let answered = call(&runtime, "db.query", "SELECT 1::int4 AS one", json!([]));
        assert_eq!(ok(answered)["rows"], json!([{"one": 1}]));
    }
    assert!(handler_health().healthy);
}

#[test]
fn a_wrong_password_is_reported_without_any_secret() {
    let cluster = PgCluster::start();
    let url = format!(
        "postgresql://{}:WrongHunter2@127.0.0.1:{}/postgres",
        cluster.user, cluster.port
    );
    let runtime = runtime(&url);
    let response = call(&runtime, "db.query", "SELECT 1", json!([]));
    let text = serde_json::to_string(&response).expect("serialises");
    assert!(
        !text.contains("WrongHunter2") && !text.contains(&cluster.password),
        "{text}"
    );
    let error = failed(response);
    assert_eq!(
        error.message,
        format!(
            "handler 'db': could not connect to the database at 127.0.0.1:{}/postgres: password authentication failed for user \"tester\"",
            cluster.port
        )
    );
}

/// A loopback server answering every request 200 `{"up":true}`.
fn up_server() -> TestServer {
    TestServer::start(|_| {
        Reply::Send(response(
            "200 OK",
            &[("Content-Type", "application/json")],
            br#"{"up":true}"#,
        ))
    })
}

#[test]
fn the_production_binary_serves_the_minimum_contract_with_http_and_db() {
    let cluster = PgCluster::start();
    let server = up_server();
    let closed_port = crate::support::closed_port();
    let requests = [
        json!({"envelope_id": "00000000-0000-4000-8000-000000000001", "target_node": "example_node", "operation": "db.query",
               "payload": {"sql": "SELECT $1::int4 + 1 AS n", "parameters": [41]}}),
        json!({"envelope_id": "00000000-0000-4000-8000-000000000002", "target_node": "example_node", "operation": "http.get",
               "payload": {"url": server.url("/status")}}),
        json!({"envelope_id": "00000000-0000-4000-8000-000000000003", "target_node": "example_node", "operation": "db.query",
               "payload": {"sql": "SELECT 1 AS a UNION SELECT 2 AS a;--", "parameters": []}}),
        json!({"envelope_id": "00000000-0000-4000-8000-000000000004", "target_node": "example_node", "operation": "http.get",
               "payload": {"url": format!("http://admin:Hunter2Secret@127.0.0.1:{closed_port}/x?token=TokenSecret")}}),
    ]
    .map(|request| format!("{request}\n"))
    .concat();
    let run = run(
        PRODUCTION,
        &[
            "--stdin",
            "--log-level",
            "debug",
            "contracts/runtime/minimum_runtime_host.yaml",
        ],
        repo(),
        requests.as_bytes(),
        &[("DATABASE_URL", &cluster.url())],
    );
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let lines: Vec<Value> = run
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(
        lines[0]["payload"],
        json!({"rows": [{"n": 42}], "row_count": 1})
    );
    assert_eq!(lines[1]["payload"]["body"], json!({"up": true}));
    assert_eq!(
        lines[2]["payload"]["row_count"], 2,
        "suspicious SQL only warns"
    );
    assert!(
        run.stderr.contains("suspicious SQL pattern ;--")
            && run.stderr.contains("suspicious SQL pattern UNION"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains(&cluster.password) && !run.stdout.contains(&cluster.password),
        "the password leaked"
    );
}

#[test]
fn the_production_binary_without_a_database_url_fails_at_start_up() {
    let fixture = Fixture::new();
    let contract = repo().join("contracts/runtime/minimum_runtime_host.yaml");
    let run = run(
        PRODUCTION,
        &["--stdin", contract.to_str().expect("a UTF-8 path")],
        fixture.root(),
        b"",
        &[],
    );
    run.assert_failed_with(
        "HandlerDb failed to initialise: no database configured: set DATABASE_URL",
    );
}

/// `--busy-poll`: the host's thread keeps polling between requests instead of sleeping,
/// and must still see every reply (database, HTTP) while it does, and still wake when a
/// pause outlasts the window.
#[test]
fn a_busy_polling_host_answers_one_request_at_a_time_across_pauses() {
    use crate::support::process::spawn;
    use std::io::{BufRead, BufReader, Write};

    let cluster = PgCluster::start();
    let server = up_server();
    let mut host = spawn(
        PRODUCTION,
        &[
            "--stdin",
            "--busy-poll",
            "1000",
            "--log-level",
            "warn",
            "contracts/runtime/minimum_runtime_host.yaml",
        ],
        repo(),
        &[("DATABASE_URL", &cluster.url())],
    );
    let mut input = host.stdin.take().expect("stdin");
    let output = BufReader::new(host.stdout.take().expect("stdout"));
    // Answers are read on a thread, so that a host that stops answering fails the test
    // instead of hanging it.
    let (answered, answers) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in output.lines().map_while(Result::ok) {
            let _ = answered.send(line);
        }
    });
    for n in 0..12u32 {
        let request = if n % 3 == 2 {
            json!({"envelope_id": format!("00000000-0000-4000-8000-{n:012}"), "target_node": "example_node",
                   "operation": "http.get", "payload": {"url": server.url("/status")}})
        } else {
            json!({"envelope_id": format!("00000000-0000-4000-8000-{n:012}"), "target_node": "example_node",
                   "operation": "db.query", "payload": {"sql": "SELECT $1::int4 AS n", "parameters": [n]}})
        };
        if n % 4 == 3 {
            // Past the 1 ms window: the host sleeps and must be woken by this line.
            std::thread::sleep(Duration::from_millis(20));
        }
        writeln!(input, "{request}").expect("the host reads");
        let line = answers
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no answer to request {n}"));
        let answer: Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(answer["success"], true, "{line}");
        if n % 3 == 2 {
            assert_eq!(answer["payload"]["body"], json!({"up": true}), "{line}");
        } else {
            assert_eq!(answer["payload"]["rows"], json!([{"n": n}]), "{line}");
        }
    }
    drop(input);
    let status = host.wait().expect("the host exits");
    assert!(status.success(), "{status}");
}

#[test]
fn a_result_the_memory_budget_cannot_hold_fails_and_its_charge_is_given_back() {
    let cluster = PgCluster::start();
    let runtime = runtime(&cluster.url());
    // 2,000 rows of 1,000 characters: some 6 MB charged (as read, parsed and answered).
    let sql = "SELECT repeat('x', 1000) AS t FROM generate_series(1, 2000)";
    let route = |budget: &Arc<Budget>| query_charged(&runtime, json!({"sql": sql}), budget);
    let small = Budget::new(1024 * 1024);
    let error = failed(route(&small));
    assert_eq!(
        error.message,
        "handler 'db': the query's result is larger than the host can hold now (its memory budget is spent): select fewer rows or columns, or retry"
    );
    assert_eq!(small.held(), 0, "the charge is given back");
    let large = Budget::new(16 * 1024 * 1024);
    assert_eq!(ok(route(&large))["row_count"], 2000);
    assert_eq!(large.held(), 0);
    // The connection is still good for the next statement.
    assert_eq!(
        ok(call(&runtime, "db.query", "SELECT 1 AS one", json!([])))["row_count"],
        1
    );
}

#[test]
fn parameters_the_memory_budget_cannot_hold_while_sent_fail_and_their_charge_is_given_back() {
    let cluster = PgCluster::start();
    let runtime = runtime(&cluster.url());
    // A 600 KB parameter is charged twice while the driver sends it (1.2 MB), then given
    // back: its echo, charged three times as it arrives (1.8 MB), fits in 2 MiB only then.
    let text = "x".repeat(600 * 1000);
    let payload = json!({"sql": "SELECT $1::text AS s", "parameters": [text]});
    let route = |budget: &Arc<Budget>| query_charged(&runtime, payload.clone(), budget);
    let small = Budget::new(1024 * 1024);
    let error = failed(route(&small));
    assert_eq!(
        error.message,
        "handler 'db': the statement's parameters are larger than the host can hold now (its memory budget is spent): send less, or retry"
    );
    assert_eq!(small.held(), 0, "the charge is given back");
    let large = Budget::new(2 * 1024 * 1024);
    assert_eq!(ok(route(&large))["rows"], json!([{"s": text}]));
    assert_eq!(large.held(), 0);
}

#[test]
fn a_value_the_type_mapping_cannot_hold_names_its_column_and_the_cast_that_reads_it() {
    let cluster = PgCluster::start();
    let runtime = runtime(&cluster.url());
    for (sql, column, type_, reason) in [
        (
            "SELECT 1 AS one, 'NaN'::numeric AS ratio",
            "ratio",
            "numeric",
            "Error while converting to NaN",
        ),
        (
            "SELECT 'infinity'::timestamp AS until",
            "until",
            "timestamp",
            "value too large to decode",
        ),
        (
            "SELECT '10000-01-01'::date AS due",
            "due",
            "date",
            "value too large to decode",
        ),
    ] {
        let error = failed(call(&runtime, "db.query", sql, json!([])));
        assert_eq!(error.code.as_str(), "HANDLER_EXECUTION_ERROR");
        assert_eq!(
            error.message,
            format!(
                "handler 'db': column '{column}' holds a {type_} value the db handler cannot read ({reason}); cast it in SQL, e.g. {column}::text"
            )
        );
    }
    // The cast the message suggests reads it; the connection stayed usable.
    let rows = ok(call(
        &runtime,
        "db.query",
        "SELECT 'NaN'::numeric::text AS ratio, 'infinity'::timestamp::text AS until",
        json!([]),
    ))["rows"]
        .clone();
    assert_eq!(rows, json!([{"ratio": "NaN", "until": "infinity"}]));
}
