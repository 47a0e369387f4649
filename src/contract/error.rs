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

/// A contract that failed to load: every problem found, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractError {
    problems: Vec<Problem>,
}

impl ContractError {
    /// An error holding `problems` (which should not be empty).
    pub fn new(problems: Vec<Problem>) -> Self {
        ContractError { problems }
    }

    /// Every problem found.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Adds the problems of `other` to this error.
    pub fn merge(&mut self, other: ContractError) {
        self.problems.extend(other.problems);
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
        Ok(())
    }
}

impl std::error::Error for ContractError {}

/// Collects the problems of one file while it is validated.
#[derive(Debug)]
pub(super) struct Problems {
    file: PathBuf,
    found: Vec<Problem>,
}

impl Problems {
    pub(super) fn new(file: &Path) -> Self {
        Problems {
            file: file.to_path_buf(),
            found: Vec::new(),
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
        self.found
            .push(Problem::new(&self.file, line, message, hint, action));
    }

    /// Records problems found in another file (a node contract this one names).
    pub(super) fn extend(&mut self, others: &[Problem]) {
        self.found.extend_from_slice(others);
    }

    /// The problems found so far, taking them out.
    pub(super) fn take(&mut self) -> Vec<Problem> {
        std::mem::take(&mut self.found)
    }

    /// `value` if nothing was found, else the error listing everything.
    pub(super) fn finish<T>(self, value: T) -> Result<T, ContractError> {
        if self.found.is_empty() {
            Ok(value)
        } else {
            Err(ContractError::new(self.found))
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
}
