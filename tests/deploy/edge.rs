//! The host as a service on an edge box: the systemd unit starts the static binary on the
//! contracts in /etc/onex, on loopback, sandboxed and within the container's budget, gives
//! the drain time to finish, and passes `systemd-analyze verify` where systemd is installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{args, option, seconds, yaml};
use crate::support::fixture::Fixture;
use crate::support::process::{PRODUCTION, repo, run};

const UNIT: &str = "deploy/systemd/onex-runtime-host.service";
const UNIT_NAME: &str = "onex-runtime-host.service";
/// Where the unit says the binary is, relative to `/`.
const BINARY: &str = "usr/local/bin/omnibase-runtime-host";
/// The worst exposure `systemd-analyze security` may rate the unit (0 safest, 10 worst):
/// loosening the sandbox fails the test.
const MAX_EXPOSURE: &str = "20";

/// The unit's `Key=Value` lines as (section, key, value), in order.
fn directives(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut found = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((key, value)) = line.split_once('=') {
            found.push((
                section.clone(),
                key.trim().to_owned(),
                value.trim().to_owned(),
            ));
        }
    }
    found
}

/// The last value of `section`'s `key` (a later line overrides an earlier one).
fn value<'a>(unit: &'a [(String, String, String)], section: &str, key: &str) -> &'a str {
    unit.iter()
        .rev()
        .find(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key}= in [{section}]"))
}

#[test]
fn the_edge_unit_runs_the_binary_on_loopback_sandboxed_and_drains_before_the_kill() {
    let text = std::fs::read_to_string(repo().join(UNIT)).expect("the unit");
    let unit = directives(&text);
    let exec: Vec<&str> = value(&unit, "Service", "ExecStart")
        .split_whitespace()
        .collect();
    assert_eq!(exec[0], format!("/{BINARY}"));
    let listen: std::net::SocketAddr = option(&exec, "--listen").parse().expect("an address");
    assert!(listen.ip().is_loopback(), "{listen}");
    assert_eq!(option(&exec, "--log-format"), "json");
    let contract = exec.last().copied().expect("a contract");
    assert!(contract.starts_with("/etc/onex/"), "{contract}");

    // The standalone host's concurrency and drain.
    let standalone = yaml("deploy/k8s/deployment.yaml");
    let standalone = args(&standalone["spec"]["template"]["spec"]["containers"][0]["args"]);
    for flag in ["--max-in-flight", "--shutdown-grace"] {
        assert_eq!(option(&exec, flag), option(&standalone, flag), "{flag}");
    }
    let stop = value(&unit, "Service", "TimeoutStopSec");
    let stop: u64 = stop
        .strip_suffix('s')
        .unwrap_or(stop)
        .parse()
        .expect("TimeoutStopSec in seconds");
    assert!(
        stop > seconds(&exec, "--shutdown-grace"),
        "systemd must wait for the drain"
    );

    for (section, key, expected) in [
        ("Service", "Restart", "on-failure"),
        ("Service", "KillSignal", "SIGTERM"),
        ("Service", "StandardError", "journal"),
        ("Service", "MemoryMax", "128M"),
        ("Service", "CPUQuota", "25%"),
        ("Service", "DynamicUser", "yes"),
        ("Service", "ProtectSystem", "strict"),
        ("Service", "NoNewPrivileges", "yes"),
        ("Service", "CapabilityBoundingSet", ""),
        ("Service", "AmbientCapabilities", ""),
        ("Install", "WantedBy", "multi-user.target"),
    ] {
        assert_eq!(value(&unit, section, key), expected, "[{section}] {key}");
    }

    // The command line itself, on the repository's copy of /etc/onex/contracts.
    let local = contract.replace("/etc/onex/contracts", "contracts");
    let mut dry = exec[1..exec.len() - 1].to_vec();
    dry.extend(["--dry-run", local.as_str()]);
    let checked = run(PRODUCTION, &dry, repo(), b"", &[]);
    assert_eq!(checked.status, Some(0), "{dry:?}: {}", checked.stderr);
}

/// The directory that holds the system's own unit files, if systemd is installed.
fn system_units() -> Option<PathBuf> {
    ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .map(PathBuf::from)
        .find(|dir| dir.join("multi-user.target").is_file())
}

/// A root for `systemd-analyze --root`: the unit where it is installed, the binary where
/// the unit runs it, and the system's units (regular files only: their aliases and
/// `.wants` links point outside the root and only add noise).
fn install_root(units: &Path) -> Fixture {
    let unit = std::fs::read_to_string(repo().join(UNIT)).expect("the unit");
    let root = Fixture::new().with(&format!("etc/systemd/system/{UNIT_NAME}"), &unit);
    let lib = root.path("usr/lib/systemd/system");
    std::fs::create_dir_all(&lib).expect("a unit directory");
    for entry in std::fs::read_dir(units)
        .expect("the system's units")
        .flatten()
    {
        if entry.file_type().is_ok_and(|kind| kind.is_file()) {
            std::fs::copy(entry.path(), lib.join(entry.file_name())).expect("a unit copy");
        }
    }
    let binary = root.path(BINARY);
    std::fs::create_dir_all(binary.parent().expect("a parent")).expect("bin directory");
    std::fs::copy(PRODUCTION, &binary).expect("the binary");
    root
}

#[test]
fn systemd_analyze_verifies_the_edge_unit_where_systemd_is_installed() {
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    let (Ok(version), Some(units)) = (analyze, system_units()) else {
        eprintln!(
            "systemd-analyze or the system's units are missing: {UNIT} was checked only by \
             the_edge_unit_runs_the_binary_on_loopback_sandboxed_and_drains_before_the_kill \
             (its ExecStart run with --dry-run; Restart, KillSignal, TimeoutStopSec, \
             StandardError, MemoryMax, CPUQuota, DynamicUser, ProtectSystem, NoNewPrivileges, \
             CapabilityBoundingSet, AmbientCapabilities and WantedBy read as text), not parsed \
             by systemd, and its sandbox was not rated; apt-get install systemd to check it whole"
        );
        return;
    };
    assert!(version.status.success());
    let root = install_root(&units);
    let root_arg = format!("--root={}", root.root().display());
    let verify = Command::new("systemd-analyze")
        .args(["verify", &root_arg, UNIT_NAME])
        .output()
        .expect("systemd-analyze runs");
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "{said}");
    // Unknown or misplaced keys are only warnings: any line about the unit fails.
    let about_unit: Vec<&str> = said
        .lines()
        .filter(|line| line.contains("onex-runtime-host"))
        .collect();
    assert!(about_unit.is_empty(), "{about_unit:#?}");

    let security = Command::new("systemd-analyze")
        .args([
            "security",
            "--offline=yes",
            &root_arg,
            &format!("--threshold={MAX_EXPOSURE}"),
            UNIT_NAME,
        ])
        .output()
        .expect("systemd-analyze runs");
    assert!(
        security.status.success(),
        "{}{}",
        String::from_utf8_lossy(&security.stdout),
        String::from_utf8_lossy(&security.stderr)
    );
}
