//! Architectural invariants (spec 0.1, 0.2, 4.4): the core knows no transport and no
//! runtime. The compiler enforces it (code in `onex-core` cannot name a crate its manifest
//! does not list); these tests hold the manifest to it, against the graph Cargo resolves.

use std::process::Command;

use crate::support::process::repo;

/// What the core may depend on directly, and why each is no transport and no runtime.
const CORE_MAY_USE: &[(&str, &str)] = &[
    (
        "event-listener",
        "waiting for room in a budget or a queue; runs on any executor",
    ),
    (
        "futures-lite",
        "future combinators and `block_on`; no reactor",
    ),
    ("libc", "opening a contract without blocking on a FIFO"),
    ("log", "the logging facade"),
    ("memchr", "weighing a request's strings"),
    ("percent-encoding", "the http target guard's decoding"),
    ("serde", "(de)serialisation"),
    ("serde-saphyr", "reading YAML contracts"),
    ("serde_json", "envelopes"),
    ("serde_path_to_error", "naming the field a type error is in"),
    ("strsim", "did-you-mean suggestions"),
    ("thiserror", "error types"),
    ("time", "timestamps"),
    ("url", "the http target guard's parsing"),
    ("uuid", "envelope ids"),
];

/// Crates that must not be anywhere in the core's graph, directly or not.
const NEVER_IN_THE_CORE: &[(&str, &str)] = &[
    ("smol", "an executor"),
    ("async-executor", "an executor"),
    ("async-io", "a reactor"),
    ("blocking", "a thread pool"),
    ("tokio", "an async runtime"),
    ("mio", "a reactor"),
    ("isahc", "an HTTP client"),
    ("curl", "an HTTP client"),
    ("hyper", "an HTTP library"),
    ("reqwest", "an HTTP client"),
    ("postgres", "a database client"),
    ("tokio-postgres", "a database client"),
    ("rdkafka", "a Kafka client"),
    ("prometheus-client", "the metrics registry"),
    ("onex-host", "the infrastructure around the core"),
];

/// The names of the packages `cargo tree` lists for the core with `extra` arguments.
fn core_tree(extra: &[&str]) -> Vec<String> {
    let output = Command::new(env!("CARGO"))
        .current_dir(repo())
        .args(["tree", "-p", "onex-core", "--prefix", "none", "--offline"])
        .args(extra)
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut names: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "onex-core")
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_core_depends_only_on_what_its_manifest_may_list() {
    let direct = core_tree(&["-e", "normal", "--depth", "1"]);
    let unexpected: Vec<&String> = direct
        .iter()
        .filter(|name| !CORE_MAY_USE.iter().any(|(allowed, _)| allowed == name))
        .collect();
    assert!(
        unexpected.is_empty(),
        "crates/onex-core depends on {unexpected:?}: the core takes no transport or runtime \
         crate; put the code that needs it in onex-host, or add the crate to CORE_MAY_USE \
         with the reason it is neither"
    );
}

#[test]
fn no_runtime_or_transport_is_anywhere_in_the_cores_graph() {
    let graph = core_tree(&["-e", "normal,build"]);
    assert!(graph.iter().any(|name| name == "serde"), "{graph:?}");
    let found: Vec<String> = NEVER_IN_THE_CORE
        .iter()
        .filter(|(name, _)| graph.iter().any(|package| package == name))
        .map(|(name, what)| format!("{name} ({what})"))
        .collect();
    assert!(
        found.is_empty(),
        "the core's dependency graph holds {}",
        found.join(", ")
    );
}
