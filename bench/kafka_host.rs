//! A host process on the kafka bus as the kafka scenarios (k, l) drive it: its contract
//! (one node with one operation), its API address, the partitions it owns (from its log)
//! and the responses it has published (from its `/metrics`).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use crate::measure::cpu_of;

/// What a kafka host runs: its group, input and output, and the one node it serves.
pub struct Setup<'a> {
    pub bootstrap: &'a str,
    pub group: &'a str,
    pub input: &'a str,
    pub output: &'a str,
    /// `local` or `http`.
    pub handler: &'a str,
    pub operation: &'a str,
    pub session_timeout_ms: u64,
}

/// The runtime contract [`write_contract`] writes, relative to its directory.
pub const CONTRACT: &str = "runtime/k.yaml";

/// A new directory holding `setup`'s runtime contract ([`CONTRACT`]) and its node.
pub fn write_contract(setup: &Setup<'_>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a directory");
    let write = |path: &str, text: String| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("directories");
        std::fs::write(path, text).expect("a contract");
    };
    let Setup {
        bootstrap,
        group,
        input,
        output,
        handler,
        operation,
        session_timeout_ms,
    } = setup;
    write(
        CONTRACT,
        format!(
            "schema_version: \"1.1.0\"\nruntime:\n  name: \"bench\"\n  version: \"1.0.0\"\n  event_bus:\n    kind: \"kafka\"\n    config:\n      bootstrap_servers: \"{bootstrap}\"\n      consumer_group: \"{group}\"\n      session_timeout_ms: {session_timeout_ms}\n      topics:\n        input: \"{input}\"\n        output: \"{output}\"\n  handlers:\n    - type: \"{handler}\"\n  nodes:\n    - slug: \"bench_node\"\n"
        ),
    );
    write(
        "nodes/bench_node.yaml",
        format!(
            "schema_version: \"1.0.0\"\nnode_version: \"1.0.0\"\nname: \"bench_node\"\nnode_type: \"EFFECT_GENERIC\"\nio_operations:\n  - type: \"{handler}\"\n    operations: [\"{operation}\"]\n"
        ),
    );
    dir
}

/// A running host; killed when dropped.
pub struct KafkaHost {
    child: Child,
    addr: String,
    /// How many input partitions it owns, from its latest assignment or revocation.
    owned: Arc<AtomicUsize>,
}

impl KafkaHost {
    /// Starts `binary` on [`CONTRACT`] in `dir` with `--max-in-flight in_flight`; waits
    /// until its API listens.
    pub fn start(binary: &str, dir: &Path, in_flight: usize) -> KafkaHost {
        let in_flight = in_flight.to_string();
        let mut child = Command::new(binary)
            .args([CONTRACT, "--listen", "127.0.0.1:0"])
            .args(["--max-in-flight", &in_flight, "--log-level", "info"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the host starts");
        let stderr = child.stderr.take().expect("stderr");
        let owned = Arc::new(AtomicUsize::new(0));
        let (addr_tx, addr_rx) = mpsc::channel();
        let owns = Arc::clone(&owned);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("HTTP API listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = addr_tx.send(addr.to_owned());
                }
                // "kafka: partitions assigned: [..]; now owns [0, 1]"
                if let Some(rest) = line.split("now owns [").nth(1) {
                    let list = rest.split(']').next().unwrap_or_default();
                    let count = list.split(',').filter(|p| !p.trim().is_empty()).count();
                    owns.store(count, Ordering::Release);
                }
            }
        });
        let mut host = KafkaHost {
            child,
            addr: String::new(),
            owned,
        };
        host.addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the API address");
        host
    }

    /// How many input partitions it owns now.
    pub fn owned(&self) -> usize {
        self.owned.load(Ordering::Acquire)
    }

    /// How many records it has published (`onex_bus_records_produced_total`).
    pub fn produced(&self) -> usize {
        isahc::get(format!("http://{}/metrics", self.addr))
            .ok()
            .and_then(|mut response| {
                let mut text = String::new();
                response.body_mut().read_to_string(&mut text).ok()?;
                text.lines()
                    .find_map(|l| l.strip_prefix("onex_bus_records_produced_total "))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for KafkaHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How fast hosts answered, and at what cost.
pub struct Answered {
    /// Records/s.
    pub rate: f64,
    /// Their CPU time (all threads, user and system) per record, in µs.
    pub cpu_us: f64,
}

/// How fast `hosts` answer together, from their first answer to their `records`th (so
/// neither joining the group nor producing the requests is counted); at most `limit`.
pub fn answer_rate(hosts: &[KafkaHost], records: usize, limit: Duration) -> Answered {
    let deadline = Instant::now() + limit;
    let cpu = || -> Duration {
        hosts
            .iter()
            .map(|host| cpu_of(&host.child.id().to_string()))
            .sum()
    };
    let mut first = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "the hosts did not answer every record"
        );
        let done: usize = hosts.iter().map(KafkaHost::produced).sum();
        let now = Instant::now();
        if done > 0 && first.is_none() {
            first = Some((now, done, cpu()));
        }
        if done >= records {
            let (start, at_start, cpu_at_start) = first.unwrap_or((now, 0, Duration::ZERO));
            let elapsed = now.duration_since(start).as_secs_f64().max(1e-6);
            let counted = (records - at_start) as f64;
            if std::env::var_os("BENCH_KAFKA_THREADS").is_some() {
                for host in hosts {
                    let pid = host.child.id().to_string();
                    eprint!("host {pid}:\n{}", threads(&pid, records));
                }
            }
            return Answered {
                rate: counted / elapsed,
                cpu_us: (cpu() - cpu_at_start).as_secs_f64() * 1e6 / counted,
            };
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Each thread of process `pid` (`self` for this one): its name, its CPU time and how
/// often it went to sleep (voluntary context switches), per record of `records`, since
/// it started; one line each, busiest first. For finding where a kafka run's time goes:
/// printed when `BENCH_KAFKA_THREADS` is set.
pub fn threads(pid: &str, records: usize) -> String {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return String::new();
    };
    let mut rows: Vec<(f64, String)> = tasks
        .filter_map(Result::ok)
        .map(|task| {
            let tid = task.file_name().to_string_lossy().into_owned();
            let path = format!("{pid}/task/{tid}");
            let cpu = cpu_of(&path).as_secs_f64() * 1e6 / records as f64;
            let status =
                std::fs::read_to_string(format!("/proc/{path}/status")).unwrap_or_default();
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix(name))
                    .map(|value| value.trim().to_owned())
                    .unwrap_or_default()
            };
            let sleeps = field("voluntary_ctxt_switches:")
                .parse::<f64>()
                .unwrap_or(0.0);
            let row = format!(
                "  {:<16} CPU {cpu:6.1} µs, sleeps {:5.2} per record",
                field("Name:"),
                sleeps / records as f64
            );
            (cpu, row)
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    rows.into_iter().map(|(_, row)| row + "\n").collect()
}
