//! Chaos against a real throwaway PostgreSQL, through the production binary's HTTP API
//! (issue 21, chaos tests 1 and 2): the server stopped for 5 s under load, then started
//! again; and more slow statements than the pool has connections. Every request is
//! answered within its deadline, the host never crashes, and it heals by itself.
//!
//! The deadlines that hold: `metadata.timeout_ms` when the request carries one, else the
//! binding's `config.timeout_ms` (the timeout layer cuts at the first of the two).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::{http, json_of};
use crate::db::NODE;
use crate::db_faults::wait_until;
use crate::support::daemon::Daemon;
use crate::support::fixture::Fixture;
use crate::support::postgres::PgCluster;
use crate::support::process::PRODUCTION;

/// A 1.1.0 contract whose one db binding has `config` (YAML, indented under `config:`),
/// hosting the node `store`.
fn contract(config: &str) -> Fixture {
    Fixture::new()
        .with(
            "runtime.yaml",
            &format!(
                "schema_version: \"1.1.0\"\nruntime:\n  name: \"chaos\"\n  version: \"1.0.0\"\n  event_bus:\n    kind: \"inmemory\"\n  handlers:\n    - type: \"db\"\n      config:\n{config}  nodes:\n    - slug: \"store\"\n"
            ),
        )
        .with("nodes/store.yaml", NODE)
}

/// The production host serving `fixture`'s contract on a free port, its db at `url`.
fn serve(fixture: &Fixture, url: &str, max_in_flight: &str) -> Daemon {
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--max-in-flight",
        max_in_flight,
        "runtime.yaml",
    ];
    Daemon::start(PRODUCTION, &args, fixture.root(), &[("DATABASE_URL", url)])
}

/// One request as a client saw it: when it was sent and answered, and the response.
struct Answer {
    sent: Instant,
    answered: Instant,
    response: Value,
}

impl Answer {
    fn took(&self) -> Duration {
        self.answered - self.sent
    }

    fn succeeded(&self) -> bool {
        self.response["success"] == true
    }
}

/// Sends a `db.query` of `sql` with `metadata` through the API; a unique envelope id.
fn query(daemon_url: &str, sql: &str, metadata: Value) -> Answer {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let request = json!({
        "envelope_id": format!("00000000-0000-4000-8000-{n:012}"),
        "target_node": "store",
        "operation": "db.query",
        "payload": {"sql": sql, "parameters": []},
        "metadata": metadata,
    });
    let sent = Instant::now();
    let (_, _, body) = http("POST", daemon_url, request.to_string().into_bytes());
    Answer {
        sent,
        answered: Instant::now(),
        response: json_of(&body),
    }
}

/// The request's deadline under test 1, and the binding's (longer) one.
const DEADLINE_MS: u64 = 2000;
/// What an answer may lag behind its deadline on a loaded machine (the API's own way).
const SLACK: Duration = Duration::from_millis(500);

