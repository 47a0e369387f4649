//! Contract problems, in the specification's error format (File, Error, Hint, Action).

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in one contract file: what, where, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The contract file.
    pub file: PathBuf,
    /// The 1-based line of the offending value, where known.
    pub line: Option<u64>,
    /// The 1-based column, where known and useful (YAML syntax errors).
    pub column: Option<u64>,
    /// What is wrong.
    pub message: String,
    /// What would be right.
    pub hint: String,
    /// What to do.
    pub action: String,
}

impl Problem {
    /// A problem in `file` at `line`: what is wrong, what would be right, what to do.
    pub fn new(
        file: &Path,
        line: Option<u64>,
        message: impl Into<String>,
        hint: impl Into<String>,
        action: impl Into<String>,
    ) -> Self {
        Problem {
            file: file.to_path_buf(),
            line,
            column: None,
            message: message.into(),
            hint: hint.into(),
            action: action.into(),
        }
    }

    /// The problem as one line, for warnings in logs.
    pub fn one_line(&self) -> String {
        format!(
            "{}: {}{}; {}",
            self.file.display(),
            self.message,
            self.location(),
            self.hint
        )
    }

    fn location(&self) -> String {
        match (self.line, self.column) {
            (Some(line), Some(column)) => format!(" at line {line}, column {column}"),
            (Some(line), None) => format!(" at line {line}"),
            _ => String::new(),
        }
    }
}

/// The most problems one error keeps and prints; the rest are only counted. A contract
/// with thousands of the same mistake needs its first few fixed, not a page for each.
pub const MAX_REPORTED_PROBLEMS: usize = 100;

/// A contract that failed to load: the problems found, in file order (the first
/// [`MAX_REPORTED_PROBLEMS`], and how many more there were).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractError {
    problems: Vec<Problem>,
    omitted: usize,
}

impl ContractError {
    /// An error holding `problems` (which should not be empty).
    pub fn new(mut problems: Vec<Problem>) -> Self {
        let omitted = problems.len().saturating_sub(MAX_REPORTED_PROBLEMS);
        problems.truncate(MAX_REPORTED_PROBLEMS);
        ContractError { problems, omitted }
    }

    /// The problems kept (at most [`MAX_REPORTED_PROBLEMS`]).
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// The problems kept, taken out.
    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
    }

    /// How many problems were found beyond those kept.
    pub fn omitted(&self) -> usize {
        self.omitted
    }

    /// Adds the problems of `other` to this error.
    pub fn merge(&mut self, other: ContractError) {
        let room = MAX_REPORTED_PROBLEMS.saturating_sub(self.problems.len());
        let kept = other.problems.len().min(room);
        self.omitted += other.omitted + other.problems.len() - kept;
        self.problems.extend(other.problems.into_iter().take(kept));
    }
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContractValidationError: Failed to load contract")?;
        let mut file: Option<&Path> = None;
        for problem in &self.problems {
            if file != Some(problem.file.as_path()) {
                write!(f, "\n  File: {}", problem.file.display())?;
                file = Some(&problem.file);
            } else {
                writeln!(f)?;
            }
            write!(
                f,
                "\n  Error: {}{}\n  Hint: {}\n  Action: {}",
                problem.message,
                problem.location(),
                problem.hint,
                problem.action
            )?;
        }
        if self.omitted > 0 {
            write!(
                f,
                "\n\n  ... and {} more problem(s) not listed: fix those above and run again",
                self.omitted
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ContractError {}

/// Collects the problems of one file while it is validated.
///
/// Only the first [`MAX_REPORTED_PROBLEMS`] are kept; later ones are counted.
#[derive(Debug)]
pub(super) struct Problems {
    file: PathBuf,
    found: ContractError,
}

impl Problems {
    pub(super) fn new(file: &Path) -> Self {
        Problems {
            file: file.to_path_buf(),
            found: ContractError::new(Vec::new()),
        }
    }

    /// Records a problem at `line` (if known).
    pub(super) fn add(
        &mut self,
        line: Option<u64>,
        message: impl Into<String>,
        hint: impl Into<String>,
        action: impl Into<String>,
    ) {
        if self.found.problems.len() >= MAX_REPORTED_PROBLEMS {
            self.found.omitted += 1;
            return;
        }
        let problem = Problem::new(&self.file, line, message, hint, action);
        self.found.problems.push(problem);
    }

    /// Records the problems of another file (a node contract this one names).
    pub(super) fn absorb(&mut self, other: ContractError) {
        self.found.merge(other);
    }

    /// How many problems were found so far, counted or kept.
    pub(super) fn len(&self) -> usize {
        self.found.problems.len() + self.found.omitted
    }

    /// Whether anything was found.
    pub(super) fn is_empty(&self) -> bool {
        self.found.problems.is_empty()
    }

    /// The error listing everything found (which should be something).
    pub(super) fn into_error(self) -> ContractError {
        self.found
    }

    /// `value` if nothing was found, else the error listing everything.
    pub(super) fn finish<T>(self, value: T) -> Result<T, ContractError> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self.found)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_follows_the_specification_format() {
        let mut problems = Problems::new(Path::new("/path/to/contract.yaml"));
        problems.add(
            Some(15),
            "Unknown handler type 'kafka'",
            "Valid handler types are: http, db",
            "Remove or replace the invalid handler type",
        );
        let error = problems.finish(()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "ContractValidationError: Failed to load contract\n  \
             File: /path/to/contract.yaml\n  \
             Error: Unknown handler type 'kafka' at line 15\n  \
             Hint: Valid handler types are: http, db\n  \
             Action: Remove or replace the invalid handler type"
        );
    }

    #[test]
    fn only_the_first_problems_are_kept_and_the_rest_counted() {
        let mut problems = Problems::new(Path::new("c.yaml"));
        for n in 0..250 {
            problems.add(Some(n), format!("problem {n}"), "h", "a");
        }
        let mut node = Problems::new(Path::new("n.yaml"));
        node.add(None, "in the node", "h", "a");
        problems.absorb(node.into_error());
        let error = problems.into_error();
        assert_eq!(error.problems().len(), MAX_REPORTED_PROBLEMS);
        assert_eq!(error.omitted(), 151);
        let text = error.to_string();
        assert_eq!(text.matches("\n  Error: ").count(), MAX_REPORTED_PROBLEMS);
        assert!(
            text.ends_with("... and 151 more problem(s) not listed: fix those above and run again"),
            "{text}"
        );
    }
}
