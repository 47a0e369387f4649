//! Contract loading: every row of the specification's fail-fast table, the prohibited
//! fields and handler types, node resolution, and the error format users see.

use onex_host::contract::{ContractError, NodeContract, RuntimeHostContract};
use onex_host::handler::HandlerType;

use crate::support::fixture::{Fixture, dev_host, node, runtime};
use crate::support::process::{DEVELOPMENT, PRODUCTION, dry_run};

fn load_error(fixture: &Fixture, relative: &str) -> ContractError {
    RuntimeHostContract::load(&fixture.path(relative)).expect_err("the contract must be refused")
}

fn messages(error: &ContractError) -> Vec<String> {
    error.problems().iter().map(|p| p.message.clone()).collect()
}

const HEADER: &str = "schema_version: \"1.0.0\"\nruntime:\n  name: \"t\"\n  version: \"1.0.0\"\n  event_bus:\n    kind: \"inmemory\"\n";

#[test]
fn a_missing_file_is_named_and_exits_1() {
    let fixture = Fixture::new();
    let error = load_error(&fixture, "runtime/absent.yaml");
    assert_eq!(messages(&error), ["contract file not found"]);
    assert_eq!(
        error.problems()[0].file,
        fixture.path("runtime/absent.yaml")
    );

    let run = dry_run(DEVELOPMENT, fixture.root(), "runtime/absent.yaml");
    run.assert_failed_with("ContractValidationError: Failed to load contract\n  File: runtime/absent.yaml\n  Error: contract file not found\n  Hint: ");
    assert!(run.stderr.contains("\n  Action: "), "{}", run.stderr);
}

#[test]
fn invalid_yaml_gives_line_and_column() {
    let fixture = Fixture::new().with(
        "r.yaml",
        "schema_version: \"1.0.0\"\nruntime:\n  name: \"unterminated\n",
    );
    let error = load_error(&fixture, "r.yaml");
    let problem = &error.problems()[0];
    assert_eq!(
        (problem.line, problem.column),
        (Some(3), Some(9)),
        "{error}"
    );
    assert!(error.to_string().contains("at line 3, column 9"), "{error}");
}

#[test]
fn unknown_fields_are_named_with_their_line_and_a_suggestion() {
    let fixture = Fixture::new().with(
        "r.yaml",
        &format!("{HEADER}  handlers: []\n  nodes: []\n  nodez: []\n"),
    );
    let error = load_error(&fixture, "r.yaml");
    let problem = &error.problems()[0];
    assert_eq!(problem.message, "unknown field 'nodez'");
    assert_eq!(problem.line, Some(9));
    assert_eq!(problem.hint, "did you mean 'nodes'?");
}

#[test]
fn unknown_handler_types_list_the_valid_ones() {
    let fixture = Fixture::new().with(
        "r.yaml",
        &format!("{HEADER}  handlers:\n    - type: \"http\"\n    - type: \"ftp\"\n  nodes: []\n"),
    );
    let error = load_error(&fixture, "r.yaml");
    let problem = &error.problems()[0];
    assert_eq!(problem.message, "Unknown handler type 'ftp'");
    assert_eq!(problem.line, Some(9));
    assert_eq!(
        problem.hint,
        "Valid handler types are: http, db, and local (development and tests only)"
    );
    assert_eq!(problem.action, "Remove or replace the invalid handler type");
}

#[test]
fn deferred_and_misplaced_handler_types_say_why() {
    let fixture = Fixture::new().with(
        "r.yaml",
        &format!("{HEADER}  handlers:\n    - type: \"vault\"\n    - type: \"consul\"\n    - type: \"kafka\"\n  nodes: []\n"),
    );
    assert_eq!(
        messages(&load_error(&fixture, "r.yaml")),
        [
            "handler type 'vault' is deferred to Beta",
            "handler type 'consul' is deferred to Beta",
            "'kafka' is an event bus, not a handler",
        ]
    );
}

#[test]
fn every_missing_required_field_is_listed_at_once() {
    let fixture = Fixture::new().with(
        "r.yaml",
        "schema_version: \"1.0.0\"\nruntime:\n  version: \"1.0.0\"\n",
    );
    assert_eq!(
        messages(&load_error(&fixture, "r.yaml")),
        ["missing required fields in runtime: name, event_bus, handlers, nodes"]
    );
    let empty = Fixture::new().with("r.yaml", "");
    assert_eq!(
        messages(&load_error(&empty, "r.yaml")),
        ["missing required fields in the contract: schema_version, runtime"]
    );
}

