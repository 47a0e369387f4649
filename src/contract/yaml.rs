//! Reading contract files and turning YAML errors into [`Problem`]s.
//!
//! Parsing text is pure ([`parse`]); [`read`] adds the file. YAML anchors, aliases and
//! merge keys are accepted (with the parser's limits on alias expansion); duplicate keys
//! are refused.

use std::io::ErrorKind;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_saphyr::{Location, MessageFormatter};

use super::PROHIBITED_FIELDS;
use super::error::{ContractError, Problem, Problems};

/// The 1-based line of `location`, if it is known.
pub(super) fn line_of(location: &Location) -> Option<u64> {
    Some(location.line()).filter(|&line| line > 0)
}

/// Reads the contract file at `path` as text.
pub(super) fn read(path: &Path) -> Result<String, ContractError> {
    let fail = |message: String, hint: &str, action: &str| {
        let mut problems = Problems::new(path);
        problems.add(None, message, hint, action);
        problems.finish(String::new())
    };
    if path.is_dir() {
        return fail(
            "this is a directory, not a contract file".into(),
            "a contract is one YAML file",
            "name the contract's .yaml file",
        );
    }
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(error) if error.kind() == ErrorKind::NotFound => fail(
            "contract file not found".into(),
            "relative paths start from the current directory; '~' is not expanded",
            "check the path, or give an absolute one",
        ),
        Err(error) if error.kind() == ErrorKind::InvalidData => fail(
            "the file is not UTF-8 text".into(),
            "contracts are YAML text in UTF-8",
            "save the file as UTF-8",
        ),
        Err(error) => fail(
            format!("cannot read the file: {error}"),
            "the host needs read access to every contract it loads",
            "fix the file's permissions or the path",
        ),
    }
}

/// Parses `text` (the contents of `file`) into the raw contract type `T`.
pub(super) fn parse<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T, ContractError> {
    serde_saphyr::from_str(text)
        .map_err(|error| ContractError::new(vec![problem_of(error.without_snippet(), file)]))
}

fn problem_of(error: &serde_saphyr::Error, file: &Path) -> Problem {
    let location = error.location();
    let line = location.as_ref().and_then(line_of);
    let column = location
        .as_ref()
        .map(Location::column)
        .filter(|_| line.is_some());
    let (message, hint, action) = match error {
        serde_saphyr::Error::SerdeUnknownField {
            field, expected, ..
        } => unknown_field(field, expected),
        _ => (
            serde_saphyr::DefaultMessageFormatter
                .format_message(error)
                .into_owned(),
            "the contract must be valid YAML in the documented shape; compare it with the examples under contracts/".to_owned(),
            "fix the value or the syntax at that position".to_owned(),
        ),
    };
    Problem {
        file: file.to_path_buf(),
        line,
        column,
        message,
        hint,
        action,
    }
}

fn unknown_field(field: &str, expected: &[&str]) -> (String, String, String) {
    if let Some((_, why)) = PROHIBITED_FIELDS.iter().find(|(name, _)| *name == field) {
        return (
            format!("prohibited field '{field}'"),
            format!("'{field}' is {why}"),
            format!("remove '{field}'"),
        );
    }
    let closest = expected
        .iter()
        .map(|candidate| (strsim::jaro_winkler(field, candidate), *candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let hint = match closest {
        Some((_, candidate)) => format!("did you mean '{candidate}'?"),
        None => format!("the fields allowed here are: {}", expected.join(", ")),
    };
    (
        format!("unknown field '{field}'"),
        hint,
        format!("remove or rename '{field}' (contracts are strict)"),
    )
}
