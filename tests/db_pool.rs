//! How many connections the db handler's pool opens for a burst, against a real throwaway
//! PostgreSQL: a cold pool opens one for each statement waiting, up to its size, so long
//! statements run side by side; a server that refuses more clients, or a connect that
//! hangs, leaves the statements to the connections already open instead of failing them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use onex_host::handlers::db::HandlerDb;
use onex_host::runtime::NodeRuntime;
use serde_json::json;

use crate::db::{NODE, ok, route};
use crate::db_faults::{running, wait_until};
use crate::support::postgres::PgCluster;
use crate::support::proxy::Proxy;
use crate::support::{runtime_with, within};

/// A runtime whose db pool holds at most `size` connections to `url`.
fn pool_of(size: usize, url: &str) -> Arc<NodeRuntime> {
    let handler = HandlerDb::new(url)
        .expect("a valid connection string")
        .configured(size, None);
    Arc::new(runtime_with(Box::new(handler), NODE))
}

/// Runs `count` copies of `sql` at once; the backend each one ran on, in order.
fn burst(runtime: &Arc<NodeRuntime>, count: usize, sql: &str) -> Vec<i64> {
    let answers = within(30, async {
        let statements: Vec<_> = (0..count).map(|_| route(runtime, sql, json!([]))).collect();
        let mut answers = Vec::new();
        for statement in statements {
            answers.push(statement.await);
        }
        answers
    });
    answers
        .into_iter()
        .map(|answer| ok(answer)["rows"][0]["pid"].as_i64().expect("a pid"))
        .collect()
}

fn distinct(mut backends: Vec<i64>) -> usize {
    backends.sort_unstable();
    backends.dedup();
    backends.len()
}

const SLEEP: &str = "SELECT pg_backend_pid() AS pid FROM pg_sleep(0.3)";

/// Waits for a lock the test holds, and names its backend.
const LOCKED: &str = "SELECT pg_backend_pid() AS pid FROM pg_advisory_xact_lock_shared(7)";

/// Checks the handler's health, then runs `count` [`LOCKED`] statements at once, waits
/// until `side_by_side` of them wait for the lock on the server at once (a statement
/// pipelined behind another waits on the host's side, not the server's), releases it;
/// the backend each one ran on. Nothing answers before the release, so how fast
/// connections open does not matter.
fn side_by_side(
    cluster: &PgCluster,
    runtime: &Arc<NodeRuntime>,
    count: usize,
    side_by_side: i64,
) -> Vec<i64> {
    let mut admin = cluster.admin();
    admin
        .batch_execute("SELECT pg_advisory_lock(7)")
        .expect("locks");
    let statements: Vec<_> = within(10, async {
        // A health check just before: its ping, answered a moment ago, says nothing of
        // how fast the burst's statements will be answered.
        let health = runtime
            .handlers()
            .next()
            .expect("the db handler")
            .health_check();
        assert!(health.await.healthy);
        (0..count)
            .map(|_| route(runtime, LOCKED, json!([])))
            .collect()
    });
    let waiting = |admin: &mut postgres::Client| -> i64 {
        admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'",
                &[],
            )
            .expect("asks")
            .get(0)
    };
    wait_until("the statements wait side by side", 20, || {
        waiting(&mut admin) == side_by_side
    });
    admin
        .batch_execute("SELECT pg_advisory_unlock(7)")
        .expect("unlocks");
    within(30, async {
        let mut backends = Vec::new();
        for statement in statements {
            backends.push(
                ok(statement.await)["rows"][0]["pid"]
                    .as_i64()
                    .expect("a pid"),
            );
        }
        backends
    })
}

#[test]
fn a_burst_on_a_cold_pool_opens_a_connection_for_each_statement_up_to_its_size() {
    let cluster = PgCluster::start();
    // Five statements on a cold pool of five: one connection each, all five running on
    // the server at once (pipelined on one connection, it would run them one by one).
    let runtime = pool_of(5, &cluster.url());
    assert_eq!(distinct(side_by_side(&cluster, &runtime, 5, 5)), 5);
    // Five long ones on the warm pool: side by side too.
    let started = Instant::now();
    assert_eq!(distinct(burst(&runtime, 5, SLEEP)), 5);
    eprintln!(
        "5 statements of 0.3 s on a warm pool of 5: {:?}",
        started.elapsed()
    );

    // A pool of two opens two, and pipelines the rest on them.
    let runtime = pool_of(2, &cluster.url());
    assert_eq!(distinct(side_by_side(&cluster, &runtime, 5, 2)), 2);
}

