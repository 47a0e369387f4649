//! The scenarios, each returning its report rows.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use isahc::config::{Configurable, RedirectPolicy};
use isahc::{HttpClient, Request};
use onex_host::envelope::parse::parse_request;
use onex_host::envelope::{RequestContext, Stamp};

use crate::Row;
use crate::http_server::{Reply, TestServer, response};
use crate::measure::{
    DEVELOPMENT, Listening, PRODUCTION, Ratio, children_cpu, contract, median, quantile, requests,
    run_stdin,
};
use crate::postgres::PgCluster;

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Median envelopes/s and CPU µs per envelope of `reps` runs of `binary args` answering
/// the `count` lines of `input`.
fn host_runs(
    binary: &str,
    args: &[&str],
    dir: &std::path::Path,
    input: &std::path::Path,
    count: usize,
    env: &[(&str, &str)],
    reps: usize,
) -> (f64, f64) {
    let (mut rates, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let run = run_stdin(binary, args, dir, input, env);
        assert_eq!(run.responses, count, "{binary} {args:?}");
        rates.push(rate(count, run.wall));
        cpu.push(run.cpu.as_secs_f64() * 1e6 / count as f64);
    }
    (median(&mut rates), median(&mut cpu))
}

/// a. No-I/O throughput and CPU per envelope through `--stdin`, beside serde alone.
pub fn no_io(reps: usize) -> Vec<Row> {
    const COUNT: usize = 200_000;
    let dir = tempfile::tempdir().expect("a directory");
    let contract = contract(
        dir.path(),
        "bench",
        "local",
        &["echo_node"],
        &["local.echo"],
    );
    let text = requests(COUNT, &["echo_node"], "local.echo", |i| {
        format!(r#"{{"n":{i},"s":"hello"}}"#)
    });
    let input = dir.path().join("requests.jsonl");
    std::fs::write(&input, &text).expect("the requests");
    // The same host with every layer at its defaults around the handler (schema 1.1.0,
    // an empty `config`): what the timeout, breaker and retry layers cost.
    let layered = "runtime/layered.yaml";
    let plain = std::fs::read_to_string(dir.path().join(&contract)).expect("the contract");
    let with_config = plain
        .replacen("schema_version: \"1.0.0\"", "schema_version: \"1.1.0\"", 1)
        .replacen(
            "- type: \"local\"\n",
            "- type: \"local\"\n      config: {}\n",
            1,
        );
    std::fs::write(dir.path().join(layered), with_config).expect("the layered contract");

    let stamp = Stamp::system();
    let (mut ceiling, mut host, mut cpu) = (Vec::new(), Vec::new(), Vec::new());
    let mut with_layers = Vec::new();
    for _ in 0..reps {
        let started = Instant::now();
        let mut bytes = 0usize;
        for line in text.lines() {
            let request = parse_request(line.as_bytes(), &stamp).expect("a valid request");
            let (context, payload) = RequestContext::split(request.into_envelope());
            bytes += context.respond(Ok(payload), &stamp).to_json_bytes().len();
        }
        std::hint::black_box(bytes);
        ceiling.push(rate(COUNT, started.elapsed()));

        let run = run_stdin(
            DEVELOPMENT,
            &["--stdin", "--log-level", "warn", &contract],
            dir.path(),
            &input,
            &[],
        );
        assert_eq!(run.responses, COUNT);
        host.push(rate(COUNT, run.wall));
        cpu.push(run.cpu.as_secs_f64() * 1e6 / COUNT as f64);

        let args = ["--stdin", "--log-level", "warn", layered];
        let run = run_stdin(DEVELOPMENT, &args, dir.path(), &input, &[]);
        assert_eq!(run.responses, COUNT);
        with_layers.push(rate(COUNT, run.wall));
    }
    let ratio = Ratio::of_pairs(&host, &ceiling);
    let layers_ratio = Ratio::of_pairs(&with_layers, &host);
    let with_layers = median(&mut with_layers);
    let (ceiling, host, cpu) = (median(&mut ceiling), median(&mut host), median(&mut cpu));
    vec![
        Row {
            scenario: "a. no-I/O envelopes/s, --stdin, local.echo",
            figure: format!("{} env/s", thousands(host)),
            baseline: format!("serde only: {} env/s", thousands(ceiling)),
            met: Some(ratio.median >= 0.6),
            ratio: Some(ratio),
            target: ">= 60% of serde",
        },
        Row {
            scenario: "a. the same, every layer at its defaults (config: {})",
            figure: format!("{} env/s", thousands(with_layers)),
            baseline: format!("no config: {} env/s", thousands(host)),
            met: Some(layers_ratio.median >= 0.98),
            ratio: Some(layers_ratio),
            target: ">= 98% (layers cost < 2%)",
        },
        Row {
            scenario: "a. CPU per envelope",
            figure: format!("{cpu:.2} µs"),
            baseline: format!("serde only: {:.2} µs", 1e6 / ceiling),
            ratio: None,
            target: "<= 5 µs",
            met: Some(cpu <= 5.0),
        },
    ]
}

/// b. Round trip of one envelope at a time through `--stdin`, beside the same lines
/// through `cat`, read by a client that sleeps until the answer comes and by one that
/// polls for it.
///
/// A sleeping client's round trip holds two process wake-ups, which on a virtual machine
/// can cost tens of microseconds each whatever the process does; `cat` shows that floor.
/// A polling client takes the answer the moment it is written and sends the next line at
/// once, so the host is usually still finishing its turn and does not sleep: the figure
/// is then the host's own work per envelope. Where the host falls asleep first, each
/// round trip holds one wake-up again. `cat`, which goes back to sleep the instant it has
/// written, pays a wake-up per line there and is no floor. A host that busy polls
/// (`--busy-poll`) is still awake when the next line comes, so a sleeping client's round
/// trip holds only its own wake-up.
pub fn latency(reps: usize) -> Vec<Row> {
    const COUNT: usize = 20_000;
    const WARM: usize = 2_000;
    let dir = tempfile::tempdir().expect("a directory");
    let contract = contract(
        dir.path(),
        "bench",
        "local",
        &["echo_node"],
        &["local.echo"],
    );
    let text = requests(COUNT + WARM, &["echo_node"], "local.echo", |i| {
        format!(r#"{{"n":{i}}}"#)
    });
    let plain = [DEVELOPMENT, "--stdin", "--log-level", "warn", &contract];
    let busy = [
        DEVELOPMENT,
        "--stdin",
        "--log-level",
        "warn",
        "--busy-poll",
        BUSY_POLL_MICROS,
        &contract,
    ];
    let mut rows = Vec::new();
    for (client, host, scenario) in [
        (
            Client::Sleeps,
            &plain[..],
            "b. latency, one in flight, --stdin, client sleeps",
        ),
        (
            Client::Sleeps,
            &busy[..],
            "b. latency, one in flight, --stdin --busy-poll 50, client sleeps",
        ),
        (
            Client::Polls,
            &plain[..],
            "b. latency, one in flight, --stdin, client polls",
        ),
    ] {
        // A client spinning on the only CPU would take turns with the process it waits
        // for, and measure the scheduler; so would a host busy polling there.
        if (matches!(client, Client::Polls) || host == busy) && cpus() < 2 {
            rows.push(not_run(scenario));
            continue;
        }
        let (mut p50s, mut p99s, mut cpus_used, mut floor50s, mut floor99s) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..reps {
            let (mut times, cpu) = round_trips(host, dir.path(), &text, WARM, client);
            p50s.push(quantile(&mut times, 0.5));
            p99s.push(quantile(&mut times, 0.99));
            cpus_used.push(cpu);
            let (mut floor, _) = round_trips(&["cat"], dir.path(), &text, WARM, client);
            floor50s.push(quantile(&mut floor, 0.5));
            floor99s.push(quantile(&mut floor, 0.99));
        }
        let (p50, p99, cpu) = (median(&mut p50s), median(&mut p99s), median(&mut cpus_used));
        let (floor50, floor99) = (median(&mut floor50s), median(&mut floor99s));
        let mut row = against_target(
            scenario,
            format!("p50 {p50:.1} µs, p99 {p99:.1} µs; host CPU {cpu:.0} µs/envelope"),
            "p99 <= 50 µs",
            p99 <= 50.0,
        );
        row.baseline = format!("cat: p50 {floor50:.1} µs, p99 {floor99:.1} µs");
        rows.push(row);
    }
    rows
}

/// The busy-polling window the benchmark tries (`--busy-poll`): past the ~20 µs a client
/// here takes to wake and send its next line.
const BUSY_POLL_MICROS: &str = "50";

/// How many CPUs this process may use.
fn cpus() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// The row of a scenario that needs a second CPU on a machine with one.
fn not_run(scenario: &'static str) -> Row {
    let mut row = against_target(scenario, "not run".to_owned(), "needs 2 CPUs", false);
    row.met = None;
    row
}

/// How the latency client waits for each answer.
#[derive(Clone, Copy)]
enum Client {
    /// Blocks in `read` until the answer comes.
    Sleeps,
    /// Reads without blocking, over and over, until the answer is there.
    Polls,
}

/// Microseconds from writing each line of `text` (one write) to `command`'s standard
/// input to reading its answering line, skipping the first `warm`; and the CPU time
/// `command` used per line, in microseconds.
fn round_trips(
    command: &[&str],
    dir: &std::path::Path,
    text: &str,
    warm: usize,
    client: Client,
) -> (Vec<f64>, f64) {
    let cpu_before = children_cpu();
    let mut child = Command::new(command[0])
        .args(&command[1..])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the process starts");
    let mut input = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let mut output: Box<dyn Read> = match client {
        Client::Sleeps => Box::new(stdout),
        // A description of its own, so that only this one is non-blocking.
        Client::Polls => Box::new(
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(format!("/proc/self/fd/{}", stdout.as_raw_fd()))
                .expect("the pipe opens anew"),
        ),
    };
    let (mut line, mut answer) = (Vec::new(), vec![0u8; 64 * 1024]);
    let mut times = Vec::with_capacity(text.len() / 64);
    for (i, request) in text.lines().enumerate() {
        // One write per line: a line in two writes could wake the reader twice.
        line.clear();
        line.extend_from_slice(request.as_bytes());
        line.push(b'\n');
        let started = Instant::now();
        input.write_all(&line).expect("writes");
        // One request is out, so whatever arrives belongs to its answer.
        let mut got = 0;
        while got == 0 || answer[got - 1] != b'\n' {
            match output.read(&mut answer[got..]) {
                Ok(0) => panic!("{} ended before answering", command[0]),
                Ok(read) => got += read,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    std::hint::spin_loop()
                }
                Err(error) => panic!("reading answers: {error}"),
            }
        }
        if i >= warm {
            times.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    drop(input);
    let _ = child.wait();
    let lines = text.lines().count().max(1) as f64;
    let cpu = (children_cpu() - cpu_before).as_secs_f64() * 1e6 / lines;
    (times, cpu)
}

/// A row with no baseline: the figure against its target alone.
fn against_target(scenario: &'static str, figure: String, target: &'static str, met: bool) -> Row {
    Row {
        scenario,
        figure,
        baseline: String::new(),
        ratio: None,
        target,
        met: Some(met),
    }
}

/// A throughput row: the host's envelopes/s against a raw client's rate, run by run
/// (`client` names the client and the unit of its rate).
fn beside_raw(
    scenario: &'static str,
    mut host: Vec<f64>,
    mut raw: Vec<f64>,
    client: &str,
    least: f64,
    target: &'static str,
) -> Row {
    let ratio = Ratio::of_pairs(&host, &raw);
    Row {
        scenario,
        figure: format!("{} env/s", thousands(median(&mut host))),
        baseline: format!("{client}: {}", thousands(median(&mut raw))),
        met: Some(ratio.median >= least),
        ratio: Some(ratio),
        target,
    }
}

/// Reads a response's body to the end, as any client must.
fn drain(mut response: isahc::Response<isahc::Body>) {
    let mut sink = Vec::new();
    let _ = response.body_mut().read_to_end(&mut sink);
}

fn ok_server() -> TestServer {
    TestServer::start(|_| Reply::Send(response("200 OK", &[("Content-Type", "text/plain")], b"ok")))
}

fn raw_client() -> HttpClient {
    HttpClient::builder()
        .redirect_policy(RedirectPolicy::None)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a client")
}

/// Runs `count` calls of `call` split over `threads` threads; returns calls per second.
fn concurrently(count: usize, threads: usize, call: impl Fn(usize) + Send + Sync + 'static) -> f64 {
    let call = Arc::new(call);
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let call = Arc::clone(&call);
            thread::spawn(move || (t..count).step_by(threads).for_each(|i| call(i)))
        })
        .collect();
    workers
        .into_iter()
        .for_each(|w| w.join().expect("a worker"));
    rate(count, started.elapsed())
}

/// c. HTTP handler throughput beside a raw isahc client, 1 and 8 in flight.
pub fn http(reps: usize) -> Vec<Row> {
    const COUNT: usize = 5_000;
    let server = ok_server();
    let dir = tempfile::tempdir().expect("a directory");
    let contract = contract(dir.path(), "bench", "http", &["web"], &["http.get"]);
    let url = server.url("/item");
    let input = dir.path().join("requests.jsonl");
    std::fs::write(
        &input,
        requests(COUNT, &["web"], "http.get", |i| {
            format!(r#"{{"url":"{url}/{i}"}}"#)
        }),
    )
    .expect("requests");
    let mut rows = Vec::new();
    for in_flight in [1usize, 8] {
        let (mut host, mut raw) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let n = in_flight.to_string();
            let run = run_stdin(
                PRODUCTION,
                &[
                    "--stdin",
                    "--max-in-flight",
                    &n,
                    "--log-level",
                    "warn",
                    &contract,
                ],
                dir.path(),
                &input,
                &[],
            );
            assert_eq!(run.responses, COUNT);
            host.push(rate(COUNT, run.wall));
            let (client, url) = (raw_client(), url.clone());
            raw.push(concurrently(COUNT, in_flight, move |i| {
                drain(client.get(format!("{url}/{i}")).expect("a response"));
            }));
        }
        let scenario = if in_flight == 1 {
            "c. HTTP GET envelopes/s, 1 in flight"
        } else {
            "c. HTTP GET envelopes/s, 8 in flight"
        };
        rows.push(beside_raw(
            scenario,
            host,
            raw,
            "raw isahc, req/s",
            0.9,
            ">= 90% of raw",
        ));
    }
    rows
}

/// d. DB handler throughput beside raw `postgres` calls, 1 and 5 in flight, and 1 in
/// flight with the host busy polling (`--busy-poll`), which takes each reply without
/// being woken for it.
pub fn db(reps: usize) -> Vec<Row> {
    // Enough that the host's start (a process, a contract, a first connection) is not a
    // measurable part of its throughput: with 5,000 it was several percent at 5 in flight.
    const COUNT: usize = 20_000;
    let cluster = PgCluster::start();
    let url = cluster.url();
    let dir = tempfile::tempdir().expect("a directory");
    let contract = contract(dir.path(), "bench", "db", &["store"], &["db.query"]);
    let input = dir.path().join("requests.jsonl");
    let payload = |i: usize| {
        format!(
            r#"{{"sql":"SELECT $1::int4 AS n","parameters":[{}]}}"#,
            i % 1000
        )
    };
    std::fs::write(&input, requests(COUNT, &["store"], "db.query", payload)).expect("requests");
    let mut rows = Vec::new();
    for (in_flight, busy_poll, scenario) in [
        (1usize, false, "d. DB query envelopes/s, 1 in flight"),
        (
            1,
            true,
            "d. DB query envelopes/s, 1 in flight, --busy-poll 50",
        ),
        (5, false, "d. DB query envelopes/s, 5 in flight"),
    ] {
        if busy_poll && cpus() < 2 {
            rows.push(not_run(scenario));
            continue;
        }
        let (mut host, mut raw) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let n = in_flight.to_string();
            let mut args = vec!["--stdin", "--max-in-flight", &n, "--log-level", "warn"];
            if busy_poll {
                args.extend(["--busy-poll", BUSY_POLL_MICROS]);
            }
            args.push(&contract);
            let run = run_stdin(
                PRODUCTION,
                &args,
                dir.path(),
                &input,
                &[("DATABASE_URL", &url)],
            );
            assert_eq!(run.responses, COUNT);
            host.push(rate(COUNT, run.wall));
            let started = Instant::now();
            let workers: Vec<_> = (0..in_flight)
                .map(|t| {
                    let url = url.clone();
                    thread::spawn(move || {
                        let mut client =
                            postgres::Client::connect(&url, postgres::NoTls).expect("connects");
                        let statement = client.prepare("SELECT $1::int4 AS n").expect("prepares");
                        for i in (t..COUNT).step_by(in_flight) {
                            let n = (i % 1000) as i32;
                            let rows = client.query(&statement, &[&n]).expect("a row");
                            std::hint::black_box(rows);
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .for_each(|w| w.join().expect("a worker"));
            raw.push(rate(COUNT, started.elapsed()));
        }
        rows.push(beside_raw(
            scenario,
            host,
            raw,
            "raw postgres, q/s",
            0.85,
            ">= 85% of raw",
        ));
    }
    rows
}

/// e. Latency a sidecar adds: `POST /v1/envelopes` doing a GET, beside the GET itself.
pub fn sidecar(reps: usize) -> Vec<Row> {
    const COUNT: usize = 3_000;
    const WARM: usize = 300;
    let server = ok_server();
    let dir = tempfile::tempdir().expect("a directory");
    let contract = contract(dir.path(), "bench", "http", &["web"], &["http.get"]);
    let host = Listening::start(PRODUCTION, &[&contract], dir.path(), &[]);
    let client = raw_client();
    let envelope = requests(1, &["web"], "http.get", |_| {
        format!(r#"{{"url":"{}"}}"#, server.url("/item"))
    });
    let timed = |call: &dyn Fn()| -> Vec<f64> {
        let mut times = Vec::with_capacity(COUNT);
        for i in 0..COUNT + WARM {
            let started = Instant::now();
            call();
            if i >= WARM {
                times.push(started.elapsed().as_secs_f64() * 1e6);
            }
        }
        times
    };
    let (mut added50, mut added99, mut direct50, mut direct99) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        let mut direct = timed(&|| {
            drain(client.get(server.url("/item")).expect("a response"));
        });
        let mut through = timed(&|| {
            let request = Request::post(host.url("/v1/envelopes"))
                .body(envelope.clone())
                .expect("a request");
            let response = client.send(request).expect("a response");
            assert_eq!(response.status(), 200);
            drain(response);
        });
        let (d50, d99) = (quantile(&mut direct, 0.5), quantile(&mut direct, 0.99));
        added50.push(quantile(&mut through, 0.5) - d50);
        added99.push(quantile(&mut through, 0.99) - d99);
        direct50.push(d50);
        direct99.push(d99);
    }
    let (a50, a99) = (median(&mut added50), median(&mut added99));
    vec![Row {
        scenario: "e. latency added as a sidecar (API + http.get)",
        figure: format!("+{a50:.0} µs p50, +{a99:.0} µs p99"),
        baseline: format!(
            "direct GET: p50 {:.0} µs, p99 {:.0} µs",
            median(&mut direct50),
            median(&mut direct99)
        ),
        ratio: None,
        target: "<= +300 µs p99",
        met: Some(a99 <= 300.0),
    }]
}

/// f. Peak RSS with 10 nodes under load, time to ready, binary size.
pub fn footprint(reps: usize) -> Vec<Row> {
    let dir = tempfile::tempdir().expect("a directory");
    let nodes: Vec<String> = (0..10).map(|i| format!("node_{i}")).collect();
    let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let contract = contract(dir.path(), "bench", "local", &nodes, &["local.echo"]);
    let mut ready = Vec::new();
    for _ in 0..reps {
        let host = Listening::start(DEVELOPMENT, &[&contract], dir.path(), &[]);
        ready.push(host.ready_after.as_secs_f64() * 1e3);
    }
    let host = Listening::start(
        DEVELOPMENT,
        &["--max-in-flight", "8", &contract],
        dir.path(),
        &[],
    );
    let bodies = requests(400, &nodes, "local.echo", |i| {
        format!(r#"{{"n":{i},"s":"{}"}}"#, "x".repeat(512))
    });
    let bodies: Arc<Vec<String>> = Arc::new(bodies.lines().map(str::to_owned).collect());
    let (client, url) = (raw_client(), host.url("/v1/envelopes"));
    concurrently(20_000, 8, move |i| {
        let request = Request::post(&url)
            .body(bodies[i % bodies.len()].clone())
            .expect("a request");
        drain(client.send(request).expect("a response"));
    });
    let peak = host.peak_rss_kib() as f64 / 1024.0;
    let size = std::fs::metadata(PRODUCTION).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    let ready = median(&mut ready);
    vec![
        against_target(
            "f. peak RSS, 10 nodes, 20,000 API envelopes",
            format!("{peak:.1} MiB"),
            "<= 16 MB",
            peak <= 16.0,
        ),
        against_target(
            "f. start to ready (--listen)",
            format!("{ready:.1} ms"),
            "<= 20 ms",
            ready <= 20.0,
        ),
        against_target(
            "f. binary size (omnibase-runtime-host)",
            format!("{size:.1} MB"),
            "<= 12 MB",
            size <= 12.0,
        ),
    ]
}

/// g. How the no-I/O cost grows with payload size and with the in-flight bound.
pub fn growth(reps: usize) -> Vec<Row> {
    let dir = tempfile::tempdir().expect("a directory");
    let contract = contract(
        dir.path(),
        "bench",
        "local",
        &["echo_node"],
        &["local.echo"],
    );
    let mut rows = Vec::new();
    let sizes: [(&'static str, usize, usize); 3] = [
        ("g. payload 1 KB, local.echo", 1024, 50_000),
        ("g. payload 64 KB, local.echo", 64 * 1024, 2_000),
        ("g. payload 1 MB, local.echo", 1024 * 1024, 200),
    ];
    for (scenario, size, count) in sizes {
        let filler = "x".repeat(size);
        let input = dir.path().join(format!("size-{size}.jsonl"));
        std::fs::write(
            &input,
            requests(count, &["echo_node"], "local.echo", |_| {
                format!(r#"{{"s":"{filler}"}}"#)
            }),
        )
        .expect("requests");
        let args = ["--stdin", "--log-level", "warn", &contract];
        let (rate, cpu) = host_runs(DEVELOPMENT, &args, dir.path(), &input, count, &[], reps);
        rows.push(Row {
            scenario,
            figure: format!("{} env/s, {cpu:.1} µs CPU/env", thousands(rate)),
            baseline: format!("{:.0} MB/s of payload", rate * size as f64 / 1e6),
            ratio: None,
            target: "",
            met: None,
        });
    }
    let input = dir.path().join("small.jsonl");
    const COUNT: usize = 100_000;
    std::fs::write(
        &input,
        requests(COUNT, &["echo_node"], "local.echo", |i| {
            format!(r#"{{"n":{i}}}"#)
        }),
    )
    .expect("requests");
    for (scenario, in_flight) in [
        ("g. in flight 1, local.echo", "1"),
        ("g. in flight 8, local.echo", "8"),
        ("g. in flight 64, local.echo", "64"),
    ] {
        let args = [
            "--stdin",
            "--max-in-flight",
            in_flight,
            "--log-level",
            "warn",
            &contract,
        ];
        let (rate, cpu) = host_runs(DEVELOPMENT, &args, dir.path(), &input, COUNT, &[], reps);
        rows.push(Row {
            scenario,
            figure: format!("{} env/s, {cpu:.2} µs CPU/env", thousands(rate)),
            baseline: String::new(),
            ratio: None,
            target: "",
            met: None,
        });
    }
    rows
}
