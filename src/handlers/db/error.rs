//! What the db handler says when PostgreSQL fails: by SQLSTATE class, naming where the
//! database is but never the connection string, user's password or parameters.
//!
//! It also says whose failure it is ([`HandlerError::Dependency`] and its [`Fault`]): a
//! connection exception (class 08, or the connection lost), insufficient resources (53),
//! a server shutting down or starting (57P01 to 57P03) and a serialization failure or
//! deadlock (40001, 40P01) pass if tried again; a cancelled statement (57014) is the
//! database not answering in time. Anything else is the statement's own failure.

use tokio_postgres::Config;
use tokio_postgres::config::Host;

use crate::handler::{Fault, HandlerError};

/// `host:port/dbname` of `config`: where the database is, without user or password.
pub(super) fn endpoint(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{host}:{port}/{}",
        config.get_dbname().unwrap_or("postgres")
    )
}

/// The innermost cause of a client error, e.g. "Connection refused (os error 111)":
/// `tokio_postgres::Error`'s own text ("error connecting to server") says too little.
pub(super) fn failure_reason(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return db.message().to_owned();
    }
    let mut reason = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        reason = inner.to_string();
        cause = inner.source();
    }
    reason
}

/// A failed statement, in words by SQLSTATE class; never the connection string.
pub(super) fn db_error(error: tokio_postgres::Error) -> HandlerError {
    let message = match error.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            let what = match code {
                "42601" => "SQL syntax error",
                "42P01" => "undefined table",
                "42703" => "undefined column",
                "42883" => "undefined function or operator",
                "23505" => "unique constraint violated",
                "23503" => "foreign key constraint violated",
                "23502" => "not-null constraint violated",
                "23514" => "check constraint violated",
                "57014" => "the statement was cancelled (statement_timeout)",
                "57P01" | "57P02" | "57P03" => "the database is shutting down or starting",
                _ if code.starts_with("08") => "the connection to the database failed",
                _ if code.starts_with("28") => "database authentication failed",
                _ if code.starts_with("22") => "invalid data",
                _ if code.starts_with("42") => "the statement is invalid",
                _ => "the database refused the statement",
            };
            format!("{what} (SQLSTATE {code}): {}", db.message())
        }
        None if error.is_closed() => "the connection to the database was lost".to_owned(),
        None => format!("the database call failed: {}", failure_reason(&error)),
    };
    let code = error.as_db_error().map(|db| db.code().code());
    match fault_of(code, error.is_closed()) {
        Some(fault) => HandlerError::dependency(fault, message, Some(Box::new(error))),
        None => HandlerError::Execution {
            message,
            source: Some(Box::new(error)),
        },
    }
}

/// Whose failure a statement's error is: the database's (with its fault), or `None`
/// for the statement's own (`code` is the SQLSTATE, if the server sent one).
fn fault_of(code: Option<&str>, closed: bool) -> Option<Fault> {
    match code {
        Some("57014") => Some(Fault::Lost),
        Some("57P01" | "57P02" | "57P03" | "40001" | "40P01") => Some(Fault::Transient),
        Some(code) if code.starts_with("08") || code.starts_with("53") => Some(Fault::Transient),
        Some(_) => None,
        None if closed => Some(Fault::Transient),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_sqlstates_are_the_databases_fault_and_the_rest_the_statements() {
        for code in [
            "08006", "08001", "53300", "57P01", "57P02", "57P03", "40001", "40P01",
        ] {
            assert_eq!(
                fault_of(Some(code), false),
                Some(Fault::Transient),
                "{code}"
            );
        }
        assert_eq!(fault_of(Some("57014"), false), Some(Fault::Lost));
        for code in ["42601", "23505", "22P02", "28P01", "57000"] {
            assert_eq!(fault_of(Some(code), false), None, "{code}");
        }
        assert_eq!(fault_of(None, true), Some(Fault::Transient));
        assert_eq!(fault_of(None, false), None);
    }

    #[test]
    fn the_endpoint_names_host_port_and_database_and_nothing_secret() {
        let socket: Config = "host=/run/pg port=5433 dbname=app user=u password=s3cret"
            .parse()
            .expect("a connection string");
        assert_eq!(endpoint(&socket), "/run/pg:5433/app");
        let bare: Config = "user=u password=s3cret"
            .parse()
            .expect("a connection string");
        assert_eq!(endpoint(&bare), "localhost:5432/postgres");
    }
}
