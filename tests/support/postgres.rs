//! A throwaway PostgreSQL cluster: `initdb` and `pg_ctl` into a temporary directory, on a
//! free 127.0.0.1 port, password authentication; stopped and removed when dropped, even
//! when the test panics. No Docker.
//!
//! The server binaries come from `$PG_BINDIR`, else `pg_config --bindir`, else the newest
//! `/usr/lib/postgresql/*/bin`, else `PATH`. PostgreSQL refuses to run as root, so when
//! the tests run as root every server command runs as the `postgres` OS user.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A running throwaway cluster.
pub struct PgCluster {
    pub port: u16,
    pub user: String,
    pub password: String,
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    run_as: Option<(u32, u32)>,
    running: bool,
    // Dropped (removed) after `Drop::drop` has stopped the server.
    dir: tempfile::TempDir,
}

impl PgCluster {
    /// Creates and starts a cluster, or panics saying what is missing and how to get it.
    pub fn start() -> PgCluster {
        Self::try_start()
            .unwrap_or_else(|error| panic!("cannot start a throwaway PostgreSQL: {error}"))
    }

    fn try_start() -> Result<PgCluster, String> {
        let bin = server_binaries()?;
        let run_as = if effective_uid()? == 0 {
            Some(postgres_user()?)
        } else {
            None
        };
        // As root, /tmp is always traversable by `postgres`; $TMPDIR might not be.
        let base = if run_as.is_some() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("onex-pgtest-")
            .tempdir_in(&base)
            .map_err(|e| format!("a temporary directory in {}: {e}", base.display()))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| format!("chown: {e}"))?;
        }
        let mut cluster = PgCluster {
            port: 0,
            user: "tester".into(),
            password: uuid::Uuid::new_v4().simple().to_string(),
            bin,
            data: dir.path().join("data"),
            log: dir.path().join("server.log"),
            run_as,
            running: false,
            dir,
        };
        cluster.initdb()?;
        // A port freed by binding :0 can be taken before postgres binds it: retry.
        let mut last = String::new();
        for _ in 0..5 {
            cluster.port = TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .map_err(|e| format!("a free port: {e}"))?
                .port();
            cluster.append_conf(&format!("port = {}\n", cluster.port))?;
            match cluster.pg_ctl_start() {
                Ok(()) => return Ok(cluster),
                Err(error) if error.contains("could not bind") => last = error,
                Err(error) => return Err(error),
            }
        }
        Err(format!("no usable port after 5 tries: {last}"))
    }

    fn initdb(&self) -> Result<(), String> {
        let pwfile = self.dir.path().join("pwfile");
        fs::write(&pwfile, format!("{}\n", self.password)).map_err(|e| e.to_string())?;
        fs::set_permissions(&pwfile, fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(&self.data)
            .arg("-U")
            .arg(&self.user)
            .arg(format!("--pwfile={}", pwfile.display()))
            .args([
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ])
            .output()
            .map_err(|e| format!("running initdb: {e}"))?;
        let _ = fs::remove_file(&pwfile);
        check("initdb", &output, None)?;
        // Settings go in postgresql.conf: `pg_ctl -o` is parsed by a shell.
        // The Unix socket goes in the cluster's own directory, private to this test.
        self.append_conf(&format!(
            "listen_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\n\
             synchronous_commit = off\nfull_page_writes = off\nmax_connections = 40\nshared_buffers = '32MB'\n",
            self.dir.path().display()
        ))
    }

    fn append_conf(&self, text: &str) -> Result<(), String> {
        let path = self.data.join("postgresql.conf");
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn pg_ctl_start(&mut self) -> Result<(), String> {
        // `-l` matters: without it the server inherits our stdout and `output()` never returns.
        let output = self
            .command("pg_ctl")
            .arg("start")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-t", "60"])
            .output()
            .map_err(|e| format!("running pg_ctl: {e}"))?;
        check("pg_ctl start", &output, Some(&self.log))?;
        self.running = true;
        Ok(())
    }

    fn pg_ctl_stop(&self, mode: &str) -> std::io::Result<Output> {
        self.command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", mode, "-w", "-t", "60"])
            .output()
    }

    /// Stops the server ("fast" disconnects clients; "immediate" is a crash).
    pub fn stop(&mut self, mode: &str) {
        let output = self.pg_ctl_stop(mode).expect("pg_ctl stop runs");
        check("pg_ctl stop", &output, Some(&self.log)).unwrap_or_else(|e| panic!("{e}"));
        self.running = false;
    }

    /// Starts the server again on the same data and port.
    pub fn restart(&mut self) {
        assert!(!self.running, "already running");
        self.pg_ctl_start().unwrap_or_else(|e| panic!("{e}"));
    }

    /// A `postgresql://` URL for this cluster, password included.
    pub fn url(&self) -> String {
        format!(
            "postgresql://{}:{}@127.0.0.1:{}/postgres",
            self.user, self.password, self.port
        )
    }

    /// A `key=value` connection string reaching this cluster through 127.0.0.1:`port` (its
    /// own, or a proxy's), with `extra` settings appended.
    pub fn url_via(&self, port: u16, extra: &str) -> String {
        format!(
            "host=127.0.0.1 port={port} user={} password={} dbname=postgres {extra}",
            self.user, self.password
        )
    }

    /// A client of this cluster's own, for setting up and watching.
    pub fn admin(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls).expect("the admin connects")
    }

    /// Stops every server process (SIGSTOP) until the guard drops (SIGCONT), even when
    /// the test panics: connections stay open and nothing answers.
    pub fn freeze(&self) -> Frozen {
        let pids = self.pid().map(server_processes).unwrap_or_default();
        assert!(!pids.is_empty(), "no server processes to freeze");
        assert!(signal("-STOP", &pids), "kill -STOP failed");
        Frozen { pids }
    }

    /// A `key=value` connection string for this cluster's Unix socket.
    pub fn socket_url(&self) -> String {
        format!(
            "host={} port={} user={} password={} dbname=postgres",
            self.dir.path().display(),
            self.port,
            self.user,
            self.password
        )
    }

    fn pid(&self) -> Option<u32> {
        fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        // A clean environment (no PGDATA or PGPORT leaking in), and a working directory
        // the `postgres` user can read.
        command
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LC_ALL", "C")
            .current_dir(self.dir.path());
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        command
    }
}

