//! Loading node contracts from the filesystem: one file, or every contract in a directory
//! (the specification's `FileContractRegistry`: `load(path)`, `load_all(directory)`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::error::{ContractError, Problems};
use super::node::NodeContract;
use super::yaml;

impl NodeContract {
    /// Loads and validates the node contract at `path`.
    pub fn load(path: &Path) -> Result<NodeContract, ContractError> {
        Self::parse(&yaml::read(path)?, path)
    }

    /// As [`NodeContract::load`]; with `lenient`, unknown fields are ignored and
    /// recorded in `warnings`.
    pub(super) fn load_with(
        path: &Path,
        lenient: bool,
        warnings: &mut Vec<super::Problem>,
    ) -> Result<NodeContract, ContractError> {
        Self::parse_with(&yaml::read(path)?, path, lenient, warnings)
    }

    /// Loads every node contract (`*.yaml`, `*.yml`) directly in `dir`, in name order,
    /// reporting the problems of every file; names must be unique.
    pub fn load_all(dir: &Path) -> Result<Vec<NodeContract>, ContractError> {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| {
                    path.is_file()
                        && path
                            .extension()
                            .is_some_and(|ext| ext == "yaml" || ext == "yml")
                })
                .collect(),
            Err(error) => {
                let mut problems = Problems::new(dir);
                problems.add(
                    None,
                    format!("cannot list the directory: {error}"),
                    "load_all reads every .yaml file directly inside one directory",
                    "check the directory path and its permissions",
                );
                return problems.finish(Vec::new());
            }
        };
        files.sort();
        let mut contracts = Vec::new();
        let mut failure: Option<ContractError> = None;
        for file in &files {
            match Self::load(file) {
                Ok(contract) => contracts.push(contract),
                Err(error) => match &mut failure {
                    Some(all) => all.merge(error),
                    None => failure = Some(error),
                },
            }
        }
        let mut seen = HashSet::new();
        for contract in &contracts {
            if !seen.insert(contract.name.as_str()) {
                let mut problems = Problems::new(&contract.path);
                problems.add(
                    None,
                    format!("a second node contract named '{}'", contract.name),
                    "node names are slugs and must be unique",
                    "rename one of the nodes",
                );
                let error = problems.into_error();
                match &mut failure {
                    Some(all) => all.merge(error),
                    None => failure = Some(error),
                }
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(contracts),
        }
    }
}
