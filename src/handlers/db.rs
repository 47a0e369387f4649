//! `HandlerDb`: `db.query`, `db.execute` and (schema 1.1.0) `db.transaction` on
//! PostgreSQL, parameterised only.
//!
//! | payload field | meaning |
//! | --- | --- |
//! | `sql` (required) | one statement, with `$1…$n` placeholders |
//! | `parameters` | a list bound to `$1…$n` (the `types` module says how JSON maps to SQL) |
//! | `statements` (`db.transaction`, instead) | a list of `{sql, parameters}`, 1 to [`MAX_STATEMENTS`] |
//!
//! `db.query` returns `{rows: [{column: value}], row_count}`; `db.execute` returns
//! `{row_count}` (rows affected); `db.transaction` runs its statements in one transaction,
//! all or nothing, and returns `{results: [...]}`, one per statement: `{rows, row_count}`
//! for one that returns rows, else `{row_count}`. The placeholder count must equal the
//! parameter count before anything is sent; `;--`, `DROP` and a top-level `UNION` log a
//! warning (the `payload` module).
//! Statements share a pool of at most five connections (the binding's `pool_size`),
//! pipelined (see the `pool` module), driven on the host's own thread, with the binding's
//! `timeout_ms` as `statement_timeout`, else the connection string's
//! (`options=-c statement_timeout=…`), else [`STATEMENT_TIMEOUT`]; the
//! host gives up on a connection that leaves its statements unanswered for that timeout
//! plus a margin, and cancels them. A health check gets its own 2 s.
//!
//! The connection string comes from the environment, never from a contract:
//! `OMNIBASE_INFRA_DB_URL`, else `DATABASE_URL`; both the `postgresql://…` URL form and
//! `key=value` pairs work. Use an IP address rather than `localhost`: name lookups need
//! `/etc/hosts`, which a static binary in an empty container does not have.

mod dsn;
mod error;
mod options;
mod payload;
mod pool;
mod rows;
mod sql;
mod types;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::future::Boxed;
use serde_json::Value;
use tokio_postgres::Config;

use crate::budget::Charge;
use crate::envelope::Payload;
use crate::handler::{Description, Handler, HandlerError, HandlerRequest, HandlerType};
use crate::health::HealthReport;
use error::endpoint;
pub use payload::{MAX_STATEMENTS, MAX_TRANSACTION_SQL_BYTES};
use pool::{Op, Pool};

/// The operations `HandlerDb` supports (`db.transaction` needs a node contract at schema
/// 1.1.0).
pub const OPERATIONS: &[&str] = &["db.query", "db.execute", "db.transaction"];
/// The environment variables holding the connection string, the first set one wins.
pub const URL_VARIABLES: [&str; 2] = ["OMNIBASE_INFRA_DB_URL", "DATABASE_URL"];
/// Connections in the pool unless the binding's `pool_size` says otherwise.
pub const POOL_SIZE: usize = pool::POOL_SIZE;
/// How long one statement may run, unless the connection string sets `statement_timeout`.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How many parameters `sql` needs: its highest placeholder (`$3` needs 3), not counting
/// any inside string literals, quoted identifiers or comments. A request's `parameters`
/// must match it; public for the fuzz targets (`crates/fuzz`).
pub fn placeholder_count(sql: &str) -> usize {
    sql::scan(sql).placeholders
}

/// The PostgreSQL handler.
#[derive(Debug)]
pub struct HandlerDb {
    config: Result<Config, String>,
    /// The server's `statement_timeout`; zero when off.
    statement_timeout: Duration,
    /// The most connections the pool opens.
    pool_size: usize,
    /// The binding this handler is, as its logs name it (an unnamed one by `db`).
    binding: Arc<str>,
    pool: Mutex<Option<Arc<Pool>>>,
}

