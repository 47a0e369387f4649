//! `--lenient`, through the binaries: unknown fields in the runtime and node contracts
//! warn, naming their file and line, and are ignored; every other rule stays strict.

use crate::support::fixture::{Fixture, node, runtime};
use crate::support::process::{DEVELOPMENT, run};
use crate::support::request_line;

/// The dev host with an unknown block in its runtime contract (line 5) and an unknown
/// key in its node contract (line 4), each with `extra` appended to the node contract.
fn with_unknown_fields(extra: &str) -> Fixture {
    let runtime = runtime("dev_host", &["local"], &["echo_node"]).replace(
        "  event_bus:\n",
        "  owner:\n    team: \"payments\"\n    pager: [\"a\", \"b\"]\n  event_bus:\n",
    );
    let node = node("echo_node", "local", &["local.echo"])
        .replace("node_type:", "maintainer: \"someone\"\nnode_type:");
    Fixture::new()
        .with("runtime/dev.yaml", &runtime)
        .with("nodes/echo_node.yaml", &format!("{node}{extra}"))
}

fn dev(fixture: &Fixture, args: &[&str], input: &[u8]) -> crate::support::process::Run {
    run(DEVELOPMENT, args, fixture.root(), input, &[])
}

#[test]
fn unknown_fields_fail_without_lenient_and_warn_with_it() {
    let fixture = with_unknown_fields("");
    dev(&fixture, &["--dry-run", "runtime/dev.yaml"], b"")
        .assert_failed_with("unknown field 'owner'");

    let ran = dev(
        &fixture,
        &["--lenient", "--dry-run", "runtime/dev.yaml"],
        b"",
    );
    assert_eq!(ran.status, Some(0), "{}", ran.stderr);
    let warnings = ran.warnings();
    assert_eq!(warnings.len(), 2, "{}", ran.stderr);
    assert!(
        warnings[0].contains("dev.yaml: unknown field 'owner' (ignored: --lenient) at line 5"),
        "{warnings:?}"
    );
    assert!(
        warnings[1]
            .contains("echo_node.yaml: unknown field 'maintainer' (ignored: --lenient) at line 4"),
        "{warnings:?}"
    );
    assert!(ran.stdout.contains("echo_node"), "{}", ran.stdout);

    let request = request_line(1, "echo_node", "local.echo", r#"{"x": 1}"#);
    let ran = dev(
        &fixture,
        &["--lenient", "--stdin", "runtime/dev.yaml"],
        format!("{request}\n").as_bytes(),
    );
    assert_eq!(ran.status, Some(0), "{}", ran.stderr);
    assert!(ran.stdout.contains(r#""success":true"#), "{}", ran.stdout);
}

#[test]
fn every_other_rule_stays_strict() {
    for (extra, expected) in [
        ("tenant_id: \"t1\"\n", "prohibited field 'tenant_id'"),
        ("password: \"x\"\n", "looks like an embedded credential"),
        (
            "dependencies: {a: 1}\n",
            "expected sequence start at line 9",
        ),
    ] {
        let fixture = with_unknown_fields(extra);
        dev(
            &fixture,
            &["--lenient", "--dry-run", "runtime/dev.yaml"],
            b"",
        )
        .assert_failed_with(expected);
    }
    let fixture = with_unknown_fields("").with(
        "runtime/dev.yaml",
        &runtime("Dev-Host", &["local"], &["echo_node"]),
    );
    dev(
        &fixture,
        &["--lenient", "--dry-run", "runtime/dev.yaml"],
        b"",
    )
    .assert_failed_with("Dev-Host");
}