#[test]
fn statements_whose_connect_the_server_refuses_run_on_the_connections_it_accepted() {
    let cluster = PgCluster::start();
    cluster
        .admin()
        .batch_execute("CREATE ROLE limited LOGIN PASSWORD 'limited' CONNECTION LIMIT 2")
        .expect("creates the role");
    let url = format!(
        "host=127.0.0.1 port={} user=limited password=limited dbname=postgres",
        cluster.port
    );
    // The server refuses a third connection (too many connections for role, SQLSTATE
    // 53300): the burst's other statements wait for the ones it accepted, and succeed.
    let runtime = pool_of(5, &url);
    assert!(distinct(burst(&runtime, 5, SLEEP)) <= 2);
    // And so does the next burst, on the warm pool.
    assert!(distinct(burst(&runtime, 5, SLEEP)) <= 2);
}

#[test]
fn a_statement_whose_connect_hangs_takes_an_open_connection() {
    let cluster = PgCluster::start();
    let mut proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], cluster.port)));
    let runtime = pool_of(5, &cluster.url_via(proxy.port(), "connect_timeout=1"));
    let warm = burst(&runtime, 1, "SELECT pg_backend_pid() AS pid");
    proxy.ignore_new_connections();
    // `slow` runs on the warm connection; `next` finds it busy and opens another, whose
    // connect hangs: it takes the warm one once that answers `slow`, before its connect
    // times out; or, if `slow` outlasts the connect, after that, pipelined behind it.
    for (slow, waited_at_most) in [(0.3, 900), (1.3, 2500)] {
        let (slow, next, took) = within(30, async {
            let slow = route(
                &runtime,
                &format!("SELECT pg_backend_pid() AS pid FROM pg_sleep({slow})"),
                json!([]),
            );
            // Long enough for the warm connection to be seen busy.
            smol::Timer::after(Duration::from_millis(30)).await;
            let started = Instant::now();
            let next = route(&runtime, "SELECT pg_backend_pid() AS pid", json!([])).await;
            (slow.await, next, started.elapsed())
        });
        assert_eq!(ok(slow)["rows"][0]["pid"], warm[0]);
        assert_eq!(ok(next)["rows"][0]["pid"], warm[0]);
        assert!(
            took < Duration::from_millis(waited_at_most),
            "answered after {took:?}"
        );
    }
}

#[test]
fn a_statement_whose_connect_the_database_refuses_waits_for_a_busy_connection() {
    let cluster = PgCluster::start();
    let runtime = pool_of(5, &cluster.url());
    let warm = burst(&runtime, 1, "SELECT pg_backend_pid() AS pid");
    let mut admin = cluster.admin();
    let slow = route(
        &runtime,
        "SELECT pg_backend_pid() AS pid FROM pg_sleep(0.5)",
        json!([]),
    );
    wait_until("the slow statement runs", 10, || {
        running(&mut admin, "pg_sleep(0.5)") == 1
    });
    // Past PROMPT: the busy connection takes no more while the pool has room.
    std::thread::sleep(Duration::from_millis(5));
    // A database cannot refuse connections from a session of its own.
    let template = cluster.url().replace("/postgres", "/template1");
    let mut other = postgres::Client::connect(&template, postgres::NoTls).expect("connects");
    other
        .simple_query("ALTER DATABASE postgres ALLOW_CONNECTIONS false")
        .expect("configures");
    // Its connect refused, the statement is pipelined behind the slow one: it fails only
    // when no connection is open.
    let next = within(
        10,
        route(&runtime, "SELECT pg_backend_pid() AS pid", json!([])),
    );
    other
        .simple_query("ALTER DATABASE postgres ALLOW_CONNECTIONS true")
        .expect("configures");
    assert_eq!(ok(next)["rows"][0]["pid"], warm[0]);
    assert_eq!(ok(within(10, slow))["rows"][0]["pid"], warm[0]);
}