impl HandlerDb {
    /// A handler for the connection string in the environment ([`URL_VARIABLES`]); a
    /// missing or malformed one is reported by `initialize`.
    pub fn from_env() -> Self {
        let url = URL_VARIABLES
            .iter()
            .find_map(|name| std::env::var(name).ok().map(|url| (*name, url)));
        match url {
            Some((name, url)) => Self::new(&url).map_err(|reason| format!("{name}: {reason}")),
            None => Err(format!("no database configured: set {}", URL_VARIABLES[1])),
        }
        .unwrap_or_else(|reason| HandlerDb {
            config: Err(reason),
            statement_timeout: STATEMENT_TIMEOUT,
            pool_size: pool::POOL_SIZE,
            binding: HandlerType::Db.as_str().into(),
            pool: Mutex::new(None),
        })
    }

    /// A handler for the connection string `source` holds for the binding `binding`
    /// (its `dsn_env` or `dsn_file`), read now: a missing, unreadable, empty or malformed
    /// one is an error naming the binding and the source, never the value.
    pub fn from_source(binding: &str, source: &crate::contract::DsnSource) -> Result<Self, String> {
        let url = dsn::read(binding, source)?;
        Self::new(&url).map_err(|reason| format!("binding '{binding}': the {source}: {reason}"))
    }

    /// This handler with at most `pool_size` connections and, when given, statements
    /// stopped by the server after `statement_timeout` (the binding's `timeout_ms`, which
    /// wins over the connection string's).
    #[must_use]
    pub fn configured(mut self, pool_size: usize, statement_timeout: Option<Duration>) -> Self {
        self.pool_size = pool_size.max(1);
        if let (Some(timeout), Ok(config)) = (statement_timeout, self.config.as_mut()) {
            // PostgreSQL applies `-c` options in order: the last one stands.
            let options = config.get_options().unwrap_or_default().to_owned();
            let option = format!("-c statement_timeout={}", timeout.as_millis());
            config.options(format!("{options} {option}").trim_start());
            self.statement_timeout = timeout;
        }
        self
    }

    /// A handler for the connection string `url`; nothing connects until `initialize`.
    pub fn new(url: &str) -> Result<Self, String> {
        // The parse error names the bad option, never the string, which may hold a password.
        let mut config = Config::from_str(url)
            .map_err(|error| format!("not a PostgreSQL connection string ({error})"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let options = config.get_options().unwrap_or_default().to_owned();
        // The user's own setting stands; else the handler's, sent the same way.
        let statement_timeout = match options::statement_timeout(&options)? {
            Some(timeout) => timeout,
            None => {
                config.options(
                    format!(
                        "{options} -c statement_timeout={}",
                        STATEMENT_TIMEOUT.as_millis()
                    )
                    .trim_start(),
                );
                STATEMENT_TIMEOUT
            }
        };
        Ok(HandlerDb {
            config: Ok(config),
            statement_timeout,
            pool_size: pool::POOL_SIZE,
            binding: HandlerType::Db.as_str().into(),
            pool: Mutex::new(None),
        })
    }

    /// This handler, its logs naming the binding `binding` (two db bindings share every
    /// message, and the log must say which database it was about).
    #[must_use]
    pub fn for_binding(mut self, binding: &str) -> Self {
        self.binding = binding.into();
        self
    }

    fn pool(&self) -> Option<Arc<Pool>> {
        self.pool
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }
}

impl Handler for HandlerDb {
    fn handler_type(&self) -> HandlerType {
        HandlerType::Db
    }

    fn name(&self) -> &'static str {
        "HandlerDb"
    }

    fn initialize(&self) -> Boxed<Result<(), HandlerError>> {
        let started = self
            .config
            .clone()
            .map_err(HandlerError::execution)
            .map(|config| {
                let timeout = Some(self.statement_timeout).filter(|timeout| !timeout.is_zero());
                let binding = Arc::clone(&self.binding);
                let pool = Arc::new(Pool::new(config.clone(), self.pool_size, timeout, binding));
                *self
                    .pool
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner()) = Some(Arc::clone(&pool));
                (config, pool)
            });
        let binding = Arc::clone(&self.binding);
        Box::pin(async move {
            let (config, pool) = started?;
            // A database that is not up yet is not fatal: requests fail until it is, and
            // health says so.
            if let Err(error) = pool.run(Op::Ping, "", &[], &Charge::unlimited()).await {
                log::warn!(
                    handler_type = "db", binding = &*binding;
                    "database at {} not reachable yet: {error}",
                    endpoint(&config)
                );
            }
            Ok(())
        })
    }

