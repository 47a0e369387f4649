//! A fixed pool of PostgreSQL connections, each on a thread of its own, fed by one queue.
//!
//! The `postgres` client is synchronous, so no call may run on the executor. Instead of a
//! general blocking pool (whose threads grow with load), each of the [`POOL_SIZE`]
//! connections lives on its own named thread and takes jobs from one bounded queue; the
//! caller awaits its reply. The host's thread count stays fixed, a sixth concurrent
//! caller simply waits in the queue, and every job gets exactly one reply.
//!
//! A connection that was lost is dropped and reopened on its thread's next job; when one
//! thread finds its connection lost, the others check theirs before their next job, so
//! a database restart costs at most one failed request, never a host restart. Each
//! connection caches its prepared statements.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use postgres::{Client, Config, NoTls, Statement};
use serde_json::Value;

use super::{error, types};
use crate::envelope::Payload;
use crate::handler::HandlerError;

/// Connections in the pool.
pub(super) const POOL_SIZE: usize = 5;
/// Jobs that may wait for a connection before callers wait to enqueue.
const QUEUE_CAPACITY: usize = 1024;
/// How long a job may wait for a free connection.
pub(super) const WAIT_LIMIT: Duration = Duration::from_secs(30);
/// How long checking a connection may take.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(2);
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    /// Return the rows.
    Query,
    /// Return the number of rows affected.
    Execute,
    /// Check the connection (health).
    Ping,
}

/// One statement for a connection thread to run.
pub(super) struct Job {
    pub(super) op: Op,
    pub(super) sql: String,
    pub(super) parameters: Vec<Value>,
    deadline: Instant,
    reply: Sender<Result<Payload, HandlerError>>,
}

/// The running pool.
#[derive(Debug)]
pub(super) struct Pool {
    jobs: Sender<Job>,
    stopped: Receiver<()>,
}

impl Pool {
    /// Starts [`POOL_SIZE`] connection threads; connections open on first use.
    pub(super) fn start(config: &Config) -> Result<Pool, HandlerError> {
        let (jobs, queue) = async_channel::bounded::<Job>(QUEUE_CAPACITY);
        let (alive, stopped) = async_channel::bounded::<()>(1);
        let lost = Arc::new(AtomicU64::new(0));
        for n in 1..=POOL_SIZE {
            let worker = Worker {
                config: config.clone(),
                lost: Arc::clone(&lost),
                connection: None,
            };
            let (queue, alive) = (queue.clone(), alive.clone());
            thread::Builder::new()
                .name(format!("onex-db-{n}"))
                .spawn(move || worker.serve(&queue, alive))
                .map_err(|error| HandlerError::Execution {
                    message: "the database connection threads could not start".into(),
                    source: Some(Box::new(error)),
                })?;
        }
        Ok(Pool { jobs, stopped })
    }

    /// Runs one statement and returns its result payload.
    pub(super) async fn run(
        &self,
        op: Op,
        sql: String,
        parameters: Vec<Value>,
    ) -> Result<Payload, HandlerError> {
        let (reply, result) = async_channel::bounded(1);
        let job = Job {
            op,
            sql,
            parameters,
            deadline: Instant::now() + WAIT_LIMIT,
            reply,
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| HandlerError::execution("the db handler is shut down"))?;
        result
            .recv()
            .await
            .map_err(|_| HandlerError::execution("the database connection thread stopped"))?
    }

    /// Jobs waiting for a connection.
    pub(super) fn queued(&self) -> usize {
        self.jobs.len()
    }

    /// Stops taking jobs and waits until every thread has finished its current one.
    pub(super) async fn stop(&self) {
        self.jobs.close();
        // Each thread holds a sender of `stopped`; it closes when the last one exits.
        let _ = self.stopped.recv().await;
    }
}

/// One connection thread.
struct Worker {
    config: Config,
    /// Bumped whenever a thread finds its connection lost.
    lost: Arc<AtomicU64>,
    connection: Option<Connection>,
}

struct Connection {
    client: Client,
    statements: HashMap<String, Statement>,
    /// The value of `lost` when this connection was last known good.
    checked: u64,
}

impl Worker {
    fn serve(mut self, queue: &Receiver<Job>, _alive: Sender<()>) {
        while let Ok(job) = queue.recv_blocking() {
            let result = if Instant::now() >= job.deadline {
                Err(HandlerError::execution(format!(
                    "no database connection became free within {} s",
                    WAIT_LIMIT.as_secs()
                )))
            } else {
                self.run(&job)
            };
            // The caller may have gone (its request was cancelled); nothing to tell then.
            let _ = job.reply.try_send(result);
        }
    }

