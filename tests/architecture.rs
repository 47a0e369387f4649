//! Architectural invariants (spec 0.1, 0.2, 4.4): the core knows no transport, starts no
//! tasks, and never reaches into the modules that touch the outside world.

use std::path::{Path, PathBuf};

use crate::support::process::repo;

/// The transport-free core: these files, and everything under these directories.
const CORE: &[&str] = &[
    "src/envelope.rs",
    "src/envelope",
    "src/contract.rs",
    "src/contract",
    "src/error.rs",
    "src/handler.rs",
    "src/health.rs",
    "src/bus.rs",
    "src/runtime.rs",
    "src/runtime",
    "src/handlers/local.rs",
];

/// Crates the core must not use (matched as paths, `name::`).
const BANNED_CRATES: &[(&str, &str)] = &[
    ("isahc", "an HTTP client"),
    ("curl", "an HTTP client"),
    ("hyper", "an HTTP library"),
    ("reqwest", "an HTTP client"),
    ("postgres", "a database client"),
    ("tokio_postgres", "a database client"),
    ("rdkafka", "a Kafka client"),
    ("kafka", "a Kafka client"),
    ("redis", "a Redis client"),
    ("async_channel", "the in-memory bus's queue"),
    ("blocking", "a thread pool"),
    ("smol", "an executor"),
    ("tokio", "an executor"),
];

/// Other things the core must not name: task spawning and the outer modules.
const BANNED: &[(&str, &str)] = &[
    ("spawn(", "a background task"),
    ("crate::bus::inmemory", "the in-memory bus"),
    ("crate::handlers::http", "the HTTP handler"),
    ("crate::handlers::db", "the DB handler"),
    ("crate::host", "the host process"),
    ("crate::wiring", "the wiring"),
    ("crate::stdio", "the stdin edge"),
    ("crate::cli", "the command line"),
    ("crate::app", "the boot script"),
];

/// Whether `code` uses crate `name` as a path (`name::…`, `use name`), not as a word in text.
fn uses_crate(code: &str, name: &str) -> bool {
    let path = format!("{name}::");
    let mut rest = code;
    while let Some(at) = rest.find(&path) {
        let before = rest[..at].chars().next_back();
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            return true;
        }
        rest = &rest[at + path.len()..];
    }
    code.trim_start().starts_with(&format!("use {name}"))
        || code.contains(&format!("extern crate {name}"))
}

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("a readable directory") {
            rust_files(&entry.expect("an entry").path(), out);
        }
    } else if path.extension().is_some_and(|ext| ext == "rs") {
        out.push(path.to_path_buf());
    }
}

/// Code lines only: `//` comments (including docs, which explain the boundary) are skipped.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.split("//").next().unwrap_or_default()))
}

#[test]
fn the_core_names_no_transport_crate_task_or_outer_module() {
    let mut files = Vec::new();
    for entry in CORE {
        let path = repo().join(entry);
        assert!(path.exists(), "core path {entry} is missing: update CORE");
        rust_files(&path, &mut files);
    }
    let mut violations = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("a readable source file");
        for (number, code) in code_lines(&text) {
            for (name, what) in BANNED_CRATES {
                if uses_crate(code, name) {
                    violations.push(format!(
                        "{}:{number}: uses the `{name}` crate ({what})",
                        file.strip_prefix(repo()).unwrap_or(file).display()
                    ));
                }
            }
            for (banned, what) in BANNED {
                if code.contains(banned) {
                    violations.push(format!(
                        "{}:{number}: names `{banned}` ({what})",
                        file.strip_prefix(repo()).unwrap_or(file).display()
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "the transport-free core depends on the outside world:\n{}",
        violations.join("\n")
    );
}

#[test]
fn only_wiring_reaches_the_local_handler() {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    let mut users = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(repo()).unwrap_or(file);
        if relative == Path::new("src/handlers/local.rs") || relative == Path::new("src/wiring.rs")
        {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("a readable source file");
        for (number, code) in code_lines(&text) {
            if code.contains("handlers::local") {
                users.push(format!("{}:{number}", relative.display()));
            }
        }
    }
    assert!(
        users.is_empty(),
        "LocalHandler (dev/test only) is used outside wiring:\n{}",
        users.join("\n")
    );
}

#[test]
fn the_crate_check_sees_paths_not_words() {
    assert!(uses_crate("use isahc::HttpClient;", "isahc"));
    assert!(uses_crate(
        "    let c = postgres::Client::connect(x);",
        "postgres"
    ));
    assert!(uses_crate("use smol;", "smol"));
    assert!(!uses_crate(
        "\"'kafka' is an event bus, not a handler\"",
        "kafka"
    ));
    assert!(!uses_crate("tokio_postgres::connect", "postgres"));
    assert!(!uses_crate("crate::postgres::x", "postgres"));
}