#[test]
fn postgres_down_for_5_s_under_load_fails_within_deadlines_and_heals() {
    let mut cluster = PgCluster::start();
    // Retries and the breaker at their defaults (3 retries from 100 ms; 5 failures open it
    // for 10 s), a binding deadline above the requests' own.
    let fixture = contract("        timeout_ms: 3000\n        pool_size: 5\n");
    let mut daemon = serve(&fixture, &cluster.url(), "16");
    let url = daemon.url("/v1/envelopes");

    // Four clients, each sending one request after another until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, url) = (Arc::clone(&stop), url.clone());
            thread::spawn(move || {
                let mut answers = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let metadata = json!({"timeout_ms": DEADLINE_MS});
                    answers.push(query(&url, "SELECT 1::int4 AS one", metadata));
                    // Paced, so that answers given at once do not spin the machine.
                    thread::sleep(Duration::from_millis(20));
                }
                answers
            })
        })
        .collect();
    let load_started = Instant::now();
    wait_until("the load runs", 10, || {
        load_started.elapsed() > Duration::from_millis(500)
    });

    let stopping = Instant::now();
    cluster.stop("fast");
    let down = Instant::now();
    wait_until("5 s of outage", 10, || {
        down.elapsed() >= Duration::from_secs(5)
    });
    cluster.restart();
    let up = Instant::now();
    // The breaker opened during the outage: the host heals at its first trial call, at
    // most the 10 s reset timeout after it opened.
    wait_until("the host to heal", 20, || {
        query(&url, "SELECT 1::int4 AS one", json!({})).succeeded()
    });
    let healed = Instant::now();
    // Load after healing.
    wait_until("load after healing", 10, || {
        healed.elapsed() > Duration::from_secs(1)
    });
    stop.store(true, Ordering::SeqCst);
    let answers: Vec<Answer> = clients
        .into_iter()
        .flat_map(|client| client.join().expect("a client"))
        .collect();

    let deadline = Duration::from_millis(DEADLINE_MS) + SLACK;
    for answer in &answers {
        assert!(
            answer.took() <= deadline,
            "answered after {:?}: {}",
            answer.took(),
            answer.response
        );
        if !answer.succeeded() {
            assert_eq!(
                answer.response["error"]["code"], "HANDLER_EXECUTION_ERROR",
                "{}",
                answer.response
            );
        }
    }
    let before: Vec<_> = answers.iter().filter(|a| a.answered < stopping).collect();
    let during: Vec<_> = answers
        .iter()
        .filter(|a| a.sent > down && a.answered < up)
        .collect();
    let after: Vec<_> = answers.iter().filter(|a| a.sent > healed).collect();
    assert!(before.iter().all(|a| a.succeeded()), "failed before");
    assert!(!during.is_empty() && during.iter().all(|a| !a.succeeded()));
    assert!(
        !after.is_empty() && after.iter().all(|a| a.succeeded()),
        "a request after healing failed"
    );
    eprintln!(
        "{} requests: {} before, {} during the outage, {} after healing {:?} after restart",
        answers.len(),
        before.len(),
        during.len(),
        after.len(),
        healed - up
    );

    assert!(
        !daemon.has_exited(),
        "the host crashed\n{}",
        daemon.stderr()
    );
    let (status, _, _) = http("GET", &daemon.url("/health/ready"), vec![]);
    assert_eq!(status, 200);
    daemon.signal("TERM");
    assert_eq!(daemon.exit().0, Some(0));
}

#[test]
fn twenty_slow_statements_on_a_pool_of_5_are_all_answered_within_their_deadlines() {
    let cluster = PgCluster::start();
    // The binding's deadline (20 s) outlasts the waves of 2 s the pool runs them in: four,
    // the burst spread evenly over the five connections it opens.
    let fixture = contract("        timeout_ms: 20000\n        pool_size: 5\n");
    let daemon = serve(&fixture, &cluster.url(), "20");
    let url = daemon.url("/v1/envelopes");
    let burst = |metadata: Value| -> Vec<Answer> {
        let requests: Vec<_> = (0..20)
            .map(|_| {
                let (url, metadata) = (url.clone(), metadata.clone());
                thread::spawn(move || query(&url, "SELECT 1 AS one FROM pg_sleep(2)", metadata))
            })
            .collect();
        requests
            .into_iter()
            .map(|request| request.join().expect("an answer"))
            .collect()
    };

    // Under the binding's deadline alone: all succeed, the last wave after about 8 s.
    let answers = burst(json!({}));
    let slowest = answers.iter().map(Answer::took).max().unwrap_or_default();
    for answer in &answers {
        assert!(answer.succeeded(), "{}", answer.response);
    }
    assert!(
        slowest >= Duration::from_secs(6) && slowest < Duration::from_secs(20),
        "the last statement answered after {slowest:?}"
    );

    // Under a request deadline of 3 s: the first wave (five on the warm pool) succeeds,
    // every other request is answered at its deadline, whether its statement ran or it
    // waited for a connection.
    let answers = burst(json!({"timeout_ms": 3000}));
    let succeeded = answers.iter().filter(|a| a.succeeded()).count();
    for answer in &answers {
        assert!(
            answer.took() <= Duration::from_millis(3000) + SLACK,
            "answered after {:?}: {}",
            answer.took(),
            answer.response
        );
        if !answer.succeeded() {
            let message = answer.response["error"]["message"].as_str().unwrap_or("");
            assert!(message.contains("deadline"), "{}", answer.response);
        }
    }
    assert!(
        (1..=5).contains(&succeeded),
        "{succeeded} succeeded: one wave fits in 3 s"
    );
    eprintln!(
        "pool of 5: 20 statements of 2 s answered within {slowest:?}; at a 3 s deadline {succeeded} succeeded"
    );

    // The pool is whole again.
    let answer = query(&url, "SELECT 1 AS one", json!({}));
    assert!(answer.succeeded(), "{}", answer.response);
}
