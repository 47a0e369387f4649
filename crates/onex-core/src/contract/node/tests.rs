//! The node contract's parsing and checks, on texts written here.

use super::*;

fn parse(text: &str) -> Result<NodeContract, ContractError> {
    NodeContract::parse(text, Path::new("node.yaml"))
}

const EFFECT: &str = r#"
schema_version: "1.0.0"
node_version: "1.0.0"
name: "user_service_effect"
node_type: "EFFECT_GENERIC"
description: "Fetches user data from external API"
input_model:
  name: "ModelUserRequest"
  fields:
    - name: "user_id"
      type: "string"
      required: true
io_operations:
  - type: "http"
    operations: ["http.get"]
    target: "https://api.example.com/users"
dependencies: []
"#;

#[test]
fn parses_the_specification_effect_node() {
    let node = parse(EFFECT).unwrap();
    assert_eq!(node.name, "user_service_effect");
    assert_eq!(node.node_type, NodeType::EffectGeneric);
    let entry = &node.io_operations[0];
    assert_eq!(entry.handler_type, HandlerType::Http);
    assert_eq!(entry.line, Some(14));
    assert_eq!(
        entry.target.as_deref().map(HttpTarget::as_str),
        Some("https://api.example.com/users")
    );
    assert_eq!(node.entries_for("http.get").count(), 1);
    assert_eq!(node.entries_for("http.post").count(), 0);
}

#[test]
fn reports_every_problem_with_its_line() {
    let text = r#"
schema_version: "2.0.0"
node_version: "1.0.0"
name: "Bad-Name"
node_type: "COMPUTE_GENERIC"
io_operations:
  - type: "vault"
    operations: ["vault.read"]
  - type: "db"
    operations: ["db.query", "http.get", "DB.EXECUTE"]
    target: "https://x.test"
"#;
    let error = parse(text).unwrap_err();
    let found: Vec<(Option<u64>, &str)> = error
        .problems()
        .iter()
        .map(|p| (p.line, p.message.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![
            (
                Some(2),
                "schema version mismatch: the contract has '2.0.0', this host reads '1.0.0' and '1.1.0'"
            ),
            (Some(4), "name 'Bad-Name' is not a valid slug"),
            (Some(7), "handler type 'vault' is deferred to Beta"),
            (Some(10), "operation 'http.get' is not a db operation"),
            (Some(10), "operation 'DB.EXECUTE' is not dotted lowercase"),
            (Some(11), "a 'db' entry declares a target"),
            (Some(9), "a COMPUTE_GENERIC node declares io_operations"),
        ]
    );
}

#[test]
fn lists_all_missing_required_fields_at_once() {
    let error = parse("description: nothing else\n").unwrap_err();
    assert_eq!(
        error.problems()[0].message,
        "missing required fields in the node contract: schema_version, node_version, name, node_type"
    );
}
