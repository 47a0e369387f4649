//! Reading contract files and turning YAML errors into [`Problem`]s.
//!
//! Parsing text is pure ([`parse`]); [`read`] adds the file. YAML anchors, aliases and
//! merge keys are accepted (with the parser's limits on alias expansion); duplicate keys
//! are refused.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_saphyr::{Location, MessageFormatter};

use super::PROHIBITED_FIELDS;
use super::error::{ContractError, MAX_REPORTED_PROBLEMS, Problem, Problems};

/// The 1-based line of `location`, if it is known.
pub(super) fn line_of(location: &Location) -> Option<u64> {
    Some(location.line()).filter(|&line| line > 0)
}

/// The largest contract file read; a larger one is refused unread.
pub const MAX_CONTRACT_BYTES: u64 = 1024 * 1024;

/// Reads the contract file at `path` as text: a regular file of at most
/// [`MAX_CONTRACT_BYTES`]. Anything else (a directory, a device such as `/dev/zero`, a
/// FIFO that may never be written) is refused without reading it.
pub(super) fn read(path: &Path) -> Result<String, ContractError> {
    // Opened without waiting (opening a FIFO with no writer blocks), then checked on the
    // descriptor itself, so that a path swapped after a check cannot slip through.
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .and_then(|file| Ok((file.metadata()?.file_type(), file)));
    let file = match opened {
        Ok((kind, _)) if kind.is_dir() => {
            return refuse(
                path,
                "this is a directory, not a contract file".into(),
                "a contract is one YAML file",
                "name the contract's .yaml file",
            );
        }
        Ok((kind, _)) if !kind.is_file() => {
            return refuse(
                path,
                "this is not a regular file (a device, a FIFO or a socket)".into(),
                "a contract is one YAML file on disk",
                "name the contract's .yaml file",
            );
        }
        Ok((_, file)) => file,
        Err(error) => return refuse_unreadable(path, &error),
    };
    let mut text = String::new();
    match file.take(MAX_CONTRACT_BYTES + 1).read_to_string(&mut text) {
        Ok(_) if text.len() as u64 > MAX_CONTRACT_BYTES => refuse(
            path,
            format!("the file is larger than {MAX_CONTRACT_BYTES} bytes"),
            "contracts are small YAML files",
            "check the path, or split the contract",
        ),
        Ok(_) => Ok(text),
        Err(error) => refuse_unreadable(path, &error),
    }
}

/// The error for a contract file that cannot be opened or read.
fn refuse_unreadable(path: &Path, error: &std::io::Error) -> Result<String, ContractError> {
    match error.kind() {
        ErrorKind::NotFound => refuse(
            path,
            "contract file not found".into(),
            "relative paths start from the current directory; '~' is not expanded",
            "check the path, or give an absolute one",
        ),
        ErrorKind::InvalidData => refuse(
            path,
            "the file is not UTF-8 text".into(),
            "contracts are YAML text in UTF-8",
            "save the file as UTF-8",
        ),
        _ => refuse(
            path,
            format!("cannot read the file: {error}"),
            "the host needs read access to every contract it loads",
            "fix the file's permissions or the path",
        ),
    }
}

fn refuse(path: &Path, message: String, hint: &str, action: &str) -> Result<String, ContractError> {
    let mut problems = Problems::new(path);
    problems.add(None, message, hint, action);
    Err(problems.into_error())
}

/// Parses `text` (the contents of `file`) into the raw contract type `T`.
pub(super) fn parse<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T, ContractError> {
    serde_saphyr::from_str(text)
        .map_err(|error| ContractError::new(vec![problem_of(error.without_snippet(), file)]))
}

