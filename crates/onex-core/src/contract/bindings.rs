//! Named handler bindings (schema 1.1.0): the runtime contract's `handlers` list, and the
//! node contracts' `binding` on an `io_operations` entry resolved against it.
//!
//! This module owns which bindings a contract may declare (per type, at most one
//! unnamed; names are slugs, unique, and not a handler type's name, which is what the
//! unnamed binding is known by) and which binding each node entry uses: the one it
//! names, else its type's unnamed one, else its type's only one. The settings of each
//! binding are the `binding` module's.

use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::SchemaVersion;
use super::binding::{RawConfig, handler_config};
use super::error::Problems;
use super::names::{check_required, check_slug, handler_type};
use super::runtime::{HandlerEntry, NodeRef};
use super::yaml::line_of;
use crate::shared::HandlerType;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHandler {
    #[serde(rename = "type")]
    handler_type: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
    config: Option<Spanned<RawConfig>>,
}

/// The checked bindings of the `handlers` list `raw`, in a contract of `version`.
pub(super) fn handler_entries(
    raw: Option<&[Spanned<RawHandler>]>,
    version: SchemaVersion,
    problems: &mut Problems,
) -> Vec<HandlerEntry> {
    let mut entries: Vec<HandlerEntry> = Vec::new();
    for entry in raw.unwrap_or_default() {
        let line = line_of(&entry.referenced);
        let Some(type_name) = &entry.value.handler_type else {
            check_required("a handlers entry", line, &[("type", false)], problems);
            continue;
        };
        let Some(handler_type) = handler_type(type_name, problems) else {
            continue;
        };
        let name = match &entry.value.name {
            None => None,
            Some(name) => match binding_name(name, version, &entries, problems) {
                Some(name) => Some(name),
                None => continue,
            },
        };
        let unnamed_twice = entries
            .iter()
            .find(|e| name.is_none() && e.name.is_none() && e.handler_type == handler_type);
        if let Some(first) = unnamed_twice {
            let first_line = first
                .line
                .map_or(String::new(), |l| format!(" (first at line {l})"));
            let (hint, action) = if version == SchemaVersion::V1_0 {
                (
                    "MVP runs one handler per type",
                    "remove the duplicate handler",
                )
            } else {
                (
                    "a type has at most one unnamed binding; more need distinct names",
                    "remove the duplicate, or give each binding of the type a name",
                )
            };
            problems.add(
                line_of(&type_name.referenced),
                format!("duplicate handler type '{handler_type}'{first_line}"),
                hint,
                action,
            );
            continue;
        }
        let config = match &entry.value.config {
            None => None,
            Some(config) if version == SchemaVersion::V1_0 => {
                problems.add(
                    line_of(&config.referenced),
                    "a handler's config is a schema 1.1.0 feature, and this contract is 1.0.0",
                    "schema 1.0.0 makes one call per request with the handler's own limits",
                    "set schema_version: \"1.1.0\"",
                );
                continue;
            }
            Some(config) => match handler_config(&config.value, handler_type, problems) {
                Some(config) => Some(config),
                None => continue,
            },
        };
        entries.push(HandlerEntry {
            handler_type,
            name,
            line,
            config,
        });
    }
    entries
}

/// The checked `name` of a binding: schema 1.1.0, a slug, not a handler type's name,
/// not taken by an earlier binding in `entries`.
fn binding_name(
    name: &Spanned<String>,
    version: SchemaVersion,
    entries: &[HandlerEntry],
    problems: &mut Problems,
) -> Option<String> {
    let line = line_of(&name.referenced);
    if version == SchemaVersion::V1_0 {
        problems.add(
            line,
            "a handler's name is a schema 1.1.0 feature, and this contract is 1.0.0",
            "schema 1.0.0 runs one unnamed handler per type",
            "set schema_version: \"1.1.0\"",
        );
        return None;
    }
    let before = problems.len();
    check_slug("handler name", name, problems);
    if problems.len() > before {
        return None;
    }
    if HandlerType::from_name(&name.value).is_some() {
        problems.add(
            line,
            format!("handler name '{}' is a handler type's name", name.value),
            "an unnamed binding is known by its type's name, so a name must differ from every type's",
            "choose another name, e.g. orders_db",
        );
        return None;
    }
    if let Some(first) = entries
        .iter()
        .find(|e| e.name.as_ref() == Some(&name.value))
    {
        let at = first
            .line
            .map_or(String::new(), |l| format!(" (first at line {l})"));
        problems.add(
            line,
            format!("duplicate handler name '{}'{at}", name.value),
            "each binding's name is unique: nodes pick their binding by it",
            "rename one of them",
        );
        return None;
    }
    Some(name.value.clone())
}

/// Checks every node entry's `binding` against `handlers`, and fills in the name of a
/// type's only binding when that binding is named and the entry names none. Problems
/// are reported in the node's own file, at the entry's line.
pub(super) fn resolve_bindings(
    handlers: &[HandlerEntry],
    nodes: &mut [NodeRef],
    problems: &mut Problems,
) {
    for node in nodes {
        let file: &Path = &node.contract.path;
        let mut found = Problems::new(file);
        for entry in &mut node.contract.io_operations {
            let of_type: Vec<&HandlerEntry> = handlers
                .iter()
                .filter(|h| h.handler_type == entry.handler_type)
                .collect();
            let names = || {
                let names: Vec<&str> = of_type.iter().map(|h| h.binding()).collect();
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            };
            let kind = entry.handler_type;
            match entry.binding.as_deref() {
                Some(wanted) => match handlers.iter().find(|h| h.name.as_deref() == Some(wanted)) {
                    None => found.add(
                        entry.line,
                        format!("binding '{wanted}' is not defined by the runtime contract"),
                        format!("the runtime contract's {kind} bindings: {}", names()),
                        "name one of them, or add the binding to the runtime contract's handlers",
                    ),
                    Some(binding) if binding.handler_type != kind => found.add(
                        entry.line,
                        format!(
                            "binding '{wanted}' is a {} binding, and this entry's operations are {kind} ones",
                            binding.handler_type
                        ),
                        format!("the runtime contract's {kind} bindings: {}", names()),
                        format!("name a {kind} binding"),
                    ),
                    Some(_) => {}
                },
                None if of_type.iter().any(|h| h.name.is_none()) => {}
                None => match of_type.as_slice() {
                    [only] => entry.binding = only.name.clone(),
                    [] => {}
                    _ => found.add(
                        entry.line,
                        format!(
                            "the runtime contract has several {kind} bindings and no unnamed one; this entry names none"
                        ),
                        format!("its {kind} bindings: {}", names()),
                        "add 'binding: NAME' to this entry (node schema_version \"1.1.0\")",
                    ),
                },
            }
        }
        if !found.is_empty() {
            problems.absorb(found.into_error());
        }
    }
}
