//! Checks on the names contracts share: handler types, slugs and schema versions.

use serde_saphyr::Spanned;

use super::error::Problems;
use super::yaml::line_of;
use super::{BETA_OPERATIONS, SchemaVersion};
use crate::shared::HandlerType;

/// The handler type named by `name`, or a problem saying why it is refused.
pub(super) fn handler_type(name: &Spanned<String>, problems: &mut Problems) -> Option<HandlerType> {
    let line = line_of(&name.referenced);
    let value = name.value.as_str();
    if let Some(handler_type) = HandlerType::from_name(value) {
        return Some(handler_type);
    }
    let valid = "Valid handler types are: http, db, and local (development and tests only)";
    match value {
        "vault" | "consul" => problems.add(
            line,
            format!("handler type '{value}' is deferred to Beta"),
            valid,
            format!("remove the '{value}' handler"),
        ),
        "kafka" => problems.add(
            line,
            "'kafka' is an event bus, not a handler",
            "the bus is set by event_bus.kind, and MVP's only bus is inmemory",
            "remove 'kafka' from the handlers",
        ),
        _ => problems.add(
            line,
            format!("Unknown handler type '{value}'"),
            valid,
            "Remove or replace the invalid handler type",
        ),
    }
    None
}

/// Whether `slug` is a node slug: a lowercase letter, then lowercase letters, digits or `_`.
pub(super) fn is_slug(slug: &str) -> bool {
    let mut chars = slug.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Checks `slug` (the value of `field`) and records a problem if it is not a slug.
pub(super) fn check_slug(field: &str, slug: &Spanned<String>, problems: &mut Problems) {
    if !is_slug(&slug.value) {
        problems.add(
            line_of(&slug.referenced),
            format!("{field} '{}' is not a valid slug", slug.value),
            "slugs are snake_case: a lowercase letter, then lowercase letters, digits or '_'",
            format!("rename it, e.g. '{}'", suggest_slug(&slug.value)),
        );
    }
}

fn suggest_slug(text: &str) -> String {
    let mut slug: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if !slug.starts_with(|c: char| c.is_ascii_lowercase()) {
        slug.insert(0, 'n');
    }
    slug
}

/// Checks the `schema_version` of a contract, which must be present and equal ours.
pub(super) fn check_schema_version(
    version: Option<&Spanned<String>>,
    problems: &mut Problems,
) -> Option<SchemaVersion> {
    let version = version?;
    let found = SchemaVersion::from_text(&version.value);
    if found.is_none() {
        let readable: Vec<String> = SchemaVersion::ALL
            .iter()
            .map(|v| format!("'{}'", v.as_str()))
            .collect();
        problems.add(
            line_of(&version.referenced),
            format!(
                "schema version mismatch: the contract has '{}', this host reads {}",
                version.value,
                readable.join(" and ")
            ),
            "1.0.0 is the MVP schema; 1.1.0 adds Beta fields such as the kafka event bus and handler config",
            "set schema_version: \"1.0.0\" (or \"1.1.0\" for Beta fields such as the kafka bus or a handler's config), or run a host that reads this version",
        );
    }
    found
}

/// Records a problem if `operation` is one schema 1.1.0 adds and the contract is at
/// `version` 1.0.0 (`None`: the version is missing or unreadable, already reported).
pub(super) fn check_operation_version(
    operation: &Spanned<String>,
    version: Option<SchemaVersion>,
    problems: &mut Problems,
) {
    if version == Some(SchemaVersion::V1_0) && BETA_OPERATIONS.contains(&operation.value.as_str()) {
        problems.add(
            line_of(&operation.referenced),
            format!(
                "operation '{}' is a schema 1.1.0 (Beta) operation, and this contract is 1.0.0",
                operation.value
            ),
            format!(
                "schema 1.0.0 has the MVP operations only; 1.1.0 adds {}",
                BETA_OPERATIONS.join(", ")
            ),
            "set schema_version: \"1.1.0\"",
        );
    }
}

/// Records one problem listing every missing required field of the mapping `within`.
pub(super) fn check_required(
    within: &str,
    line: Option<u64>,
    fields: &[(&str, bool)],
    problems: &mut Problems,
) {
    let missing: Vec<&str> = fields
        .iter()
        .filter(|(_, present)| !present)
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() {
        problems.add(
            line,
            format!(
                "missing required fields in {within}: {}",
                missing.join(", ")
            ),
            "see the examples under contracts/ for every required field",
            format!("add {}", missing.join(", ")),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::error::ContractError;
    use super::super::node::NodeContract;
    use super::*;

    fn parse(text: &str) -> Result<NodeContract, ContractError> {
        NodeContract::parse(text, Path::new("node.yaml"))
    }

    #[test]
    fn beta_operations_need_schema_1_1_0() {
        let node = |version: &str| {
            format!(
                "schema_version: \"{version}\"\nnode_version: \"1.0.0\"\nname: \"n\"\nnode_type: \"EFFECT_GENERIC\"\nio_operations:\n  - type: \"http\"\n    operations: [\"http.get\", \"http.put\", \"http.patch\", \"http.delete\"]\n  - type: \"db\"\n    operations: [\"db.query\", \"db.transaction\"]\n"
            )
        };
        let error = parse(&node("1.0.0")).unwrap_err();
        let found: Vec<(Option<u64>, &str, &str)> = error
            .problems()
            .iter()
            .map(|p| (p.line, p.message.as_str(), p.action.as_str()))
            .collect();
        let beta = |op: &str| {
            format!(
                "operation '{op}' is a schema 1.1.0 (Beta) operation, and this contract is 1.0.0"
            )
        };
        let expected: Vec<(Option<u64>, String)> = vec![
            (Some(7), beta("http.put")),
            (Some(7), beta("http.patch")),
            (Some(7), beta("http.delete")),
            (Some(9), beta("db.transaction")),
        ];
        assert_eq!(
            found
                .iter()
                .map(|(line, message, _)| (*line, (*message).to_owned()))
                .collect::<Vec<_>>(),
            expected
        );
        assert!(
            found
                .iter()
                .all(|(_, _, action)| *action == "set schema_version: \"1.1.0\"")
        );
        let node = parse(&node("1.1.0")).unwrap();
        assert_eq!(
            node.operations_of(Some(HandlerType::Db)),
            ["db.query", "db.transaction"]
        );
    }

    #[test]
    fn slugs_are_snake_case() {
        assert!(is_slug("user_service_effect2"));
        for bad in ["", "User", "2fast", "a-b", "a.b", "_x"] {
            assert!(!is_slug(bad), "{bad}");
        }
        assert_eq!(suggest_slug("User-Service"), "user_service");
    }
}
