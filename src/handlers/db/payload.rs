//! Reading the statements a request asks for out of its payload, refusing what cannot be
//! sent before anything reaches the database: `{sql, parameters?}` for `db.query` and
//! `db.execute`, `{statements: [{sql, parameters?}, ...]}` for `db.transaction`.
//!
//! Every statement obeys the same rules: non-empty SQL, a list of parameters as long as
//! its highest placeholder, a warning logged for a suspicious pattern. A transaction's
//! statements are also bounded ([`MAX_STATEMENTS`], [`MAX_TRANSACTION_SQL_BYTES`]) and
//! may not end or open a transaction themselves: a `COMMIT` among them would commit
//! half of it, and the statements after it would run on their own.

use serde_json::Value;
use uuid::Uuid;

use super::sql;
use crate::envelope::Payload;
use crate::handler::HandlerError;

/// The most statements one `db.transaction` runs.
pub const MAX_STATEMENTS: usize = 100;
/// The most SQL text one `db.transaction` carries, its statements' together.
pub const MAX_TRANSACTION_SQL_BYTES: usize = 1024 * 1024;

/// One statement to run: its SQL and the parameters bound to its placeholders.
#[derive(Debug)]
pub(super) struct Statement {
    pub(super) sql: String,
    pub(super) parameters: Vec<Value>,
}

/// The statement of a `db.query` or `db.execute` payload of the request
/// `correlation_id`, for the binding `binding` (its warnings name both).
pub(super) fn single(
    mut payload: Payload,
    correlation_id: Uuid,
    binding: &str,
) -> Result<Statement, HandlerError> {
    statement(
        payload.remove("sql"),
        payload.remove("parameters"),
        correlation_id,
        binding,
    )
    .map_err(HandlerError::InvalidPayload)
}

/// The statements of a `db.transaction` payload, in order (for the request and binding
/// as [`single`]).
pub(super) fn transaction(
    mut payload: Payload,
    correlation_id: Uuid,
    binding: &str,
) -> Result<Vec<Statement>, HandlerError> {
    let invalid = HandlerError::InvalidPayload;
    let list = match payload.remove("statements") {
        Some(Value::Array(list)) => list,
        Some(_) => return Err(invalid("'statements' must be a list".into())),
        None => {
            return Err(invalid(
                "'statements' is required for db.transaction".into(),
            ));
        }
    };
    if list.is_empty() || list.len() > MAX_STATEMENTS {
        return Err(invalid(format!(
            "'statements' holds {} statement(s); a transaction runs 1 to {MAX_STATEMENTS}",
            list.len()
        )));
    }
    let mut statements = Vec::with_capacity(list.len());
    let mut sql_bytes = 0;
    for (index, entry) in list.into_iter().enumerate() {
        let at = |reason: String| invalid(format!("statement {index}: {reason}"));
        let Value::Object(mut entry) = entry else {
            return Err(at("must be an object with 'sql' and 'parameters'".into()));
        };
        if let Some(unknown) = entry
            .keys()
            .find(|key| !matches!(key.as_str(), "sql" | "parameters"))
        {
            return Err(at(format!(
                "unknown field '{unknown}' (a statement has 'sql' and 'parameters')"
            )));
        }
        let statement = statement(
            entry.remove("sql"),
            entry.remove("parameters"),
            correlation_id,
            binding,
        )
        .map_err(at)?;
        if let Some(control) = transaction_control(&statement.sql) {
            return Err(at(format!(
                "{control} is not allowed inside db.transaction, which begins and ends the transaction itself"
            )));
        }
        sql_bytes += statement.sql.len();
        if sql_bytes > MAX_TRANSACTION_SQL_BYTES {
            return Err(invalid(format!(
                "the statements' SQL is over {MAX_TRANSACTION_SQL_BYTES} bytes in all"
            )));
        }
        statements.push(statement);
    }
    Ok(statements)
}

