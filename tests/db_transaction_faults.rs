//! `db.transaction` when things fail midway, against a real throwaway PostgreSQL: its
//! backend terminated during a statement and during COMMIT, a statement past
//! `statement_timeout`, the server cut off (a blackholing proxy), the request dropped.
//! Each answer says whether anything was committed; nothing half-done is ever committed;
//! the pool serves the next request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::db::{call, failed, ok, runtime};
use crate::db_faults::{running, wait_until};
use crate::db_transaction::{
    create_table_t, nothing_committed_and_the_pool_serves_on, spawn_transaction, statement_failed,
    transaction,
};
use crate::support::postgres::PgCluster;
use crate::support::proxy::Proxy;
use crate::support::within;

/// A statement's host-side deadline is 500 ms + 1 s.
const SHORT: &str = "connect_timeout=1 options='-c statement_timeout=500'";

/// Terminates the backends running a statement containing `text`; how many.
fn terminate(admin: &mut postgres::Client, text: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND strpos(query, $1) > 0",
            &[&text],
        )
        .expect("terminates")
        .get(0)
}

#[test]
fn a_backend_terminated_mid_transaction_commits_nothing_and_its_connection_is_dropped() {
    let cluster = PgCluster::start();
    let runtime = Arc::new(runtime(&cluster.url()));
    create_table_t(&runtime);
    let mut admin = cluster.admin();
    let pending = spawn_transaction(
        &runtime,
        json!([
            {"sql": "INSERT INTO t VALUES (1)"},
            {"sql": "SELECT pg_sleep(5)::text AS slept"},
            {"sql": "INSERT INTO t VALUES (2)"},
        ]),
    );
    wait_until("the transaction sleeps", 10, || {
        running(&mut admin, "pg_sleep(5)") == 1
    });
    assert_eq!(terminate(&mut admin, "pg_sleep(5)"), 1);
    let (error, index) = statement_failed(within(10, pending));
    assert_eq!(index, 1);
    assert!(
        error.message.starts_with(
            "handler 'db': statement 1 (of 3, counted from 0) failed, the transaction was not committed and nothing took effect: "
        ),
        "{}",
        error.message
    );
    // The next transaction runs on a live connection.
    nothing_committed_and_the_pool_serves_on(&runtime, 3);
}

#[test]
fn a_connection_lost_during_commit_may_or_may_not_have_committed() {
    let cluster = PgCluster::start();
    let runtime = Arc::new(runtime(&cluster.url()));
    // A deferred trigger that sleeps: COMMIT takes long enough to be cut off.
    for sql in [
        "CREATE TABLE t (a int4)",
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(5); RETURN NULL; END $$",
        "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()",
    ] {
        ok(call(&runtime, "db.execute", sql, json!([])));
    }
    let mut admin = cluster.admin();
    let pending = spawn_transaction(&runtime, json!([{"sql": "INSERT INTO t VALUES (1)"}]));
    wait_until("COMMIT runs", 10, || running(&mut admin, "COMMIT") == 1);
    assert_eq!(terminate(&mut admin, "COMMIT"), 1);
    let error = failed(within(10, pending));
    assert_eq!(error.code.as_str(), "HANDLER_EXECUTION_ERROR");
    assert!(
        error.message.starts_with(
            "handler 'db': the connection was lost during COMMIT: the transaction may or may not have taken effect; check before running it again: "
        ),
        "{}",
        error.message
    );
    assert_eq!(error.details.get("statement_index"), None);
    ok(call(
        &runtime,
        "db.execute",
        "DROP TRIGGER slow ON t",
        json!([]),
    ));
    ok(transaction(
        &runtime,
        json!([{"sql": "INSERT INTO t VALUES (2)"}]),
    ));
}

#[test]
fn a_statement_past_its_timeout_rolls_back_and_the_connection_serves_on() {
    let cluster = PgCluster::start();
    let runtime = runtime(&cluster.url_via(cluster.port, SHORT));
    create_table_t(&runtime);
    let started = Instant::now();
    let (error, index) = statement_failed(transaction(
        &runtime,
        json!([{"sql": "INSERT INTO t VALUES (1)"}, {"sql": "SELECT pg_sleep(3)::text AS slept"}]),
    ));
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(index, 1);
    assert!(
        error.message.contains("the transaction was rolled back and nothing took effect: the statement was cancelled (statement_timeout) (SQLSTATE 57014)"),
        "{}",
        error.message
    );
    nothing_committed_and_the_pool_serves_on(&runtime, 2);
}

