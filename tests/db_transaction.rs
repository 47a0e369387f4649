//! `db.transaction` against a real, throwaway PostgreSQL: the results of each statement,
//! all or nothing (a failing statement, a failing COMMIT), the checks made before anything
//! is sent, the memory budget, and transactions beside pipelined statements. (Faults
//! mid-transaction are in `db_transaction_faults`.)

use std::sync::Arc;

use onex_host::envelope::{Envelope, ErrorBody, Payload};
use onex_host::runtime::NodeRuntime;
use serde_json::{Value, json};

use crate::db::{call, failed, ok, runtime};
use crate::support::postgres::PgCluster;
use crate::support::within;

/// Runs `statements` as one `db.transaction`.
pub(crate) fn transaction(runtime: &NodeRuntime, statements: Value) -> Envelope {
    crate::support::call(
        runtime,
        "store",
        "db.transaction",
        json!({"statements": statements}),
    )
}

/// Runs `statements` as a `db.transaction` request of its own, for running concurrently.
pub(crate) fn spawn_transaction(
    runtime: &Arc<NodeRuntime>,
    statements: Value,
) -> smol::Task<Envelope> {
    let runtime = Arc::clone(runtime);
    let payload = json!({"statements": statements}).as_object().cloned();
    smol::spawn(async move {
        let stamp = onex_host::envelope::Stamp::system();
        let request = Envelope::request(&stamp, "store", "db.transaction", payload);
        *runtime.route_envelope(Box::new(request)).await
    })
}

