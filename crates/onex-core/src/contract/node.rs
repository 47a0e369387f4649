//! Node contracts: what a node is, and which I/O operations it may perform.
//!
//! A node contract's `io_operations` are the node's permissions: the host refuses any
//! request for an operation the node does not declare, or for an HTTP URL outside the
//! declared `target`. Whether the handler supports a declared operation is checked when
//! the host is wired (by `onex-host`), against the handler's own `describe()`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::SchemaVersion;
use super::error::{ContractError, Problems};
use super::model::Model;
use super::names::{
    check_operation_version, check_required, check_schema_version, check_slug, handler_type,
};
use super::target::HttpTarget;
use super::yaml::{self, line_of};
use crate::envelope::operation_domain;
use crate::shared::HandlerType;

/// The kinds of node a contract may declare (the `_GENERIC` variants).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeType {
    /// Performs external I/O through handlers.
    EffectGeneric,
    /// Pure computation: no I/O operations.
    ComputeGeneric,
    /// Folds events into state.
    ReducerGeneric,
    /// Coordinates other nodes.
    OrchestratorGeneric,
}

impl NodeType {
    const ALL: [NodeType; 4] = [
        NodeType::EffectGeneric,
        NodeType::ComputeGeneric,
        NodeType::ReducerGeneric,
        NodeType::OrchestratorGeneric,
    ];

    /// The name used in contracts, e.g. `EFFECT_GENERIC`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::EffectGeneric => "EFFECT_GENERIC",
            NodeType::ComputeGeneric => "COMPUTE_GENERIC",
            NodeType::ReducerGeneric => "REDUCER_GENERIC",
            NodeType::OrchestratorGeneric => "ORCHESTRATOR_GENERIC",
        }
    }

    fn from_name(name: &str) -> Option<NodeType> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// One entry of `io_operations`: operations of one handler type, optionally confined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoOperation {
    /// The handler type that performs these operations.
    pub handler_type: HandlerType,
    /// The dotted operations the node may request, e.g. `http.get`.
    pub operations: Vec<String>,
    /// For `http`: the URL prefix the operations may reach.
    pub target: Option<Arc<HttpTarget>>,
    /// The entry's line in the node contract.
    pub line: Option<u64>,
    /// The handler binding that performs them (`binding`, schema 1.1.0), by name;
    /// `None`: the unnamed binding of `handler_type`. Loading the runtime contract fills
    /// it in when the type's only binding is named.
    pub binding: Option<String>,
}

/// A validated node contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeContract {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// The node's name, which is its slug.
    pub name: String,
    /// The node's own version.
    pub node_version: String,
    /// What kind of node it is.
    pub node_type: NodeType,
    /// What the node does, for people.
    pub description: Option<String>,
    /// The shape of the node's input.
    pub input_model: Option<Model>,
    /// The shape of the node's output.
    pub output_model: Option<Model>,
    /// The I/O the node may perform.
    pub io_operations: Vec<IoOperation>,
    /// Other nodes it depends on.
    pub dependencies: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    schema_version: Option<Spanned<String>>,
    node_version: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
    node_type: Option<Spanned<String>>,
    description: Option<String>,
    input_model: Option<Model>,
    output_model: Option<Model>,
    #[serde(default)]
    io_operations: Vec<Spanned<RawIoOperation>>,
    #[serde(default)]
    dependencies: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIoOperation {
    #[serde(rename = "type")]
    handler_type: Option<Spanned<String>>,
    operations: Option<Vec<Spanned<String>>>,
    target: Option<Spanned<String>>,
    binding: Option<Spanned<String>>,
}

impl NodeContract {
    /// Parses and validates the node contract `text`, read from `file`.
    pub fn parse(text: &str, file: &Path) -> Result<NodeContract, ContractError> {
        Self::parse_with(text, file, false, &mut Vec::new())
    }

    /// As [`NodeContract::parse`]; with `lenient`, unknown fields are ignored and
    /// recorded in `warnings`.
    pub(super) fn parse_with(
        text: &str,
        file: &Path,
        lenient: bool,
        warnings: &mut Vec<super::Problem>,
    ) -> Result<NodeContract, ContractError> {
        super::secrets::refuse_credentials(text, file)?;
        let raw: RawNode = yaml::parse_with(text, file, lenient, warnings)?;
        let mut problems = Problems::new(file);
        check_required(
            "the node contract",
            Some(1),
            &[
                ("schema_version", raw.schema_version.is_some()),
                ("node_version", raw.node_version.is_some()),
                ("name", raw.name.is_some()),
                ("node_type", raw.node_type.is_some()),
            ],
            &mut problems,
        );
        let version = check_schema_version(raw.schema_version.as_ref(), &mut problems);
        if let Some(name) = &raw.name {
            check_slug("name", name, &mut problems);
        }
        let node_type = raw
            .node_type
            .as_ref()
            .and_then(|t| node_type(t, &mut problems));
        let io_operations: Vec<IoOperation> = raw
            .io_operations
            .iter()
            .filter_map(|entry| io_operation(entry, version, &mut problems))
            .collect();
        check_unique_operations(&io_operations, &mut problems);
        if node_type == Some(NodeType::ComputeGeneric) && !io_operations.is_empty() {
            problems.add(
                io_operations[0].line,
                "a COMPUTE_GENERIC node declares io_operations",
                "compute nodes are pure logic and perform no I/O",
                "remove the io_operations, or make the node EFFECT_GENERIC",
            );
        }
        let (Some(name), Some(node_version), Some(node_type)) =
            (raw.name, raw.node_version, node_type)
        else {
            return Err(problems.into_error());
        };
        problems.finish(NodeContract {
            path: file.to_path_buf(),
            name: name.value,
            node_version: node_version.value,
            node_type,
            description: raw.description,
            input_model: raw.input_model,
            output_model: raw.output_model,
            io_operations,
            dependencies: raw.dependencies,
        })
    }