/// Server processes stopped by [`PgCluster::freeze`], continued when dropped.
pub struct Frozen {
    pids: Vec<u32>,
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("-CONT", &self.pids);
    }
}

/// The postmaster `pid` and its children, from /proc.
fn server_processes(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // "pid (comm) state ppid …": the command may hold spaces, so split after its ')'.
        let parent = fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|stat| {
                let rest = stat.rsplit_once(')')?.1.to_owned();
                rest.split_whitespace().nth(1)?.parse::<u32>().ok()
            });
        if parent == Some(pid) {
            pids.push(child);
        }
    }
    pids
}

/// Sends `which` (`-STOP`, `-CONT`) to `pids`; whether every one got it.
fn signal(which: &str, pids: &[u32]) -> bool {
    Command::new("kill")
        .arg(which)
        .args(pids.iter().map(u32::to_string))
        .status()
        .is_ok_and(|status| status.success())
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running || self.pid().is_some() {
            let stopped =
                matches!(self.pg_ctl_stop("immediate"), Ok(output) if output.status.success());
            if let (false, Some(pid)) = (stopped, self.pid()) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

fn check(what: &str, output: &Output, log: Option<&Path>) -> Result<(), String> {
    if output.status.success() {
        return Ok(());
    }
    let log = log
        .and_then(|path| fs::read_to_string(path).ok())
        .unwrap_or_default();
    Err(format!(
        "{what} failed ({}):\nstdout: {}\nstderr: {}\nserver log:\n{log}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("pg_ctl").is_file()
}

fn server_binaries() -> Result<PathBuf, String> {
    const INSTALL: &str = "PostgreSQL's server binaries (initdb, pg_ctl) are needed for the db tests: \
        install them (Debian/Ubuntu: apt-get install -y postgresql; macOS: brew install postgresql) \
        or set PG_BINDIR to the directory holding them";
    if let Some(dir) = std::env::var_os("PG_BINDIR").map(PathBuf::from) {
        return if has_server(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "no initdb/pg_ctl in PG_BINDIR={}; {INSTALL}",
                dir.display()
            ))
        };
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if output.status.success() && has_server(&dir) {
            return Ok(dir);
        }
    }
    let mut newest: Option<(u32, PathBuf)> = None;
    for entry in fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Some(version) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        {
            let bin = entry.path().join("bin");
            if has_server(&bin) && newest.as_ref().is_none_or(|(v, _)| version > *v) {
                newest = Some((version, bin));
            }
        }
    }
    if let Some((_, dir)) = newest {
        return Ok(dir);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .find(|dir| has_server(dir))
        .ok_or_else(|| INSTALL.to_owned())
}

fn effective_uid() -> Result<u32, String> {
    // "Uid:\treal\teffective\tsaved\tfs"
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))?
                .split_whitespace()
                .nth(2)?
                .parse()
                .ok()
        })
        .ok_or_else(|| "cannot read the effective uid from /proc/self/status".to_owned())
}

fn postgres_user() -> Result<(u32, u32), String> {
    let line = fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| passwd.lines().find(|line| line.starts_with("postgres:")).map(str::to_owned))
        .ok_or("the tests run as root, and PostgreSQL refuses root, but there is no `postgres` OS user (apt-get install -y postgresql creates it)")?;
    let fields: Vec<&str> = line.split(':').collect();
    match (
        fields.get(2).and_then(|s| s.parse().ok()),
        fields.get(3).and_then(|s| s.parse().ok()),
    ) {
        (Some(uid), Some(gid)) => Ok((uid, gid)),
        _ => Err(format!("cannot read the postgres user's ids from: {line}")),
    }
}
