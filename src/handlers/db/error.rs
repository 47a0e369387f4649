//! What the db handler says when PostgreSQL fails: by SQLSTATE class, naming where the
//! database is but never the connection string, user's password or parameters.

use tokio_postgres::Config;
use tokio_postgres::config::Host;

use crate::handler::HandlerError;

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
    HandlerError::Execution {
        message,
        source: Some(Box::new(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