#[test]
fn a_schema_version_mismatch_shows_both_versions() {
    let text = format!(
        "{}  handlers: []\n  nodes: []\n",
        HEADER.replacen("1.0.0", "2.1.0", 1)
    );
    let fixture = Fixture::new().with("r.yaml", &text);
    let error = load_error(&fixture, "r.yaml");
    assert!(
        messages(&error).contains(
            &"schema version mismatch: the contract has '2.1.0', this host reads '1.0.0' and '1.1.0'"
                .to_owned()
        ),
        "{error}"
    );
}

#[test]
fn duplicate_handler_types_are_refused_with_both_lines() {
    let fixture = Fixture::new().with(
        "r.yaml",
        &format!("{HEADER}  handlers:\n    - type: \"db\"\n    - type: \"db\"\n  nodes: []\n"),
    );
    let error = load_error(&fixture, "r.yaml");
    assert_eq!(
        messages(&error),
        ["duplicate handler type 'db' (first at line 8)"]
    );
    assert_eq!(error.problems()[0].line, Some(9));
}

#[test]
fn anchors_aliases_and_merge_keys_are_accepted() {
    let text = "schema_version: &v \"1.0.0\"\nruntime:\n  name: \"t\"\n  version: *v\n  event_bus: &bus\n    kind: \"inmemory\"\n  handlers:\n    - &local\n      type: \"local\"\n  nodes: []\n";
    let fixture = Fixture::new().with("r.yaml", text);
    let contract =
        RuntimeHostContract::load(&fixture.path("r.yaml")).expect("aliases are standard YAML");
    assert_eq!(contract.version, "1.0.0");
    assert_eq!(contract.handlers[0].handler_type, HandlerType::Local);
}

#[test]
fn an_empty_handler_list_warns_and_continues() {
    let fixture = Fixture::new()
        .with("runtime/r.yaml", &runtime("quiet", &[], &["echo_node"]))
        .with(
            "nodes/echo_node.yaml",
            &node("echo_node", "local", &["local.echo"]),
        );
    let contract =
        RuntimeHostContract::load(&fixture.path("runtime/r.yaml")).expect("an empty list is valid");
    assert!(contract.handlers.is_empty());
    assert_eq!(
        contract.warnings[0].message,
        "the contract enables no handlers"
    );

    let run = dry_run(DEVELOPMENT, fixture.root(), "runtime/r.yaml");
    assert_eq!(run.status, Some(0), "{}", run.stderr);
    assert!(
        run.warnings()
            .iter()
            .any(|w| w.contains("the contract enables no handlers")),
        "{}",
        run.stderr
    );
}

#[test]
fn prohibited_fields_are_refused_with_the_reason() {
    for (field, reason) in [
        ("tenant_id", "reserved for Beta multi-tenancy"),
        ("retry_policy", "reserved for Beta resilience"),
        ("rate_limit", "reserved for Beta throttling"),
    ] {
        let fixture = Fixture::new().with(
            "r.yaml",
            &format!("{HEADER}  handlers:\n    - type: \"http\"\n      {field}: 3\n  nodes: []\n"),
        );
        let error = load_error(&fixture, "r.yaml");
        let problem = &error.problems()[0];
        assert_eq!(problem.message, format!("prohibited field '{field}'"));
        assert_eq!(problem.line, Some(9));
        assert!(problem.hint.contains(reason), "{}", problem.hint);
    }
}

#[test]
fn the_production_binary_refuses_the_local_handler() {
    let fixture = dev_host();
    let run = dry_run(PRODUCTION, fixture.root(), "runtime/dev.yaml");
    run.assert_failed_with("Error: handler type 'local' is forbidden in production at line 8");
}

#[test]
fn the_dev_binary_refuses_io_handlers() {
    let fixture = Fixture::new().with("r.yaml", &runtime("t", &["http"], &[]));
    let run = dry_run(DEVELOPMENT, fixture.root(), "r.yaml");
    run.assert_failed_with("the dev host registers only the local handler, not 'http'");
}

#[test]
fn node_contracts_resolve_beside_above_or_where_declared() {
    let fixture = Fixture::new()
        .with(
            "contracts/runtime/r.yaml",
            &format!("{HEADER}  handlers: [{{type: local}}]\n  nodes:\n    - slug: \"beside\"\n    - slug: \"above\"\n    - slug: \"declared\"\n      contract: \"../elsewhere/d.yaml\"\n"),
        )
        .with("contracts/runtime/nodes/beside.yaml", &node("beside", "local", &["local.echo"]))
        .with("contracts/nodes/above.yaml", &node("above", "local", &["local.echo"]))
        .with("contracts/elsewhere/d.yaml", &node("declared", "local", &["local.echo"]));
    let contract = RuntimeHostContract::load(&fixture.path("contracts/runtime/r.yaml"))
        .expect("all three resolve");
    let slugs: Vec<&str> = contract.nodes.iter().map(|n| n.slug.as_str()).collect();
    assert_eq!(slugs, ["beside", "above", "declared"]);
    assert_eq!(
        contract.nodes[1].contract.path,
        fixture.path("contracts/runtime/../nodes/above.yaml")
    );
}