    /// The entries that allow `operation`.
    pub fn entries_for<'a, 'o>(
        &'a self,
        operation: &'o str,
    ) -> impl Iterator<Item = &'a IoOperation> + use<'a, 'o> {
        self.io_operations
            .iter()
            .filter(move |entry| entry.operations.iter().any(|op| op == operation))
    }

    /// Every operation the node declares for `handler_type`.
    pub fn operations_of(&self, handler_type: Option<HandlerType>) -> Vec<String> {
        self.io_operations
            .iter()
            .filter(|entry| handler_type.is_none_or(|t| t == entry.handler_type))
            .flat_map(|entry| entry.operations.iter().cloned())
            .collect()
    }
}

fn node_type(name: &Spanned<String>, problems: &mut Problems) -> Option<NodeType> {
    let found = NodeType::from_name(&name.value);
    if found.is_none() {
        let valid: Vec<&str> = NodeType::ALL.iter().map(|t| t.as_str()).collect();
        problems.add(
            line_of(&name.referenced),
            format!("unknown node_type '{}'", name.value),
            format!("node types are: {}", valid.join(", ")),
            "use one of the _GENERIC node types",
        );
    }
    found
}

fn io_operation(
    entry: &Spanned<RawIoOperation>,
    version: Option<SchemaVersion>,
    problems: &mut Problems,
) -> Option<IoOperation> {
    let line = line_of(&entry.referenced);
    let raw = &entry.value;
    check_required(
        "an io_operations entry",
        line,
        &[
            ("type", raw.handler_type.is_some()),
            ("operations", raw.operations.is_some()),
        ],
        problems,
    );
    let handler_type = handler_type(raw.handler_type.as_ref()?, problems)?;
    let mut operations = Vec::new();
    for operation in raw.operations.iter().flatten() {
        let op_line = line_of(&operation.referenced);
        match operation_domain(&operation.value) {
            Some(domain) if domain == handler_type.as_str() => {
                check_operation_version(operation, version, problems);
                operations.push(operation.value.clone());
            }
            Some(_) => problems.add(
                op_line,
                format!(
                    "operation '{}' is not a {handler_type} operation",
                    operation.value
                ),
                format!("operations of a '{handler_type}' entry start with '{handler_type}.'"),
                "move the operation to an entry of its own type",
            ),
            None => problems.add(
                op_line,
                format!("operation '{}' is not dotted lowercase", operation.value),
                "operations are {domain}.{action}, e.g. http.get or db.query",
                "rename the operation",
            ),
        }
    }
    if raw.operations.as_ref().is_some_and(Vec::is_empty) {
        problems.add(
            line,
            "an io_operations entry lists no operations",
            "each entry names the operations the node may perform",
            "list the operations, or remove the entry",
        );
    }
    let target = match (&raw.target, handler_type) {
        (None, _) => None,
        (Some(target), HandlerType::Http) => match HttpTarget::parse(&target.value) {
            Ok(parsed) => Some(Arc::new(parsed)),
            Err(reason) => {
                problems.add(
                    line_of(&target.referenced),
                    format!("invalid target: {reason}"),
                    "a target is the URL prefix the node may call, e.g. https://api.example.com/users",
                    "fix the target URL",
                );
                None
            }
        },
        (Some(target), other) => {
            problems.add(
                line_of(&target.referenced),
                format!("a '{other}' entry declares a target"),
                "targets confine HTTP calls; they mean nothing to other handler types",
                "remove the target",
            );
            None
        }
    };
    let binding = raw.binding.as_ref().and_then(|binding| {
        if version == Some(SchemaVersion::V1_0) {
            problems.add(
                line_of(&binding.referenced),
                "an io_operations entry's binding is a schema 1.1.0 feature, and this contract is 1.0.0",
                "schema 1.0.0 runs every operation on the one handler of its type",
                "set schema_version: \"1.1.0\"",
            );
            return None;
        }
        check_slug("binding", binding, problems);
        Some(binding.value.clone())
    });
    Some(IoOperation {
        handler_type,
        operations,
        target,
        line,
        binding,
    })
}

fn check_unique_operations(entries: &[IoOperation], problems: &mut Problems) {
    let mut seen = HashSet::new();
    for entry in entries.iter().filter(|entry| entry.target.is_none()) {
        for operation in &entry.operations {
            if !seen.insert(operation.as_str()) {
                problems.add(
                    entry.line,
                    format!("operation '{operation}' is declared twice"),
                    "declare each operation once (several entries may share one only with different targets)",
                    "remove the duplicate",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
