//! The credentials lint: a contract names where a secret is (`dsn_env`, `dsn_file`),
//! never the secret itself.
//!
//! This module owns the rule and runs it over a contract's text, before any field is
//! read, so that a credential is refused whatever key holds it, known or not. It
//! refuses, line by line (comment lines skipped):
//! - a `password` key (also `passwd`, `*_password`), in block or flow style;
//! - a URL with a password in it, `scheme://user:pass@host`;
//! - a PostgreSQL connection string (`postgres://`, `postgresql://`, or the
//!   `password=` keyword form), with or without a password.
//!
//! A problem names the line and what was found there, never the value: the contract's
//! errors are printed and logged, and must not carry what they refuse.

use std::path::Path;

use super::error::{ContractError, Problems};

/// `Err` listing every line of `text` (read from `file`) that looks like it embeds a
/// credential.
pub(super) fn refuse_credentials(text: &str, file: &Path) -> Result<(), ContractError> {
    let mut problems = Problems::new(file);
    for (index, line) in text.lines().enumerate() {
        let line_number = Some(index as u64 + 1);
        let code = strip_comment(line);
        if let Some(key) = password_key(code) {
            problems.add(
                line_number,
                format!("the key '{key}' looks like an embedded credential"),
                "secrets come from the environment or from files, never from a contract",
                "remove it; for a database, set config.dsn_env or config.dsn_file on the db binding",
            );
        } else if has_connection_string(code) {
            problems.add(
                line_number,
                "a value here is a PostgreSQL connection string",
                "connection strings may carry passwords, so they come from the environment or from files, never from a contract",
                "remove it, and set config.dsn_env (a variable's name) or config.dsn_file (a file's path) on the db binding",
            );
        } else if has_url_password(code) {
            problems.add(
                line_number,
                "a URL here carries a password (scheme://user:password@host)",
                "secrets come from the environment or from files, never from a contract",
                "remove the user and password from the URL",
            );
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.into_error())
    }
}

/// `line` without a comment: a line starting with `#`, or what follows ` #`.
fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    line.find(" #").map_or(line, |at| &line[..at])
}

/// The first key of `line` that names a password, if any: keys stand at the start of
/// the line (after indentation and list dashes) or after `{` or `,` in flow style.
fn password_key(line: &str) -> Option<String> {
    let mut rest = line;
    loop {
        let colon = rest.find(':')?;
        let before = &rest[..colon];
        let after = &rest[colon + 1..];
        // Past the last character that cannot be in a key, whatever its width in bytes.
        let key_start = before
            .char_indices()
            .rev()
            .find(|&(_, c)| {
                !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '"' || c == '\'')
            })
            .map_or(0, |(at, c)| at + c.len_utf8());
        let key = before[key_start..].trim_matches(|c| c == '"' || c == '\'');
        let lead = before[..key_start].trim_end_matches([' ', '\t']);
        let key_position = lead.is_empty()
            || lead.trim_start().chars().all(|c| c == '-' || c == ' ')
            || lead.ends_with('{')
            || lead.ends_with(',');
        let ends_key = after.is_empty() || after.starts_with([' ', '\t']);
        let lower = key.to_ascii_lowercase();
        let names_password =
            lower == "password" || lower == "passwd" || lower.ends_with("_password");
        if key_position && ends_key && names_password {
            return Some(key.to_owned());
        }
        rest = after;
    }
}

/// Whether `line` holds a PostgreSQL connection string, as a URL or as keywords.
fn has_connection_string(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    lower.contains("postgres://") || lower.contains("postgresql://") || lower.contains("password=")
}

/// Whether a URL in `line` has a password in its authority (`user:pass@`).
fn has_url_password(line: &str) -> bool {
    line.match_indices("://").any(|(at, scheme_end)| {
        let authority = &line[at + scheme_end.len()..];
        let end = authority
            .find(|c: char| {
                c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"' || c == '\''
            })
            .unwrap_or(authority.len());
        authority[..end]
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_lines(text: &str) -> Vec<Option<u64>> {
        match refuse_credentials(text, Path::new("c.yaml")) {
            Ok(()) => Vec::new(),
            Err(error) => error.into_problems().iter().map(|p| p.line).collect(),
        }
    }

    #[test]
    fn refuses_password_keys_urls_with_passwords_and_dsns() {
        let text = "a: 1\n  password: x\n- db_password: y\n{user: u, password: z}\nurl: \"https://u:p@h/x\"\ndsn: postgresql://h/db\nkw: host=h password=p\n";
        assert_eq!(refused_lines(text), [2, 3, 4, 5, 6, 7].map(Some).to_vec());
    }

    #[test]
    fn a_multi_byte_character_before_a_key_is_not_cut() {
        // Found by the contract fuzz target: the key's start was taken one byte past a
        // two-byte character, inside it, and slicing there panicked.
        assert_eq!(
            refused_lines(" ۍetry_policy: 1\n  password: x\n"),
            [Some(2)]
        );
    }

    #[test]
    fn lets_ordinary_values_comments_and_user_only_urls_through() {
        let text = "# password: in a comment\ndescription: \"resets a password: kindly\"\ntarget: \"https://user@h:8080/x\"\nurl: http://127.0.0.1:80/a # postgresql://x\npasswords_total: 3\n";
        assert_eq!(refused_lines(text), Vec::<Option<u64>>::new());
    }
}
