//! The benchmark suite: `just bench` (glibc) or `just bench-static` (musl).
//!
//! Drives this build's release binaries the way users run them and prints, as medians
//! of several runs, each figure beside a baseline measured in the same run:
//!
//! - a. no-I/O throughput through `--stdin` (`local.echo`), beside a serde-only loop;
//! - b. per-envelope latency with one in flight, through `--stdin`, the client sleeping
//!   until each answer comes (the host sleeping too, and busy polling) and polling for it;
//! - c. HTTP handler throughput beside a raw isahc client, 1 and 8 in flight;
//! - d. DB handler throughput beside raw `postgres` calls, 1 (also busy polling) and 5 in
//!   flight;
//! - e. latency added as a sidecar (`POST /v1/envelopes` doing a GET) beside the direct GET;
//! - f. peak RSS with 10 nodes under load, time from start to ready, binary size;
//! - g. how the cost grows with payload size (1 KB, 64 KB, 1 MB) and the in-flight bound;
//! - k. envelopes/s of one host on the kafka bus beside a raw rdkafka loop (bench/kafka.rs);
//! - l. kafka work sharing: three hosts of one group beside one, each request waiting 5 ms
//!   for its upstream (bench/kafka_sharing.rs).
//!
//! - s. the soak, only when asked for (`just soak`; bench/soak.rs).
//!
//! `just bench ad` runs only scenarios a and d.
//!
//! The machines are shared and noisy: compare ratios. Each run of a figure is divided by
//! the baseline run just before or after it, and the report gives the median of those
//! ratios with their range.

#[path = "../tests/support/http_server.rs"]
#[allow(dead_code)]
mod http_server;
mod kafka;
#[path = "../tests/support/kafka.rs"]
#[allow(dead_code)]
mod kafka_broker;
mod kafka_host;
mod kafka_sharing;
mod measure;
#[path = "../tests/support/postgres.rs"]
#[allow(dead_code)]
mod postgres;
#[path = "../tests/support/process.rs"]
#[allow(dead_code)]
mod process;
mod scenarios;
mod soak;

/// A scenario: given the number of runs, its report rows.
type Scenario = fn(usize) -> Vec<Row>;

/// One line of the report.
pub struct Row {
    pub scenario: &'static str,
    pub figure: String,
    pub baseline: String,
    /// The figure over its baseline, where they compare.
    pub ratio: Option<measure::Ratio>,
    pub target: &'static str,
    pub met: Option<bool>,
}

fn main() {
    let reps: usize = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let build = if cfg!(target_env = "musl") {
        "static musl (mimalloc)"
    } else {
        "glibc"
    };
    println!("onex runtime host benchmarks: {build} build, medians of {reps} runs\n");
    let all: [(&str, Scenario); 9] = [
        ("a", scenarios::no_io),
        ("b", scenarios::latency),
        ("c", scenarios::http),
        ("d", scenarios::db),
        ("e", scenarios::sidecar),
        ("f", scenarios::footprint),
        ("g", scenarios::growth),
        ("k", kafka::kafka),
        ("l", kafka_sharing::sharing),
    ];
    let mut rows = Vec::new();
    for (key, scenario) in all {
        if only.as_deref().is_none_or(|o| o.contains(key)) {
            rows.extend(scenario(reps));
        }
    }
    // Minutes long: never part of the whole suite.
    if only.as_deref().is_some_and(|o| o.contains('s')) {
        rows.extend(soak::soak(reps));
    }
    println!("| scenario | figure | baseline | ratio (range) | target | met |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for row in &rows {
        let ratio = row.ratio.as_ref().map_or(String::new(), |r| {
            format!(
                "{:.0}% ({:.0}–{:.0})",
                r.median * 100.0,
                r.low * 100.0,
                r.high * 100.0
            )
        });
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        println!(
            "| {} | {} | {} | {ratio} | {} | {met} |",
            row.scenario, row.figure, row.baseline, row.target
        );
    }
}