#[test]
fn a_server_cut_off_mid_transaction_fails_it_at_the_deadline_and_the_pool_recovers() {
    let cluster = PgCluster::start();
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], cluster.port)));
    let runtime = Arc::new(runtime(&cluster.url_via(proxy.port(), SHORT)));
    create_table_t(&runtime);
    let mut admin = cluster.admin();
    let pending = spawn_transaction(
        &runtime,
        json!([{"sql": "INSERT INTO t VALUES (1)"}, {"sql": "SELECT pg_sleep(0.3)::text AS slept"}, {"sql": "INSERT INTO t VALUES (2)"}]),
    );
    wait_until("the transaction sleeps", 10, || {
        running(&mut admin, "pg_sleep(0.3)") == 1
    });
    proxy.blackhole(true);
    let started = Instant::now();
    let (error, index) = statement_failed(within(10, pending));
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert!(index == 1 || index == 2, "{index}");
    assert!(
        error.message.contains("the transaction was not committed and nothing took effect: the database did not answer within 1500 ms"),
        "{}",
        error.message
    );
    proxy.blackhole(false);
    // The cut-off session's insert was never committed, whenever the server ends it.
    nothing_committed_and_the_pool_serves_on(&runtime, 3);
}

#[test]
fn a_transaction_dropped_midway_is_cancelled_and_rolled_back_on_the_server() {
    let cluster = PgCluster::start();
    let runtime = Arc::new(runtime(&cluster.url()));
    create_table_t(&runtime);
    let mut admin = cluster.admin();
    let pending = spawn_transaction(
        &runtime,
        json!([{"sql": "INSERT INTO t VALUES (1)"}, {"sql": "SELECT pg_sleep(5)::text AS slept"}]),
    );
    wait_until("the transaction sleeps", 10, || {
        running(&mut admin, "pg_sleep(5)") == 1
    });
    // As the shutdown deadline does: the request is dropped mid-transaction.
    assert!(
        within(10, pending.cancel()).is_none(),
        "the transaction finished"
    );
    wait_until("the server cancels it", 3, || {
        running(&mut admin, "pg_sleep(5)") == 0
    });
    nothing_committed_and_the_pool_serves_on(&runtime, 2);
}

#[test]
fn statements_on_every_connection_do_not_keep_a_transaction_waiting() {
    let cluster = PgCluster::start();
    let runtime = Arc::new(runtime(&cluster.url()));
    let mut admin = cluster.admin();
    let sleep = "SELECT pg_sleep(1)::text AS slept";
    // Five connections, each busy with a statement of a second.
    let mut slow = Vec::new();
    for n in 1..=5 {
        slow.push(crate::db::route(&runtime, sleep, json!([])));
        wait_until("the statements run", 10, || {
            running(&mut admin, "pg_sleep(1)") == n
        });
        // Past PROMPT: a connection busy this long takes no more while the pool has room.
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    let pending = spawn_transaction(&runtime, json!([{"sql": "SELECT 1 AS one"}]));
    // Let the transaction start waiting, then keep every connection asked: queued on the
    // one it waits for, these would hold it a second longer each.
    within(5, smol::Timer::after(Duration::from_millis(30)));
    for _ in 0..8 {
        slow.push(crate::db::route(&runtime, sleep, json!([])));
    }
    ok(within(10, pending));
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1600),
        "the transaction waited {took:?}"
    );
    for statement in slow {
        ok(within(20, statement));
    }
}

#[test]
fn a_transaction_waiting_for_a_connection_is_told_at_once_when_the_handler_stops() {
    let cluster = PgCluster::start();
    let runtime = Arc::new(runtime(&cluster.url()));
    let mut admin = cluster.admin();
    // Four transactions hold four connections, the most there may be: a fifth waits.
    let sleeping = json!([{"sql": "SELECT pg_sleep(2)::text AS slept"}]);
    let holding: Vec<_> = (0..4)
        .map(|_| spawn_transaction(&runtime, sleeping.clone()))
        .collect();
    wait_until("four transactions run", 10, || {
        running(&mut admin, "pg_sleep(2)") == 4
    });
    let waiting = spawn_transaction(&runtime, json!([{"sql": "SELECT 1 AS one"}]));
    within(5, smol::Timer::after(Duration::from_millis(30)));
    let started = Instant::now();
    within(
        10,
        runtime
            .handlers()
            .next()
            .expect("the db handler")
            .shutdown(),
    );
    let error = failed(within(10, waiting));
    assert_eq!(error.message, "handler 'db': the db handler is shut down");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    for transaction in holding {
        within(10, transaction);
    }
}
