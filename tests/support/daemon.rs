//! A host binary running in the background, its HTTP API reachable, its output collected.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running host process; killed if still running when dropped.
pub struct Daemon {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    addr: Option<String>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Daemon {
    /// Starts `binary` with `args` in `dir`; if `args` has `--listen`, waits until the API
    /// listens (the address is read from the log, so `127.0.0.1:0` works) and the host is
    /// ready.
    pub fn start(binary: &str, args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Daemon {
        let mut child = super::process::spawn(binary, args, dir, env);
        let (stdout, stderr) = (
            Arc::new(Mutex::new(String::new())),
            Arc::new(Mutex::new(String::new())),
        );
        let mut out = child.stdout.take().expect("stdout");
        let collected = Arc::clone(&stdout);
        let stdout_reader = std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(n) = out.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                collected
                    .lock()
                    .expect("stdout")
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        let err = child.stderr.take().expect("stderr");
        let collected = Arc::clone(&stderr);
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut all = collected.lock().expect("stderr");
                all.push_str(&line);
                all.push('\n');
            }
        });
        let stdin = child.stdin.take();
        let readers = vec![stdout_reader, stderr_reader];
        let mut daemon = Daemon {
            child,
            stdin,
            stdout,
            stderr,
            addr: None,
            readers,
        };
        if args.contains(&"--listen") {
            let marker = "HTTP API listening on http://";
            daemon.wait_for(|d| d.stderr().contains(marker), "the API to listen");
            let log = daemon.stderr();
            let rest = &log[log.find(marker).expect("the marker") + marker.len()..];
            daemon.addr = Some(
                rest.split_whitespace()
                    .next()
                    .expect("an address")
                    .to_owned(),
            );
            let ready = " ready. Listening on topic";
            daemon.wait_for(|d| d.stderr().contains(ready), "the host to be ready");
        }
        daemon
    }

    /// `http://ADDR` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "http://{}{path}",
            self.addr.as_deref().expect("the daemon listens")
        )
    }

    /// The process's peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the process's status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    /// The `host:port` the API listens on.
    pub fn addr(&self) -> &str {
        self.addr.as_deref().expect("the daemon listens")
    }

    /// What the process wrote to standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr").clone()
    }

    /// What the process wrote to standard output so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("stdout").clone()
    }

    /// Writes `bytes` to the process's standard input.
    pub fn send(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(bytes).expect("writes to stdin");
        stdin.flush().expect("flushes stdin");
    }

    /// Sends the signal named `name` (e.g. `TERM`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -s {name} failed");
    }

    /// Polls `condition` every 10 ms for up to 30 s, failing with `what` if it never holds.
    pub fn wait_for(&self, condition: impl Fn(&Daemon) -> bool, what: &str) {
        self.wait_for_within(condition, what, Duration::from_secs(30));
    }

    /// Polls `condition` every 10 ms for up to `limit`, failing with `what` if it never holds.
    pub fn wait_for_within(
        &self,
        condition: impl Fn(&Daemon) -> bool,
        what: &str,
        limit: Duration,
    ) {
        let started = Instant::now();
        while !condition(self) {
            assert!(
                started.elapsed() < limit,
                "timed out waiting for {what}\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process has exited.
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().expect("waits").is_some()
    }

    /// Waits (up to 60 s) for the process to exit; returns its status and how long it took.
    pub fn exit(mut self) -> (Option<i32>, Duration, String) {
        drop(self.stdin.take());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waits") {
                let elapsed = started.elapsed();
                // The pipes are closed: the readers take the last bytes and end.
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return (status.code(), elapsed, self.stderr());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the host did not exit\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