/// The rows of `table`'s column `a`, in order.
pub(crate) fn column_a(runtime: &NodeRuntime, table: &str) -> Value {
    let rows = ok(call(
        runtime,
        "db.query",
        &format!("SELECT a FROM {table} ORDER BY a"),
        json!([]),
    ));
    Value::Array(
        rows["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|row| row["a"].clone())
            .collect(),
    )
}

/// Creates the table `t (a int4)`.
pub(crate) fn create_table_t(runtime: &NodeRuntime) {
    ok(call(
        runtime,
        "db.execute",
        "CREATE TABLE t (a int4)",
        json!([]),
    ));
}

/// Asserts `t` is empty (nothing committed), then that a transaction inserting `next`
/// commits on the pool's next connection.
pub(crate) fn nothing_committed_and_the_pool_serves_on(runtime: &NodeRuntime, next: i32) {
    assert_eq!(column_a(runtime, "t"), json!([]));
    ok(transaction(
        runtime,
        json!([{"sql": "INSERT INTO t VALUES ($1)", "parameters": [next]}]),
    ));
    assert_eq!(column_a(runtime, "t"), json!([next]));
}

/// The failure of a statement of a transaction: its index and message.
pub(crate) fn statement_failed(response: Envelope) -> (ErrorBody, Value) {
    let error = failed(response);
    assert_eq!(
        error.code.as_str(),
        "HANDLER_EXECUTION_ERROR",
        "{}",
        error.message
    );
    let index = error
        .details
        .get("statement_index")
        .cloned()
        .unwrap_or(Value::Null);
    (error, index)
}

fn results(response: Envelope) -> Vec<Payload> {
    let payload = ok(response);
    payload["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|result| result.as_object().cloned().expect("an object"))
        .collect()
}

#[test]
fn each_statement_answers_its_rows_or_the_rows_it_affected() {
    let cluster = PgCluster::start();
    let runtime = runtime(&cluster.url());
    ok(call(
        &runtime,
        "db.execute",
        "CREATE TABLE t (a int4 PRIMARY KEY, b text)",
        json!([]),
    ));
    let answers = results(transaction(
        &runtime,
        json!([
            {"sql": "INSERT INTO t VALUES ($1, $2), ($3, $4)", "parameters": [1, "one", 2, "two"]},
            {"sql": "INSERT INTO t VALUES ($1, 'three') RETURNING a, b", "parameters": [3]},
            {"sql": "UPDATE t SET b = upper(b) WHERE a < $1", "parameters": [3]},
            {"sql": "SELECT a, b FROM t ORDER BY a"},
            {"sql": "SAVEPOINT s"},
            {"sql": "DELETE FROM t WHERE a = 3"},
            {"sql": "ROLLBACK TO SAVEPOINT s"},
        ]),
    ));
    assert_eq!(
        answers
            .iter()
            .map(|a| Value::Object(a.clone()))
            .collect::<Vec<_>>(),
        [
            json!({"row_count": 2}),
            json!({"row_count": 1, "rows": [{"a": 3, "b": "three"}]}),
            json!({"row_count": 2}),
            json!({"row_count": 3, "rows": [{"a": 1, "b": "ONE"}, {"a": 2, "b": "TWO"}, {"a": 3, "b": "three"}]}),
            json!({"row_count": 0}),
            json!({"row_count": 1}),
            json!({"row_count": 0}),
        ]
    );
    assert_eq!(column_a(&runtime, "t"), json!([1, 2, 3]), "committed");
}

#[test]
fn a_failing_middle_statement_rolls_everything_back_and_is_named() {
    let cluster = PgCluster::start();
    let runtime = runtime(&cluster.url());
    ok(call(
        &runtime,
        "db.execute",
        "CREATE TABLE t (a int4 PRIMARY KEY)",
        json!([]),
    ));
    ok(call(
        &runtime,
        "db.execute",
        "INSERT INTO t VALUES (1)",
        json!([]),
    ));
    let pid = |runtime: &NodeRuntime| {
        ok(call(
            runtime,
            "db.query",
            "SELECT pg_backend_pid() AS pid",
            json!([]),
        ))["rows"][0]["pid"]
            .clone()
    };
    let before = pid(&runtime);
    let (error, index) = statement_failed(transaction(
        &runtime,
        json!([
            {"sql": "INSERT INTO t VALUES ($1)", "parameters": [2]},
            {"sql": "INSERT INTO t VALUES ($1)", "parameters": [1]},
            {"sql": "INSERT INTO t VALUES ($1)", "parameters": [3]},
        ]),
    ));
    assert_eq!(index, 1);
    assert!(
        error.message.starts_with(
            "handler 'db': statement 1 (of 3, counted from 0) failed, the transaction was rolled back and nothing took effect: unique constraint violated (SQLSTATE 23505): "
        ),
        "{}",
        error.message
    );
    assert_eq!(
        column_a(&runtime, "t"),
        json!([1]),
        "nothing of it committed"
    );
    // The connection came back to the pool, out of its transaction, and is reused.
    assert_eq!(pid(&runtime), before);
    ok(call(
        &runtime,
        "db.execute",
        "INSERT INTO t VALUES (4)",
        json!([]),
    ));
    let (_, index) = statement_failed(transaction(
        &runtime,
        json!([{"sql": "SELECT 1 / $1::int4 AS q", "parameters": [1]}, {"sql": "SELECT $1::int4 AS n", "parameters": ["x"]}]),
    ));
    assert_eq!(
        index, 1,
        "a parameter that does not fit names its statement too"
    );
    assert_eq!(
        column_a(&runtime, "t"),
        json!([1, 4]),
        "the insert after it committed on its own"
    );
}

#[test]
fn a_commit_the_server_refuses_rolls_back_and_says_so() {
    let cluster = PgCluster::start();
    let runtime = runtime(&cluster.url());
    ok(call(
        &runtime,
        "db.execute",
        "CREATE TABLE t (a int4 UNIQUE DEFERRABLE INITIALLY DEFERRED)",
        json!([]),
    ));
    let error = failed(transaction(
        &runtime,
        json!([{"sql": "INSERT INTO t VALUES (1)"}, {"sql": "INSERT INTO t VALUES (1)"}]),
    ));
    assert_eq!(error.code.as_str(), "HANDLER_EXECUTION_ERROR");
    assert!(
        error.message.starts_with("handler 'db': COMMIT failed, the transaction was rolled back and nothing took effect: unique constraint violated (SQLSTATE 23505)"),
        "{}",
        error.message
    );
    assert_eq!(error.details.get("statement_index"), None);
    assert_eq!(column_a(&runtime, "t"), json!([]));
}

#[test]
fn payloads_that_cannot_run_are_refused_before_anything_is_sent() {
    let cluster = PgCluster::start();
    let runtime = runtime(&cluster.url());
    create_table_t(&runtime);
    let insert = json!({"sql": "INSERT INTO t VALUES (1)"});
    let too_long = "SELECT 1 -- ".to_owned() + &"x".repeat(600 * 1024);
    for (payload, message) in [
        (json!({}), "'statements' is required for db.transaction".to_owned()),
        (json!({"statements": {}}), "'statements' must be a list".to_owned()),
        (json!({"statements": []}), "'statements' holds 0 statement(s); a transaction runs 1 to 100".to_owned()),
        (json!({"statements": vec![insert.clone(); 101]}), "'statements' holds 101 statement(s); a transaction runs 1 to 100".to_owned()),
        (json!({"statements": [insert, "SELECT 1"]}), "statement 1: must be an object with 'sql' and 'parameters'".to_owned()),
        (json!({"statements": [{"sql": "SELECT 1", "params": []}]}), "statement 0: unknown field 'params' (a statement has 'sql' and 'parameters')".to_owned()),
        (json!({"statements": [{"sql": "INSERT INTO t VALUES (1)"}, {"parameters": []}]}), "statement 1: 'sql' is required".to_owned()),
        (json!({"statements": [{"sql": " "}]}), "statement 0: 'sql' is empty".to_owned()),
        (json!({"statements": [{"sql": "INSERT INTO t VALUES ($1, $2)", "parameters": [1]}]}), "statement 0: the SQL uses 2 placeholder(s) ($1..$2) but 1 parameter(s) were given".to_owned()),
        (json!({"statements": [{"sql": "INSERT INTO t VALUES (1)"}, {"sql": "/* done */ commit"}, {"sql": "INSERT INTO t VALUES (2)"}]}), "statement 1: COMMIT is not allowed inside db.transaction, which begins and ends the transaction itself".to_owned()),
        (json!({"statements": [{"sql": "start transaction"}]}), "statement 0: START TRANSACTION is not allowed inside db.transaction, which begins and ends the transaction itself".to_owned()),
        (json!({"statements": [{"sql": too_long}, {"sql": too_long}]}), "the statements' SQL is over 1048576 bytes in all".to_owned()),
    ] {
        let error = failed(crate::support::call(&runtime, "store", "db.transaction", payload));
        assert_eq!(error.code.as_str(), "ENVELOPE_VALIDATION_ERROR", "{}", error.message);
        assert_eq!(error.message, format!("handler 'db': invalid payload: {message}"));
    }
    assert_eq!(column_a(&runtime, "t"), json!([]));
}

#[test]
fn results_the_memory_budget_cannot_hold_roll_back_and_give_the_charge_back() {
    use onex_host::budget::Budget;
    use onex_host::envelope::{Request, Stamp};
    let cluster = PgCluster::start();
    let runtime = runtime(&cluster.url());
    create_table_t(&runtime);
    // Two results of 1,000 rows of 1,000 characters: some 6 MB charged in all.
    let statements = json!([
        {"sql": "INSERT INTO t VALUES (1)"},
        {"sql": "SELECT repeat('x', 1000) AS t FROM generate_series(1, 1000)"},
        {"sql": "SELECT repeat('y', 1000) AS t FROM generate_series(1, 1000)"},
    ]);
    let route = |budget: &Arc<Budget>| {
        let payload = json!({"statements": statements}).as_object().cloned();
        let envelope =
            Envelope::request(&Stamp::deterministic(1), "store", "db.transaction", payload);
        let request = Request::check(Box::new(envelope)).expect("a request");
        let charge = budget.try_take(0).expect("room");
        *within(30, runtime.route(request, charge))
    };
    let small = Budget::new(4 * 1024 * 1024);
    let (error, index) = statement_failed(route(&small));
    assert_eq!(index, 2, "the second result is the one over the budget");
    assert!(
        error.message.contains("its memory budget is spent"),
        "{}",
        error.message
    );
    assert_eq!(small.held(), 0, "the charge is given back");
    assert_eq!(column_a(&runtime, "t"), json!([]));
    let large = Budget::new(32 * 1024 * 1024);
    let payload = ok(route(&large));
    assert_eq!(payload["results"][2]["row_count"], 1000);
    assert_eq!(large.held(), 0);
    assert_eq!(column_a(&runtime, "t"), json!([1]));
}

#[test]
fn transactions_never_share_a_connection_with_other_requests() {
    let cluster = PgCluster::start();
    let runtime = Arc::new(runtime(&cluster.url()));
    create_table_t(&runtime);
    // Each transaction takes a transaction id and reads it back after a pause; the single
    // statements beside them, pipelined on the other connections, must never run inside
    // one (they would see its id) and none of the transactions inside another.
    let (transactions, singles) = within(60, async {
        let transactions: Vec<_> = (0..12)
            .map(|n| {
                spawn_transaction(
                    &runtime,
                    json!([
                        {"sql": "INSERT INTO t VALUES ($1)", "parameters": [n]},
                        {"sql": "SELECT txid_current()::text AS id, pg_backend_pid() AS pid"},
                        {"sql": "SELECT pg_sleep(0.02)::text AS slept"},
                        {"sql": "SELECT txid_current()::text AS id, count(*)::int4 AS mine FROM t WHERE a = $1", "parameters": [n]},
                    ]),
                )
            })
            .collect();
        let singles: Vec<_> = (0..60)
            .map(|_| {
                crate::db::route(
                    &runtime,
                    "SELECT txid_current_if_assigned()::text AS id, pg_backend_pid() AS pid",
                    json!([]),
                )
            })
            .collect();
        let mut answered = (Vec::new(), Vec::new());
        for task in transactions {
            answered.0.push(task.await);
        }
        for task in singles {
            answered.1.push(task.await);
        }
        answered
    });
    let mut backends = Vec::new();
    for response in transactions {
        let results = ok(response)["results"].clone();
        assert_eq!(
            results[1]["rows"][0]["id"], results[3]["rows"][0]["id"],
            "{results}"
        );
        assert_eq!(results[3]["rows"][0]["mine"], 1, "{results}");
        backends.push(results[1]["rows"][0]["pid"].as_i64().expect("a pid"));
    }
    for response in singles {
        let row = ok(response)["rows"][0].clone();
        assert_eq!(
            row["id"],
            Value::Null,
            "a statement ran inside a transaction"
        );
        backends.push(row["pid"].as_i64().expect("a pid"));
    }
    backends.sort_unstable();
    backends.dedup();
    assert!(
        backends.len() <= 5,
        "more than five connections: {backends:?}"
    );
    assert_eq!(column_a(&runtime, "t").as_array().map(Vec::len), Some(12));
}
