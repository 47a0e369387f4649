//! Handler contracts: `handler_contract.yaml` files that declare what one handler supports.
//!
//! [`HandlerContractSource`] discovers them under a directory (checklist item 6). Each
//! declares one handler: its type, version, supported operations, required payload
//! fields, response shape and limits, which is exactly what the handler's `describe()`
//! reports; the project's tests hold the two in agreement.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::error::{ContractError, Problems};
use super::names::{check_operation_version, check_required, check_schema_version, handler_type};
use super::yaml::{self, line_of};
use crate::envelope::operation_domain;
use crate::shared::Description;

/// The file name a handler contract has.
pub const HANDLER_CONTRACT_FILE: &str = "handler_contract.yaml";

/// How deep discovery looks below its root; guards against symlink loops.
const MAX_DEPTH: usize = 8;

/// A validated handler contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerContract {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// What the handler declares: the same shape `describe()` returns.
    pub description: Description,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHandlerContract {
    schema_version: Option<Spanned<String>>,
    handler_type: Option<Spanned<String>>,
    version: Option<String>,
    supported_operations: Option<Vec<Spanned<String>>>,
    required_payload_fields: Option<Vec<String>>,
    response_shape: Option<BTreeMap<String, String>>,
    #[serde(default)]
    limits: BTreeMap<String, u64>,
}

impl HandlerContract {
    /// Parses and validates the handler contract `text`, read from `file`.
    pub fn parse(text: &str, file: &Path) -> Result<HandlerContract, ContractError> {
        super::secrets::refuse_credentials(text, file)?;
        let raw: RawHandlerContract = yaml::parse(text, file)?;
        let mut problems = Problems::new(file);
        check_required(
            "the handler contract",
            Some(1),
            &[
                ("schema_version", raw.schema_version.is_some()),
                ("handler_type", raw.handler_type.is_some()),
                ("version", raw.version.is_some()),
                ("supported_operations", raw.supported_operations.is_some()),
                (
                    "required_payload_fields",
                    raw.required_payload_fields.is_some(),
                ),
                ("response_shape", raw.response_shape.is_some()),
            ],
            &mut problems,
        );
        let version = check_schema_version(raw.schema_version.as_ref(), &mut problems);
        let handler_type = raw
            .handler_type
            .as_ref()
            .and_then(|t| handler_type(t, &mut problems));
        for operation in raw.supported_operations.iter().flatten() {
            let domain = operation_domain(&operation.value);
            if handler_type.is_some_and(|t| domain != Some(t.as_str())) {
                problems.add(
                    line_of(&operation.referenced),
                    format!(
                        "operation '{}' does not belong to this handler",
                        operation.value
                    ),
                    "a handler's operations are dotted and start with its type, e.g. http.get",
                    "rename or remove the operation",
                );
            }
            check_operation_version(operation, version, &mut problems);
        }
        let (
            Some(handler_type),
            Some(version),
            Some(operations),
            Some(required_payload_fields),
            Some(response_shape),
        ) = (
            handler_type,
            raw.version,
            raw.supported_operations,
            raw.required_payload_fields,
            raw.response_shape,
        )
        else {
            return Err(problems.into_error());
        };
        problems.finish(HandlerContract {
            path: file.to_path_buf(),
            description: Description {
                handler_type,
                version,
                supported_operations: operations.into_iter().map(|op| op.value).collect(),
                required_payload_fields,
                response_shape,
                limits: raw.limits,
            },
        })
    }

    /// Loads and validates the handler contract at `path`.
    pub fn load(path: &Path) -> Result<HandlerContract, ContractError> {
        Self::parse(&yaml::read(path)?, path)
    }
}

/// Discovers the `handler_contract.yaml` files under one directory.
#[derive(Clone, Debug)]
pub struct HandlerContractSource {
    root: PathBuf,
}

impl HandlerContractSource {
    /// A source that searches `root` and its subdirectories.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HandlerContractSource { root: root.into() }
    }

    /// Every handler contract under the root, in path order; reports the problems of
    /// every file, and a handler type declared by more than one file.
    pub fn discover(&self) -> Result<Vec<HandlerContract>, ContractError> {
        let mut files = Vec::new();
        let mut problems = Problems::new(&self.root);
        collect(&self.root, 0, &mut files, &mut problems);
        files.sort();
        let mut contracts: Vec<HandlerContract> = Vec::new();
        for file in &files {
            match HandlerContract::load(file) {
                Ok(contract) => {
                    let handler_type = contract.description.handler_type;
                    if let Some(first) = contracts
                        .iter()
                        .find(|c| c.description.handler_type == handler_type)
                    {
                        let mut duplicate = Problems::new(file);
                        duplicate.add(
                            None,
                            format!(
                                "handler type '{handler_type}' is already declared by {}",
                                first.path.display()
                            ),
                            "one handler contract per handler type",
                            "remove one of the two files",
                        );
                        problems.absorb(duplicate.into_error());
                    } else {
                        contracts.push(contract);
                    }
                }
                Err(error) => problems.absorb(error),
            }
        }
        problems.finish(contracts)
    }
}

fn collect(dir: &Path, depth: usize, files: &mut Vec<PathBuf>, problems: &mut Problems) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            let mut here = Problems::new(dir);
            here.add(
                None,
                format!("cannot list the directory: {error}"),
                "handler contracts are discovered by walking this directory",
                "check the path and its permissions",
            );
            problems.absorb(here.into_error());
            return;
        }
    };
    for path in entries.filter_map(Result::ok).map(|entry| entry.path()) {
        if path.is_dir() && depth < MAX_DEPTH {
            collect(&path, depth + 1, files, problems);
        } else if path
            .file_name()
            .is_some_and(|name| name == HANDLER_CONTRACT_FILE)
        {
            files.push(path);
        }
    }
}