    fn run(&mut self, job: &Job) -> Result<Payload, HandlerError> {
        let lost = self.lost.load(Ordering::Acquire);
        let stale = self.connection.as_mut().is_some_and(|c| {
            c.client.is_closed()
                || (c.checked < lost && c.client.is_valid(VALIDATION_TIMEOUT).is_err())
        });
        if stale {
            self.connection = None;
        }
        let reused = self.connection.is_some();
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => match Connection::open(&self.config) {
                Ok(connection) => self.connection.insert(connection),
                Err(error) => {
                    // The server is unreachable: every open connection is suspect.
                    self.lost.fetch_add(1, Ordering::AcqRel);
                    return Err(error);
                }
            },
        };
        connection.checked = lost;
        let result = connection.run(job);
        // A failure may mean the server went away (a restart, a failover): check, since
        // the client only learns it is closed when it next talks to the server.
        let broken = connection.client.is_closed()
            || (result.is_err() && connection.client.is_valid(VALIDATION_TIMEOUT).is_err());
        if broken {
            self.connection = None;
            self.lost.fetch_add(1, Ordering::AcqRel);
            // A health check that found a stale connection says nothing about the
            // server: ask again on a fresh one (once; it has no side effects).
            if job.op == Op::Ping && reused {
                return self.run(job);
            }
        }
        result
    }
}

impl Connection {
    fn open(config: &Config) -> Result<Connection, HandlerError> {
        let client = config.connect(NoTls).map_err(|error| {
            let reason = error::failure_reason(&error);
            HandlerError::Execution {
                message: format!(
                    "could not connect to the database at {}: {reason}",
                    error::endpoint(config)
                ),
                source: Some(Box::new(error)),
            }
        })?;
        Ok(Connection {
            client,
            statements: HashMap::new(),
            checked: 0,
        })
    }

    fn run(&mut self, job: &Job) -> Result<Payload, HandlerError> {
        if job.op == Op::Ping {
            self.client
                .simple_query("SELECT 1")
                .map_err(error::db_error)?;
            return Ok(Payload::new());
        }
        let statement = self.prepare(&job.sql)?;
        let parameters = bind(&job.parameters, statement.params())?;
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = parameters
            .iter()
            .map(|p| &**p as &(dyn postgres::types::ToSql + Sync))
            .collect();
        let mut payload = Payload::new();
        if job.op == Op::Execute {
            let count = self
                .client
                .execute(&statement, &refs)
                .map_err(error::db_error)?;
            payload.insert("row_count".into(), count.into());
            return Ok(payload);
        }
        let rows = self
            .client
            .query(&statement, &refs)
            .map_err(error::db_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut object = Payload::new();
            for (index, column) in row.columns().iter().enumerate() {
                let value = types::column(row, index).ok_or_else(|| {
                    HandlerError::execution(format!(
                        "column '{}' has type {}, which the db handler does not map; cast it in SQL, e.g. {}::text",
                        column.name(),
                        column.type_(),
                        column.name()
                    ))
                })?;
                object.insert(column.name().to_owned(), value.map_err(error::db_error)?);
            }
            out.push(Value::Object(object));
        }
        payload.insert("row_count".into(), out.len().into());
        payload.insert("rows".into(), Value::Array(out));
        Ok(payload)
    }

    fn prepare(&mut self, sql: &str) -> Result<Statement, HandlerError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).map_err(error::db_error)?;
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// Converts the JSON parameters to the types the prepared statement expects.
fn bind(
    parameters: &[Value],
    types: &[postgres::types::Type],
) -> Result<Vec<types::Param>, HandlerError> {
    parameters
        .iter()
        .zip(types)
        .enumerate()
        .map(|(index, (value, ty))| {
            let position = index + 1;
            match types::param(value, ty) {
                Some(Ok(param)) => Ok(param),
                Some(Err(())) => Err(HandlerError::InvalidPayload(format!(
                    "parameter ${position} is {ty}: expected {}",
                    types::expected(ty)
                ))),
                None => Err(HandlerError::InvalidPayload(format!(
                    "parameter ${position} is {ty}, which the db handler does not map; cast it in SQL, e.g. ${position}::text"
                ))),
            }
        })
        .collect()
}
