//! Running the two binaries with a time limit.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The production binary.
pub const PRODUCTION: &str = env!("CARGO_BIN_EXE_omnibase-runtime-host");
/// The development binary.
pub const DEVELOPMENT: &str = env!("CARGO_BIN_EXE_omninode-runtime-host-dev");

/// What a finished run printed, and how it ended.
pub struct Run {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The standard output's lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Asserts the run failed with exit status 1 and said `text` on standard error.
    pub fn assert_failed_with(&self, text: &str) {
        assert_eq!(self.status, Some(1), "{}", self.stderr);
        assert!(
            self.stderr.contains(text),
            "expected {text:?} in:\n{}",
            self.stderr
        );
    }

    /// The log lines at WARN level.
    pub fn warnings(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|line| line.contains(" WARN "))
            .collect()
    }
}

/// `binary --dry-run contract`, run in `dir`.
pub fn dry_run(binary: &str, dir: &Path, contract: &str) -> Run {
    run(binary, &["--dry-run", contract], dir, b"", &[])
}

/// `binary --stdin contract`, run in `dir` with `input` on standard input.
pub fn serve_stdin(binary: &str, dir: &Path, contract: &str, input: &[u8]) -> Run {
    run(binary, &["--stdin", contract], dir, input, &[])
}

/// Starts `binary` with `args` in `dir`, all three standard streams piped, with `env` and
/// without the caller's `ENVIRONMENT`.
pub fn spawn(binary: &str, args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Child {
    Command::new(binary)
        .args(args)
        .current_dir(dir)
        .env_remove("ENVIRONMENT")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts")
}

/// Runs `binary` with `args` in `dir`, feeding `stdin`; kills it after 60 s.
pub fn run(binary: &str, args: &[&str], dir: &Path, stdin: &[u8], env: &[(&str, &str)]) -> Run {
    let mut child = spawn(binary, args, dir, env);
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    // Feed from a thread: a host that answers as it reads would otherwise deadlock on a full pipe.
    std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let id = child.id();
    let (done, finished) = mpsc::channel::<Output>();
    std::thread::spawn(move || {
        if let Ok(output) = child.wait_with_output() {
            let _ = done.send(output);
        }
    });
    let output = match finished.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output,
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            panic!("{binary} {args:?} did not finish within 60 s");
        }
    };
    Run {
        status: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The repository root (where `contracts/` and `examples/` are).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
