//! The runtime-host contract: the host's name, event bus, handlers and nodes.
//!
//! Node references resolve as docs/INTERFACE.md says: `contract: PATH` if given (relative paths
//! from the runtime contract's directory, absolute as they are, `~` not expanded),
//! else `nodes/<slug>.yaml` beside the runtime contract, else `../nodes/<slug>.yaml`.
//! Symbolic links are followed; paths are never canonicalised.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::SchemaVersion;
use super::binding::HandlerConfig;
use super::bindings::{RawHandler, handler_entries, resolve_bindings};
use super::error::{ContractError, Problem, Problems};
use super::event_bus::{EventBusConfig, RawEventBus, event_bus};
use super::names::{check_required, check_schema_version, check_slug};
use super::node::NodeContract;
use super::secrets;
use super::yaml::{self, line_of};
use crate::bus::Topic;
use crate::shared::HandlerType;

/// A handler binding the contract enables: its type, its name, its line and its settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerEntry {
    /// The handler's type.
    pub handler_type: HandlerType,
    /// Its `name` (schema 1.1.0), a slug; `None` for the type's unnamed binding.
    pub name: Option<String>,
    /// Its line in the runtime contract.
    pub line: Option<u64>,
    /// Its `config` (schema 1.1.0), defaults filled in; `None` when it has none: one
    /// call per request, with the handler's own limits, as in schema 1.0.0.
    pub config: Option<HandlerConfig>,
}

/// A node the contract hosts, with its resolved node contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRef {
    /// The node's slug (equal to its contract's name).
    pub slug: String,
    /// The reference's line in the runtime contract.
    pub line: Option<u64>,
    /// The node's contract.
    pub contract: NodeContract,
}

/// A validated runtime-host contract, with every node contract it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeHostContract {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// The runtime's name, a slug; it names the bus topics.
    pub name: String,
    /// The runtime's version.
    pub version: String,
    /// The schema version the contract is written in.
    pub schema_version: SchemaVersion,
    /// The event bus the host runs on, with its settings.
    pub event_bus: EventBusConfig,
    /// The handler bindings to register: per type, at most one unnamed, any named.
    pub handlers: Vec<HandlerEntry>,
    /// The nodes to host.
    pub nodes: Vec<NodeRef>,
    /// Problems that do not stop the host (e.g. an empty handler list).
    pub warnings: Vec<Problem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    schema_version: Option<Spanned<String>>,
    runtime: Option<Spanned<RawRuntime>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuntime {
    name: Option<Spanned<String>>,
    version: Option<Spanned<String>>,
    event_bus: Option<Spanned<RawEventBus>>,
    handlers: Option<Vec<Spanned<RawHandler>>>,
    nodes: Option<Vec<Spanned<RawNodeRef>>>,
}