    fn shutdown(&self) -> Boxed<()> {
        let pool = self
            .pool
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
        Box::pin(async move {
            if let Some(pool) = pool {
                pool.stop().await;
            }
        })
    }

    fn execute(&self, request: HandlerRequest) -> Boxed<Result<Option<Payload>, HandlerError>> {
        let (pool, binding) = (self.pool(), Arc::clone(&self.binding));
        Box::pin(async move {
            let pool =
                pool.ok_or_else(|| HandlerError::execution("the db handler is not running"))?;
            let op = match request.operation.as_str() {
                "db.query" => Op::Query,
                "db.execute" => Op::Execute,
                "db.transaction" => {
                    let statements =
                        payload::transaction(request.payload, request.correlation_id, &binding)?;
                    let results = pool.transaction(&statements, &request.charge).await?;
                    let mut answer = Payload::new();
                    answer.insert("results".to_owned(), Value::Array(results));
                    return Ok(Some(answer));
                }
                other => return Err(HandlerError::unsupported(other, OPERATIONS)),
            };
            let statement = payload::single(request.payload, request.correlation_id, &binding)?;
            pool.run(op, &statement.sql, &statement.parameters, &request.charge)
                .await
                .map(Some)
        })
    }

    fn health_check(&self) -> Boxed<HealthReport> {
        let (pool, config, pool_size) = (self.pool(), self.config.clone(), self.pool_size);
        Box::pin(async move {
            let endpoint = config
                .as_ref()
                .map_or_else(|reason| reason.clone(), endpoint);
            let Some(pool) = pool else {
                return HealthReport::new(false)
                    .with("database", endpoint)
                    .with("pool", "stopped");
            };
            let reachable = pool.health().await;
            let mut report = HealthReport::new(reachable.is_ok())
                .with("database", endpoint)
                .with("pool_size", pool_size)
                .with("connections", pool.connections())
                .with("in_flight", pool.in_flight());
            if let Err(error) = reachable {
                report = report.with("error", error.to_string());
            }
            report
        })
    }

    fn describe(&self) -> Description {
        Description {
            handler_type: HandlerType::Db,
            version: "1.1.0".to_owned(),
            supported_operations: OPERATIONS.iter().map(|op| (*op).to_owned()).collect(),
            required_payload_fields: vec!["sql".to_owned()],
            response_shape: BTreeMap::from([
                (
                    "rows".to_owned(),
                    "array of objects: column -> value (db.query)".to_owned(),
                ),
                (
                    "row_count".to_owned(),
                    "integer: rows returned or affected".to_owned(),
                ),
                (
                    "results".to_owned(),
                    "array, one {rows, row_count} or {row_count} per statement (db.transaction)"
                        .to_owned(),
                ),
            ]),
            limits: BTreeMap::from([
                ("pool_size".to_owned(), self.pool_size as u64),
                (
                    "statement_timeout_ms".to_owned(),
                    u64::try_from(self.statement_timeout.as_millis()).unwrap_or(u64::MAX),
                ),
                ("pipeline_depth".to_owned(), pool::PIPELINE_DEPTH as u64),
                ("max_statements".to_owned(), MAX_STATEMENTS as u64),
                (
                    "max_transaction_sql_bytes".to_owned(),
                    MAX_TRANSACTION_SQL_BYTES as u64,
                ),
            ]),
        }
    }
}
