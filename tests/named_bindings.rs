//! Named handler bindings (schema 1.1.0): several bindings of a type, each node entry
//! naming the one it uses; every mistake refused with its file, line, hint and action,
//! and 1.0.0 contracts refusing both fields.

use crate::support::fixture::Fixture;
use onex_host::contract::{ContractError, RuntimeHostContract};

/// A runtime contract of `version` with the handlers `handlers` (YAML list items under
/// `handlers:`) hosting `node`, whose contract is `node_yaml`.
fn host(version: &str, handlers: &str, node_yaml: &str) -> Fixture {
    Fixture::new()
        .with(
            "r.yaml",
            &format!(
                "schema_version: \"{version}\"\nruntime:\n  name: \"t\"\n  version: \"1.0.0\"\n  event_bus:\n    kind: \"inmemory\"\n  handlers:\n{handlers}  nodes:\n    - slug: \"n\"\n"
            ),
        )
        .with("nodes/n.yaml", node_yaml)
}

/// A node contract of `version` whose one entry runs `db.query`, with `extra` lines
/// (e.g. `    binding: "orders_db"\n`).
fn node(version: &str, extra: &str) -> String {
    format!(
        "schema_version: \"{version}\"\nnode_version: \"1.0.0\"\nname: \"n\"\nnode_type: \"EFFECT_GENERIC\"\nio_operations:\n  - type: \"db\"\n{extra}    operations: [\"db.query\"]\n"
    )
}

const TWO_DB: &str = "    - type: \"db\"\n      name: \"orders_db\"\n    - type: \"db\"\n      name: \"billing_db\"\n";

fn load(fixture: &Fixture) -> Result<RuntimeHostContract, ContractError> {
    RuntimeHostContract::load(&fixture.path("r.yaml"))
}

/// The one problem `fixture` is refused for: its file's name, line and message.
fn refused(fixture: &Fixture) -> (String, Option<u64>, String) {
    let problems = load(fixture).expect_err("refused").into_problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    let problem = &problems[0];
    assert!(!problem.hint.is_empty() && !problem.action.is_empty());
    let file = problem.file.file_name().unwrap_or_default();
    (
        file.to_string_lossy().into_owned(),
        problem.line,
        problem.message.clone(),
    )
}

#[test]
fn a_node_entry_uses_the_binding_it_names_and_a_lone_named_binding_by_default() {
    let loaded = load(&host(
        "1.1.0",
        TWO_DB,
        &node("1.1.0", "    binding: \"billing_db\"\n"),
    ))
    .expect("valid");
    let names: Vec<&str> = loaded.handlers.iter().map(|h| h.binding()).collect();
    assert_eq!(names, ["orders_db", "billing_db"]);
    let entry = &loaded.nodes[0].contract.io_operations[0];
    assert_eq!(entry.binding.as_deref(), Some("billing_db"));

    let lone = "    - type: \"db\"\n      name: \"orders_db\"\n";
    let loaded = load(&host("1.1.0", lone, &node("1.0.0", ""))).expect("valid");
    let entry = &loaded.nodes[0].contract.io_operations[0];
    assert_eq!(entry.binding.as_deref(), Some("orders_db"));

    // An unnamed binding beside named ones serves the entries that name none.
    let mixed = format!("{TWO_DB}    - type: \"db\"\n");
    let loaded = load(&host("1.1.0", &mixed, &node("1.0.0", ""))).expect("valid");
    assert_eq!(loaded.nodes[0].contract.io_operations[0].binding, None);
    assert_eq!(loaded.handlers[2].binding(), "db");
}

#[test]
fn unknown_mismatched_and_ambiguous_bindings_are_refused_in_the_node_file() {
    let unknown = host(
        "1.1.0",
        TWO_DB,
        &node("1.1.0", "    binding: \"ledger_db\"\n"),
    );
    assert_eq!(
        refused(&unknown),
        (
            "n.yaml".into(),
            Some(6),
            "binding 'ledger_db' is not defined by the runtime contract".into()
        )
    );
    let with_http = format!("{TWO_DB}    - type: \"http\"\n      name: \"api\"\n");
    let mismatch = host(
        "1.1.0",
        &with_http,
        &node("1.1.0", "    binding: \"api\"\n"),
    );
    let (_, line, message) = refused(&mismatch);
    assert_eq!(line, Some(6));
    assert_eq!(
        message,
        "binding 'api' is a http binding, and this entry's operations are db ones"
    );
    let ambiguous = host("1.1.0", TWO_DB, &node("1.0.0", ""));
    let (file, _, message) = refused(&ambiguous);
    assert_eq!(file, "n.yaml");
    assert!(
        message.contains("several db bindings and no unnamed one"),
        "{message}"
    );
}

#[test]
fn binding_names_are_unique_slugs_other_than_type_names_and_one_type_has_one_unnamed() {
    let text = node("1.1.0", "    binding: \"orders_db\"\n");
    let duplicate = format!("{TWO_DB}    - type: \"db\"\n      name: \"orders_db\"\n");
    assert_eq!(
        refused(&host("1.1.0", &duplicate, &text)),
        (
            "r.yaml".into(),
            Some(13),
            "duplicate handler name 'orders_db' (first at line 8)".into()
        )
    );
    let not_slug = "    - type: \"db\"\n      name: \"Orders-DB\"\n";
    let (_, line, message) = refused(&host("1.1.0", not_slug, &node("1.0.0", "")));
    assert_eq!(line, Some(9));
    assert!(message.contains("Orders-DB"), "{message}");
    let type_name = "    - type: \"db\"\n      name: \"http\"\n";
    let (_, _, message) = refused(&host("1.1.0", type_name, &node("1.0.0", "")));
    assert_eq!(message, "handler name 'http' is a handler type's name");
    let two_unnamed = "    - type: \"db\"\n    - type: \"db\"\n";
    let (_, line, message) = refused(&host("1.1.0", two_unnamed, &node("1.0.0", "")));
    assert_eq!(line, Some(9));
    assert!(
        message.starts_with("duplicate handler type 'db'"),
        "{message}"
    );
}

#[test]
fn schema_1_0_0_refuses_names_and_bindings_saying_to_set_1_1_0() {
    let named = "    - type: \"db\"\n      name: \"orders_db\"\n";
    let error = load(&host("1.0.0", named, &node("1.0.0", ""))).expect_err("refused");
    let shown = error.to_string();
    assert!(
        shown.contains("a handler's name is a schema 1.1.0 feature"),
        "{shown}"
    );
    assert!(shown.contains("set schema_version: \"1.1.0\""), "{shown}");

    let error = load(&host(
        "1.1.0",
        named,
        &node("1.0.0", "    binding: \"orders_db\"\n"),
    ))
    .expect_err("refused");
    let shown = error.to_string();
    assert!(
        shown.contains("binding is a schema 1.1.0 feature"),
        "{shown}"
    );
    assert!(shown.contains("n.yaml"), "{shown}");
}