impl HandlerEntry {
    /// The name the host knows this binding by: its `name`, else its type's (`db`).
    /// Routing, health, logs and start-up errors use it.
    pub fn binding(&self) -> &str {
        self.name.as_deref().unwrap_or(self.handler_type.as_str())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNodeRef {
    slug: Option<Spanned<String>>,
    contract: Option<Spanned<String>>,
}

impl RuntimeHostContract {
    /// Validates the runtime contract `text`, read from `file`, and loads the node
    /// contracts it names (paths resolve from `file`'s directory).
    /// `${VAR}` in the event bus's settings is read from the process's environment.
    pub fn parse(text: &str, file: &Path) -> Result<RuntimeHostContract, ContractError> {
        Self::parse_with_env(text, file, &|name| std::env::var(name).ok())
    }

    /// As [`RuntimeHostContract::parse`], with `${VAR}` read through `env`.
    pub fn parse_with_env(
        text: &str,
        file: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RuntimeHostContract, ContractError> {
        Self::parse_lenient(text, file, env, false)
    }

    /// As [`RuntimeHostContract::parse_with_env`]; with `lenient` (`--lenient`), an
    /// unknown field in this contract or a node contract is a warning, and ignored;
    /// every other rule stays strict.
    pub fn parse_lenient(
        text: &str,
        file: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        lenient: bool,
    ) -> Result<RuntimeHostContract, ContractError> {
        secrets::refuse_credentials(text, file)?;
        let mut ignored = Vec::new();
        let raw: RawFile = yaml::parse_with(text, file, lenient, &mut ignored)?;
        let mut problems = Problems::new(file);
        check_required(
            "the contract",
            Some(1),
            &[
                ("schema_version", raw.schema_version.is_some()),
                ("runtime", raw.runtime.is_some()),
            ],
            &mut problems,
        );
        let schema_version = check_schema_version(raw.schema_version.as_ref(), &mut problems)
            .unwrap_or(SchemaVersion::V1_0);
        let Some(runtime) = raw.runtime else {
            return Err(problems.into_error());
        };
        let runtime_line = line_of(&runtime.referenced);
        let runtime = runtime.value;
        check_required(
            "runtime",
            runtime_line,
            &[
                ("name", runtime.name.is_some()),
                ("version", runtime.version.is_some()),
                ("event_bus", runtime.event_bus.is_some()),
                ("handlers", runtime.handlers.is_some()),
                ("nodes", runtime.nodes.is_some()),
            ],
            &mut problems,
        );
        if let Some(name) = &runtime.name {
            check_slug("runtime name", name, &mut problems);
        }
        let event_bus = runtime
            .event_bus
            .as_ref()
            .and_then(|bus| event_bus(bus, schema_version, env, &mut problems));
        let handlers = handler_entries(runtime.handlers.as_deref(), schema_version, &mut problems);
        let mut nodes = resolve_nodes(
            runtime.nodes.as_deref().unwrap_or_default(),
            file,
            (lenient, &mut ignored),
            &mut problems,
        );
        resolve_bindings(&handlers, &mut nodes, &mut problems);

        let mut warnings = Problems::new(file);
        if runtime.handlers.as_ref().is_some_and(Vec::is_empty) {
            warnings.add(
                runtime_line,
                "the contract enables no handlers",
                "every request will be answered HANDLER_NOT_FOUND",
                "add handlers, e.g. '- type: http'",
            );
        }
        if runtime.nodes.as_ref().is_some_and(Vec::is_empty) {
            warnings.add(
                runtime_line,
                "the contract hosts no nodes",
                "every request will be answered NODE_NOT_FOUND",
                "add nodes, e.g. '- slug: example_node'",
            );
        }
        let (Some(name), Some(version), Some(event_bus)) =
            (runtime.name, runtime.version, event_bus)
        else {
            return Err(problems.into_error());
        };
        problems.finish(RuntimeHostContract {
            path: file.to_path_buf(),
            name: name.value,
            version: version.value,
            schema_version,
            event_bus,
            handlers,
            nodes,
            warnings: ignored
                .into_iter()
                .chain(warnings.into_error().into_problems())
                .collect(),
        })
    }

    /// Loads and validates the runtime contract at `path` and every node contract it names.
    pub fn load(path: &Path) -> Result<RuntimeHostContract, ContractError> {
        Self::parse(&yaml::read(path)?, path)
    }

    /// As [`RuntimeHostContract::load`]; with `lenient`, unknown fields warn instead of
    /// failing (see [`RuntimeHostContract::parse_lenient`]).
    pub fn load_with(path: &Path, lenient: bool) -> Result<RuntimeHostContract, ContractError> {
        let env = |name: &str| std::env::var(name).ok();
        Self::parse_lenient(&yaml::read(path)?, path, &env, lenient)
    }

    /// The topic the host consumes requests from: Kafka's configured input, else
    /// `onex.<name>.cmd.v1`.
    pub fn input_topic(&self) -> Topic {
        match &self.event_bus {
            EventBusConfig::Kafka(kafka) => kafka.input.clone(),
            EventBusConfig::InMemory => Topic::new(&format!("onex.{}.cmd.v1", self.name)),
        }
    }

    /// The topic the host publishes responses to: Kafka's configured output, else
    /// `onex.<name>.res.v1`.
    pub fn output_topic(&self) -> Topic {
        match &self.event_bus {
            EventBusConfig::Kafka(kafka) => kafka.output.clone(),
            EventBusConfig::InMemory => Topic::new(&format!("onex.{}.res.v1", self.name)),
        }
    }
}

/// The nodes `refs` name, their contracts loaded (with `lenient`, unknown fields added
/// to the warnings beside it).
fn resolve_nodes(
    refs: &[Spanned<RawNodeRef>],
    file: &Path,
    (lenient, warnings): (bool, &mut Vec<Problem>),
    problems: &mut Problems,
) -> Vec<NodeRef> {
    let base = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut first_line: HashMap<String, Option<u64>> = HashMap::new();
    let mut nodes = Vec::new();
    for node_ref in refs {
        let line = line_of(&node_ref.referenced);
        let Some(slug) = &node_ref.value.slug else {
            check_required("a nodes entry", line, &[("slug", false)], problems);
            continue;
        };
        check_slug("node slug", slug, problems);
        if let Some(first) = first_line.insert(slug.value.clone(), line) {
            let at = first.map_or(String::new(), |l| format!(" (first at line {l})"));
            problems.add(
                line,
                format!("node '{}' is listed twice{at}", slug.value),
                "each node is hosted once",
                "remove the duplicate node",
            );
            continue;
        }
        let Some(path) = node_path(
            &slug.value,
            node_ref.value.contract.as_ref(),
            &base,
            line,
            problems,
        ) else {
            continue;
        };
        match NodeContract::load_with(&path, lenient, warnings) {
            Ok(contract) if contract.name != slug.value => problems.add(
                line,
                format!(
                    "node '{}' resolves to {}, whose name is '{}'",
                    slug.value,
                    path.display(),
                    contract.name
                ),
                "a node contract's name must equal the slug that refers to it",
                "rename the slug or the node contract's name",
            ),
            Ok(contract) => nodes.push(NodeRef {
                slug: slug.value.clone(),
                line,
                contract,
            }),
            Err(error) => {
                problems.add(
                    line,
                    format!(
                        "node '{}': its contract {} is invalid",
                        slug.value,
                        path.display()
                    ),
                    "the problems in that file are listed below",
                    "fix the node contract",
                );
                problems.absorb(error);
            }
        }
    }
    nodes
}

/// Where the contract of node `slug` is, or a problem naming every path tried.
fn node_path(
    slug: &str,
    declared: Option<&Spanned<String>>,
    base: &Path,
    line: Option<u64>,
    problems: &mut Problems,
) -> Option<PathBuf> {
    if let Some(declared) = declared {
        let text = declared.value.as_str();
        if text.starts_with('~') {
            problems.add(
                line_of(&declared.referenced),
                format!("node '{slug}': '~' is not expanded in '{text}'"),
                "paths are absolute, or relative to the runtime contract's directory",
                "write the path without '~'",
            );
            return None;
        }
        let path = base.join(text);
        if path.is_file() {
            return Some(path);
        }
        problems.add(
            line_of(&declared.referenced),
            format!("node '{slug}': contract file not found: {}", path.display()),
            "relative paths start from the runtime contract's directory",
            "fix the path, or create the node contract there",
        );
        return None;
    }
    let tried = [
        base.join("nodes").join(format!("{slug}.yaml")),
        base.join("..").join("nodes").join(format!("{slug}.yaml")),
    ];
    if let Some(found) = tried.iter().find(|path| path.is_file()) {
        return Some(found.clone());
    }
    let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    problems.add(
        line,
        format!("node '{slug}': no contract found; tried {}", tried.join(", ")),
        "without 'contract: PATH', a node's contract is nodes/<slug>.yaml beside the runtime contract, or ../nodes/<slug>.yaml",
        format!("create {}, or add 'contract: PATH' to the node", tried[0]),
    );
    None
}
