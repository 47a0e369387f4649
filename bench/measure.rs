//! Measuring tools: medians, percentiles, child CPU time, host processes and contracts.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The production and development binaries of this build.
pub const PRODUCTION: &str = env!("CARGO_BIN_EXE_omnibase-runtime-host");
pub const DEVELOPMENT: &str = env!("CARGO_BIN_EXE_omninode-runtime-host-dev");

/// The median of `values` (which need not be sorted).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A figure over its baseline, run by run: each run is divided by the baseline run beside
/// it, so that a pair shares the machine's load of the moment (on a shared machine the
/// load drifts between runs by more than the differences measured).
pub struct Ratio {
    pub median: f64,
    pub low: f64,
    pub high: f64,
}

impl Ratio {
    /// The ratios of `figures[i]` to `baselines[i]`.
    pub fn of_pairs(figures: &[f64], baselines: &[f64]) -> Ratio {
        assert_eq!(figures.len(), baselines.len(), "one baseline run per run");
        let mut ratios: Vec<f64> = figures
            .iter()
            .zip(baselines)
            .map(|(figure, baseline)| figure / baseline)
            .collect();
        let median = median(&mut ratios);
        Ratio {
            median,
            low: ratios[0],
            high: ratios[ratios.len() - 1],
        }
    }
}

/// The `q` quantile (0..1) of `values`.
pub fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let index = ((values.len() as f64 - 1.0) * q).round() as usize;
    values[index]
}

/// CPU time used so far by children this process has waited for (user + system).
pub fn children_cpu() -> Duration {
    // cutime and cstime are fields 16 and 17 of the line.
    stat_ticks("self", 16, 17)
}

/// CPU time used so far by process `pid` (`self` for this one), all its threads, user
/// and system.
pub fn cpu_of(pid: &str) -> Duration {
    // utime and stime are fields 14 and 15 of the line.
    stat_ticks(pid, 14, 15)
}

/// Fields `a` + `b` (numbered from 1, as in proc(5)) of `/proc/PID/stat`, clock ticks of
/// 10 ms.
fn stat_ticks(pid: &str, a: usize, b: usize) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3.
    let fields: Vec<&str> = stat
        .rsplit(") ")
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |field: usize| {
        fields
            .get(field - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(a) + ticks(b)) * 10)
}

/// How a host run over a file of request lines went.
pub struct Run {
    pub wall: Duration,
    pub cpu: Duration,
    pub responses: usize,
}

/// Runs `binary args` with `input` on standard input, counting response lines.
pub fn run_stdin(
    binary: &str,
    args: &[&str],
    dir: &Path,
    input: &Path,
    env: &[(&str, &str)],
) -> Run {
    let before = children_cpu();
    let started = Instant::now();
    let mut child = Command::new(binary)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .stdin(std::fs::File::open(input).expect("the input file"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the host starts");
    let mut out = child.stdout.take().expect("stdout");
    let mut responses = 0;
    let mut buffer = vec![0u8; 1 << 16];
    while let Ok(n) = out.read(&mut buffer) {
        if n == 0 {
            break;
        }
        responses += buffer[..n].iter().filter(|&&b| b == b'\n').count();
    }
    let status = child.wait().expect("the host exits");
    assert!(status.success(), "{binary} {args:?} failed: {status}");
    Run {
        wall: started.elapsed(),
        cpu: children_cpu() - before,
        responses,
    }
}

/// A host serving `--listen 127.0.0.1:0`, with its address; killed when dropped.
pub struct Listening {
    pub child: Child,
    pub addr: String,
    pub ready_after: Duration,
}

impl Listening {
    /// Starts `binary` with `--listen 127.0.0.1:0` and `args`; waits until it is ready.
    pub fn start(binary: &str, args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Listening {
        let started = Instant::now();
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0", "--log-level", "info"])
            .args(args)
            .current_dir(dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the host starts");
        let (lines, seen) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.send((line, Instant::now())).is_err() {
                    break;
                }
            }
        });
        // Owned by a `Listening` from here on, so that any panic below kills it.
        let mut host = Listening {
            child,
            addr: String::new(),
            ready_after: Duration::ZERO,
        };
        loop {
            let (line, at) = seen
                .recv_timeout(Duration::from_secs(30))
                .expect("the host logs its start");
            if let Some(rest) = line.split("HTTP API listening on http://").nth(1) {
                host.addr = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
            if line.contains(" ready. Listening on topic") {
                assert!(!host.addr.is_empty(), "the API address is logged first");
                host.ready_after = at - started;
                return host;
            }
        }
    }

    /// `http://ADDR` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The host's peak resident set so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A runtime contract named `name` with `handlers` and `nodes`, each node declaring
/// `operations` of `handler_type`, written into `dir` (runtime/r.yaml, nodes/*.yaml).
pub fn contract(
    dir: &Path,
    name: &str,
    handler: &str,
    nodes: &[&str],
    operations: &[&str],
) -> String {
    let write = |path: &Path, text: String| {
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("directories");
        std::fs::write(path, text).expect("a contract file");
    };
    let slugs: String = nodes
        .iter()
        .map(|n| format!("    - slug: \"{n}\"\n"))
        .collect();
    write(
        &dir.join("runtime/r.yaml"),
        format!(
            "schema_version: \"1.0.0\"\nruntime:\n  name: \"{name}\"\n  version: \"1.0.0\"\n  event_bus:\n    kind: \"inmemory\"\n  handlers:\n    - type: \"{handler}\"\n  nodes:\n{slugs}"
        ),
    );
    let operations: Vec<String> = operations.iter().map(|op| format!("\"{op}\"")).collect();
    for node in nodes {
        write(
            &dir.join(format!("nodes/{node}.yaml")),
            format!(
                "schema_version: \"1.0.0\"\nnode_version: \"1.0.0\"\nname: \"{node}\"\nnode_type: \"EFFECT_GENERIC\"\nio_operations:\n  - type: \"{handler}\"\n    operations: [{}]\n",
                operations.join(", ")
            ),
        );
    }
    "runtime/r.yaml".to_owned()
}

/// `count` request lines for `operation` on the nodes in turn, with `payload(i)`.
pub fn requests(
    count: usize,
    nodes: &[&str],
    operation: &str,
    payload: impl Fn(usize) -> String,
) -> String {
    let mut text = String::with_capacity(count * 160);
    for i in 0..count {
        text.push_str(&format!(
            "{{\"envelope_id\":\"{}\",\"target_node\":\"{}\",\"operation\":\"{operation}\",\"payload\":{}}}\n",
            uuid::Uuid::new_v4(),
            nodes[i % nodes.len()],
            payload(i)
        ));
    }
    text
}