#[test]
fn an_unresolved_node_lists_every_path_tried() {
    let fixture = Fixture::new().with("runtime/r.yaml", &runtime("t", &["local"], &["ghost"]));
    let error = load_error(&fixture, "runtime/r.yaml");
    let runtime_dir = fixture.path("runtime");
    assert_eq!(
        messages(&error),
        [format!(
            "node 'ghost': no contract found; tried {}, {}",
            runtime_dir.join("nodes/ghost.yaml").display(),
            runtime_dir.join("../nodes/ghost.yaml").display()
        )]
    );
}

#[test]
fn a_node_contract_whose_name_differs_from_its_slug_is_refused() {
    let fixture = Fixture::new()
        .with("runtime/r.yaml", &runtime("t", &["local"], &["alpha"]))
        .with("nodes/alpha.yaml", &node("beta", "local", &["local.echo"]));
    let error = load_error(&fixture, "runtime/r.yaml");
    assert!(
        messages(&error)[0].ends_with("whose name is 'beta'"),
        "{error}"
    );
}

#[test]
fn a_bad_node_contract_reports_its_own_file_and_lines() {
    let fixture = Fixture::new()
        .with("runtime/r.yaml", &runtime("t", &["local"], &["alpha"]))
        .with(
            "nodes/alpha.yaml",
            &node("alpha", "local", &["local.echo", "LOCAL.ECHO"]),
        );
    let error = load_error(&fixture, "runtime/r.yaml");
    let files: Vec<_> = error.problems().iter().map(|p| p.file.clone()).collect();
    assert_eq!(
        files,
        [
            fixture.path("runtime/r.yaml"),
            fixture.path("runtime/../nodes/alpha.yaml")
        ]
    );
    assert_eq!(
        error.problems()[1].message,
        "operation 'LOCAL.ECHO' is not dotted lowercase"
    );
    assert_eq!(error.problems()[1].line, Some(7));
}

#[test]
fn a_declared_operation_the_handler_does_not_support_fails_at_start_up() {
    let fixture = Fixture::new()
        .with("runtime/r.yaml", &runtime("t", &["local"], &["alpha"]))
        .with(
            "nodes/alpha.yaml",
            &node("alpha", "local", &["local.echo", "local.sleep"]),
        );
    let run = dry_run(DEVELOPMENT, fixture.root(), "runtime/r.yaml");
    run.assert_failed_with("Error: node 'alpha' declares 'local.sleep', which the local handler does not support at line 6\n  Hint: the local handler supports: local.echo, local.transform, local.error");
}

#[test]
fn home_relative_paths_are_not_expanded() {
    let fixture = Fixture::new().with(
        "r.yaml",
        &format!("{HEADER}  handlers: []\n  nodes:\n    - slug: \"a\"\n      contract: \"~/nodes/a.yaml\"\n"),
    );
    assert_eq!(
        messages(&load_error(&fixture, "r.yaml")),
        ["node 'a': '~' is not expanded in '~/nodes/a.yaml'"]
    );
}

#[test]
fn load_all_reads_every_node_contract_in_a_directory_and_reports_every_bad_one() {
    let good = Fixture::new()
        .with("nodes/b.yaml", &node("bravo", "local", &["local.echo"]))
        .with("nodes/a.yaml", &node("alpha", "http", &["http.get"]))
        .with("nodes/readme.txt", "not a contract");
    let names: Vec<String> = NodeContract::load_all(&good.path("nodes"))
        .expect("both load")
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["alpha", "bravo"]);

    let bad = Fixture::new()
        .with("nodes/a.yaml", "name: [\n")
        .with("nodes/b.yaml", &node("bravo", "vault", &["vault.read"]));
    let error = NodeContract::load_all(&bad.path("nodes")).expect_err("both are bad");
    let files: Vec<_> = error.problems().iter().map(|p| p.file.clone()).collect();
    assert_eq!(files, [bad.path("nodes/a.yaml"), bad.path("nodes/b.yaml")]);
}

#[test]
fn the_repository_contracts_are_valid() {
    let repo = crate::support::process::repo();
    let contract = "contracts/runtime/dev_runtime_host.yaml";
    let run = dry_run(DEVELOPMENT, repo, contract);
    assert_eq!(run.status, Some(0), "{contract}: {}", run.stderr);
    assert!(run.warnings().is_empty(), "{contract}: {}", run.stderr);
    for contract in [
        "infra_runtime_host",
        "minimum_runtime_host",
        "dev_runtime_host",
    ] {
        RuntimeHostContract::load(&repo.join(format!("contracts/runtime/{contract}.yaml")))
            .unwrap_or_else(|error| panic!("{error}"));
    }
}