/// Checks one statement's `sql` and `parameters`; the error is the reason alone.
fn statement(
    sql: Option<Value>,
    parameters: Option<Value>,
    correlation_id: Uuid,
    binding: &str,
) -> Result<Statement, String> {
    let sql = match sql {
        Some(Value::String(sql)) if !sql.trim().is_empty() => sql,
        Some(Value::String(_)) => return Err("'sql' is empty".into()),
        Some(_) => return Err("'sql' must be a string".into()),
        None => return Err("'sql' is required".into()),
    };
    let parameters = match parameters {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(parameters)) => parameters,
        Some(_) => return Err("'parameters' must be a list".into()),
    };
    let scan = sql::scan(&sql);
    if scan.placeholders != parameters.len() {
        return Err(format!(
            "the SQL uses {} placeholder(s) ($1..${}) but {} parameter(s) were given",
            scan.placeholders,
            scan.placeholders,
            parameters.len()
        ));
    }
    for pattern in scan.suspicious {
        log::warn!(
            correlation_id:% = correlation_id, handler_type = "db", binding;
            "suspicious SQL pattern {pattern} in a db request; it runs parameterised, but check where this SQL comes from"
        );
    }
    Ok(Statement { sql, parameters })
}

/// The transaction-control command `sql` starts with, if any: `BEGIN`, `START
/// TRANSACTION`, `COMMIT`, `END`, `ROLLBACK` (but `ROLLBACK TO SAVEPOINT`), `ABORT`,
/// `PREPARE TRANSACTION`. Savepoints stay allowed: they live inside the transaction.
/// (A prepared statement holds one command, so its first words decide.)
fn transaction_control(sql: &str) -> Option<String> {
    let mut words = leading_words(sql);
    let first = words.next()?;
    let second = words.next().unwrap_or_default();
    let refused = match (first.as_str(), second.as_str()) {
        ("BEGIN" | "COMMIT" | "END" | "ABORT", _) => true,
        ("START" | "PREPARE", "TRANSACTION") => true,
        ("ROLLBACK", second) => second != "TO",
        _ => false,
    };
    refused.then(|| {
        if second.is_empty() || !matches!(first.as_str(), "START" | "PREPARE") {
            first
        } else {
            format!("{first} {second}")
        }
    })
}

/// The words at the start of `sql`, uppercased, skipping whitespace, comments and
/// opening parentheses.
fn leading_words(sql: &str) -> impl Iterator<Item = String> + '_ {
    let mut rest = sql;
    std::iter::from_fn(move || {
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
            if let Some(comment) = rest.strip_prefix("--") {
                rest = comment.split_once('\n').map_or("", |(_, after)| after);
            } else if rest.starts_with("/*") {
                rest = after_block_comment(rest);
            } else {
                break;
            }
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        let (word, after) = rest.split_at(end);
        rest = after;
        Some(word.to_ascii_uppercase())
    })
}

/// What follows the (nested) block comment `text` starts with; empty if it never ends.
fn after_block_comment(text: &str) -> &str {
    let (mut depth, mut index) = (0usize, 0);
    let bytes = text.as_bytes();
    while index + 1 < bytes.len() {
        match &bytes[index..index + 2] {
            b"/*" => {
                depth += 1;
                index += 2;
            }
            b"*/" => {
                depth -= 1;
                index += 2;
                if depth == 0 {
                    return &text[index..];
                }
            }
            _ => index += 1,
        }
    }
    ""
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_control_is_found_behind_comments_and_case() {
        for (sql, found) in [
            ("COMMIT", Some("COMMIT")),
            ("  commit work", Some("COMMIT")),
            ("-- done\nEnd", Some("END")),
            ("/* a /* nested */ one */ rollback", Some("ROLLBACK")),
            ("BEGIN ISOLATION LEVEL SERIALIZABLE", Some("BEGIN")),
            ("start transaction", Some("START TRANSACTION")),
            ("PREPARE TRANSACTION 'x'", Some("PREPARE TRANSACTION")),
            ("abort", Some("ABORT")),
            ("ROLLBACK TO SAVEPOINT a", None),
            ("SAVEPOINT a", None),
            ("RELEASE SAVEPOINT a", None),
            ("SELECT 'COMMIT'", None),
            ("(SELECT 1)", None),
            ("INSERT INTO begin_log VALUES (1)", None),
            ("PREPARE q AS SELECT 1", None),
            ("/* never ends", None),
            ("", None),
        ] {
            assert_eq!(transaction_control(sql).as_deref(), found, "{sql}");
        }
    }
}