/// As [`parse`], except that with `lenient` (`--lenient`) an unknown field is ignored
/// and recorded in `warnings` instead of failing. A prohibited field stays an error, as
/// does every other rule. The field is ignored by blanking its lines (the key's line and
/// the more indented lines under it) and parsing again, so every line number stays
/// true; an unknown key that does not stand alone at the start of its line (flow style,
/// or a list item's first key) cannot be blanked, and stays an error.
pub(super) fn parse_with<T: DeserializeOwned>(
    text: &str,
    file: &Path,
    lenient: bool,
    warnings: &mut Vec<Problem>,
) -> Result<T, ContractError> {
    if !lenient {
        return parse(text, file);
    }
    let mut text = text.to_owned();
    let mut ignored = 0;
    loop {
        let error = match serde_saphyr::from_str(&text) {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let error = error.without_snippet();
        let problem = problem_of(error, file);
        let blanked = match error {
            serde_saphyr::Error::SerdeUnknownField { field, .. }
                if !PROHIBITED_FIELDS.iter().any(|(name, _)| name == field) =>
            {
                problem.line.and_then(|line| blank_key(&text, line, field))
            }
            _ => None,
        };
        let Some(blanked) = blanked else {
            return Err(ContractError::new(vec![problem]));
        };
        // Each ignored field costs a parse of the whole text again: past the reporting
        // limit, a contract of many unknown fields is refused rather than parsed that
        // many times.
        ignored += 1;
        if ignored > MAX_REPORTED_PROBLEMS {
            return Err(ContractError::new(vec![Problem {
                message: format!(
                    "more than {MAX_REPORTED_PROBLEMS} unknown fields (ignored: --lenient)"
                ),
                hint: "--lenient ignores a few unknown fields, not a contract of them".to_owned(),
                action: "remove the unknown fields, or check that this is the right file"
                    .to_owned(),
                ..problem
            }]));
        }
        text = blanked;
        warnings.push(Problem {
            message: format!("{} (ignored: --lenient)", problem.message),
            action: "remove or rename it; without --lenient the contract is refused".to_owned(),
            ..problem
        });
    }
}

/// `text` with the key `field` at `line` (1-based) and the lines nested under it
/// replaced by empty lines, if the key starts that line.
fn blank_key(text: &str, line: u64, field: &str) -> Option<String> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    let at = usize::try_from(line).ok()?.checked_sub(1)?;
    let key_line = *lines.get(at)?;
    let indent = key_line.len() - key_line.trim_start().len();
    let key = key_line.trim_start();
    let unquoted = key
        .strip_prefix(field)
        .or_else(|| key.strip_prefix(&format!("\"{field}\"")))
        .or_else(|| key.strip_prefix(&format!("'{field}'")))?;
    if !unquoted.trim_start().starts_with(':') {
        return None;
    }
    lines[at] = "";
    for next in lines.iter_mut().skip(at + 1) {
        let content = next.trim_start();
        let nested = content.is_empty()
            || content.starts_with('#')
            || next.len() - content.len() > indent
            // A block sequence may sit at its key's own indentation.
            || (next.len() - content.len() == indent && content.starts_with("- "));
        if !nested {
            break;
        }
        *next = "";
    }
    Some(lines.join("\n"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Known {
        #[allow(dead_code)]
        name: String,
    }

    fn lenient(text: &str) -> (Result<Known, ContractError>, usize) {
        let mut warnings = Vec::new();
        let parsed = parse_with(text, Path::new("c.yaml"), true, &mut warnings);
        (parsed, warnings.len())
    }

    #[test]
    fn lenient_ignores_unknown_fields_with_a_warning_each() {
        let (parsed, warnings) = lenient("name: a\nextra: 1\nmore:\n  nested: 2\n");
        assert!(parsed.is_ok());
        assert_eq!(warnings, 2);
    }

    #[test]
    fn lenient_refuses_more_unknown_fields_than_it_reports() {
        let mut text = String::from("name: a\n");
        for n in 0..=MAX_REPORTED_PROBLEMS {
            text.push_str(&format!("unknown_{n}: 1\n"));
        }
        let (parsed, _) = lenient(&text);
        let Err(error) = parsed else {
            panic!("{} unknown fields were ignored", MAX_REPORTED_PROBLEMS + 1);
        };
        assert!(
            error.problems()[0]
                .message
                .contains("more than 100 unknown fields"),
            "{}",
            error.problems()[0].message
        );
    }
}
