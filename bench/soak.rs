//! s. The soak (`just soak`, not in CI nor in a plain `just bench`): `SOAK_SECONDS`
//! (default 600) of 1 MiB payloads through the production host's API, one request in
//! ten failing, sampling the host's resident memory; the memory must stay flat and
//! under 128 MiB.
//!
//! Each request is a `db.query` echoing a 1 MiB text parameter from a throwaway
//! PostgreSQL, so 1 MiB goes each way; every tenth divides by zero instead (SQLSTATE
//! 22012, a handler error that is never retried). The db binding has a `config` with the
//! defaults (schema 1.1.0), so the requests go through every layer. Failures one in ten
//! never make five in a row: the breaker stays closed, as it should.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use isahc::config::Configurable;
use isahc::{HttpClient, Request};

use crate::Row;
use crate::measure::{Listening, PRODUCTION};
use crate::postgres::PgCluster;

/// Clients sending one request after another, and the host's in-flight bound.
const CLIENTS: usize = 4;
/// The payload: 1 MiB of text.
const PAYLOAD: usize = 1024 * 1024;
/// The limit the host's resident memory must stay under (the container's).
const LIMIT_MIB: f64 = 128.0;
/// How much the late resident memory may exceed the early one and still count as flat.
const FLAT_MIB: f64 = 8.0;

/// One sample of the host's memory, in KiB: resident now (VmRSS) and at its peak (VmHWM).
#[derive(Clone, Copy)]
struct Sample {
    at: Duration,
    rss: u64,
    peak: u64,
}

fn sample(pid: u32, at: Duration) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
    };
    Some(Sample {
        at,
        rss: field("VmRSS:")?,
        peak: field("VmHWM:")?,
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The soak: its one report row (the runs argument does not apply).
pub fn soak(_reps: usize) -> Vec<Row> {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let cluster = PgCluster::start();
    let dir = tempfile::tempdir().expect("a directory");
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("directories");
        std::fs::write(path, text).expect("a contract file");
    };
    write(
        "runtime/soak.yaml",
        "schema_version: \"1.1.0\"\nruntime:\n  name: \"soak\"\n  version: \"1.0.0\"\n  event_bus:\n    kind: \"inmemory\"\n  handlers:\n    - type: \"db\"\n      config:\n        timeout_ms: 30000\n  nodes:\n    - slug: \"store\"\n",
    );
    write(
        "nodes/store.yaml",
        "schema_version: \"1.0.0\"\nnode_version: \"1.0.0\"\nname: \"store\"\nnode_type: \"EFFECT_GENERIC\"\nio_operations:\n  - type: \"db\"\n    operations: [\"db.query\"]\n",
    );
    let in_flight = CLIENTS.to_string();
    let host = Listening::start(
        PRODUCTION,
        &["--max-in-flight", &in_flight, "runtime/soak.yaml"],
        dir.path(),
        &[("DATABASE_URL", &cluster.url())],
    );
    let pid = host.child.id();
    let url = host.url("/v1/envelopes");
    let filler = "x".repeat(PAYLOAD);
    let echo = Arc::new(format!(
        r#"{{"envelope_id":"6f1c1a4e-0000-4000-8000-000000000005","target_node":"store","operation":"db.query","payload":{{"sql":"SELECT $1::text AS s","parameters":["{filler}"]}}}}"#
    ));
    let failing = Arc::new(
        r#"{"envelope_id":"6f1c1a4e-0000-4000-8000-000000000006","target_node":"store","operation":"db.query","payload":{"sql":"SELECT 1/0 AS n"}}"#
            .to_owned(),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed, wrong) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (stop, url, echo, failing) = (
                Arc::clone(&stop),
                url.clone(),
                Arc::clone(&echo),
                Arc::clone(&failing),
            );
            let (sent, failed, wrong) =
                (Arc::clone(&sent), Arc::clone(&failed), Arc::clone(&wrong));
            thread::spawn(move || {
                let client = HttpClient::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .expect("a client");
                while !stop.load(Ordering::SeqCst) {
                    let n = sent.fetch_add(1, Ordering::SeqCst);
                    // One in ten fails, spread evenly over the clients' requests.
                    let body = if n % 10 == 9 { &failing } else { &echo };
                    let request = Request::post(&url)
                        .header("content-type", "application/json")
                        .body(body.as_bytes().to_vec())
                        .expect("a request");
                    let mut text = String::new();
                    if let Ok(mut response) = client.send(request) {
                        let _ = response.body_mut().read_to_string(&mut text);
                    }
                    // Judged by its text, not parsed: parsing 1 MiB answers would cost the
                    // client more CPU than the host. A failure names its SQLSTATE.
                    if text.contains("\"success\":false") {
                        failed.fetch_add(1, Ordering::SeqCst);
                        if !text.contains("22012") {
                            wrong.fetch_add(1, Ordering::SeqCst);
                        }
                    } else if text.len() < PAYLOAD {
                        wrong.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();

    let started = Instant::now();
    let mut samples = Vec::new();
    let mut printed = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(seconds) {
        thread::sleep(Duration::from_millis(500));
        let Some(s) = sample(pid, started.elapsed()) else {
            break;
        };
        samples.push(s);
        if s.at >= printed {
            println!(
                "soak {:>4} s: RSS {:.1} MiB, peak {:.1} MiB, {} requests, {} failed",
                s.at.as_secs(),
                mib(s.rss),
                mib(s.peak),
                sent.load(Ordering::SeqCst),
                failed.load(Ordering::SeqCst)
            );
            printed += Duration::from_secs(30);
        }
    }
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        let _ = client.join();
    }
    let alive = sample(pid, started.elapsed()).is_some();
    drop(host);

    // Early: the samples of the first tenth past the first 10 s (warm-up); late: the
    // last tenth. Flat: the late median exceeds the early one by at most FLAT_MIB.
    let median_of = |part: &[Sample]| -> f64 {
        let mut values: Vec<f64> = part.iter().map(|s| mib(s.rss)).collect();
        crate::measure::median(&mut values)
    };
    let warm: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.at > Duration::from_secs(10))
        .collect();
    let tenth = (warm.len() / 10).max(1);
    let early = median_of(&warm[..tenth.min(warm.len())]);
    let late = median_of(&warm[warm.len().saturating_sub(tenth)..]);
    let peak = samples.last().map_or(0.0, |s| mib(s.peak));
    let (sent, failed, wrong) = (
        sent.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst),
        wrong.load(Ordering::SeqCst),
    );
    let met = alive && wrong == 0 && late - early <= FLAT_MIB && peak < LIMIT_MIB;
    vec![Row {
        scenario: "s. soak, 1 MiB db.query echoes via the API, 1 in 10 failing",
        figure: format!(
            "{seconds} s: {sent} requests, {failed} failed as meant, {wrong} wrong; RSS {early:.1} MiB early, {late:.1} MiB late, peak {peak:.1} MiB"
        ),
        baseline: String::new(),
        ratio: None,
        target: "flat (late ≤ early + 8 MiB), peak < 128 MiB",
        met: Some(met),
    }]
}
