//! The retry layer around the db handler against a real throwaway PostgreSQL: a
//! `db.query` whose backend is terminated under it (SQLSTATE 57P01) runs again on a new
//! connection; a `db.execute` in the same spot is not repeated, since it may have taken
//! effect. The binding's pool size and statement timeout reach the handler.

use std::sync::Arc;
use std::time::Duration;

use onex_host::contract::{HandlerConfig, RetryPolicy};
use onex_host::envelope::{Envelope, Stamp};
use onex_host::handlers::db::HandlerDb;
use onex_host::layers::{self, Clock, SystemClock};
use onex_host::runtime::NodeRuntime;
use serde_json::json;

use crate::db::{NODE, failed, ok};
use crate::db_faults::{running, wait_until};
use crate::support::postgres::PgCluster;
use crate::support::{runtime_with, within};

/// A runtime whose db binding has fast retries, a pool of 2 and a 3 s statement timeout.
fn runtime(url: &str) -> Arc<NodeRuntime> {
    let config = HandlerConfig {
        retry: RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        },
        pool_size: Some(2),
        timeout: Duration::from_secs(3),
        ..HandlerConfig::default()
    };
    let handler = HandlerDb::new(url)
        .expect("a valid URL")
        .configured(2, Some(config.timeout));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let handler = layers::wrap(Box::new(handler), "db", Some(&config), &clock);
    Arc::new(runtime_with(handler, NODE))
}

fn spawn(runtime: &Arc<NodeRuntime>, operation: &'static str, sql: &str) -> smol::Task<Envelope> {
    let runtime = Arc::clone(runtime);
    let payload = json!({"sql": sql, "parameters": []}).as_object().cloned();
    smol::spawn(async move {
        let request = Envelope::request(&Stamp::system(), "store", operation, payload);
        *runtime.route_envelope(Box::new(request)).await
    })
}

/// Terminates the backend running the statement that contains `text`, once it runs.
fn terminate(admin: &mut postgres::Client, text: &str) {
    wait_until("the statement runs", 10, || running(admin, text) == 1);
    admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state = 'active' AND strpos(query, $1) > 0 AND pid <> pg_backend_pid()",
            &[&text],
        )
        .expect("terminates");
}

#[test]
fn a_query_whose_backend_is_terminated_runs_again_and_an_execute_does_not() {
    let cluster = PgCluster::start();
    let runtime = runtime(&cluster.url());
    let mut admin = cluster.admin();

    let query = spawn(&runtime, "db.query", "SELECT 7 AS n FROM pg_sleep(0.3)");
    terminate(&mut admin, "pg_sleep(0.3)");
    let response = within(20, query);
    assert_eq!(response.metadata["attempts"], 2, "{:?}", response.error);
    assert_eq!(ok(response)["rows"][0]["n"], 7);

    let execute = spawn(&runtime, "db.execute", "SELECT 1 FROM pg_sleep(0.31)");
    terminate(&mut admin, "pg_sleep(0.31)");
    let response = within(20, execute);
    assert_eq!(response.metadata.get("attempts"), None);
    let error = failed(response);
    assert!(
        error.message.contains("SQLSTATE 57P01"),
        "{}",
        error.message
    );
}

#[test]
fn the_bindings_pool_size_and_statement_timeout_reach_the_handler() {
    let cluster = PgCluster::start();
    let runtime = runtime(&cluster.url());
    let limits = runtime
        .handlers()
        .next()
        .expect("the db handler")
        .describe()
        .limits;
    assert_eq!(limits["pool_size"], 2);
    assert_eq!(limits["statement_timeout_ms"], 3000);
    let shown = ok(within(
        20,
        spawn(&runtime, "db.query", "SHOW statement_timeout"),
    ));
    assert_eq!(shown["rows"][0]["statement_timeout"], "3s");
    // Six slow statements at once on a pool of two: never more than two connections.
    let statements: Vec<_> = (0..6)
        .map(|_| spawn(&runtime, "db.query", "SELECT 1 AS one FROM pg_sleep(0.05)"))
        .collect();
    for statement in statements {
        ok(within(20, statement));
    }
    let mut admin = cluster.admin();
    let backends: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            &[],
        )
        .expect("asks")
        .get(0);
    assert!(backends <= 2, "{backends} connections on a pool of 2");
}
