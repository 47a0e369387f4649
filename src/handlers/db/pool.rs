//! A fixed pool of PostgreSQL connections, driven by the requests that use them.
//!
//! A request checks a connection out and, while it awaits its statement, also polls that
//! connection's socket (`tokio_postgres::Connection`) on the reactor the host already
//! runs. A statement therefore costs one round trip on the caller's thread and no
//! hand-off: an earlier design ran each connection on a thread of its own, and the two
//! thread wake-ups per statement cost more than a loopback query. (The synchronous
//! `postgres` crate works the same way inside, on a tokio runtime per client.)
//!
//! At most [`POOL_SIZE`] connections exist; a sixth concurrent caller waits for one to
//! come back, at most [`WAIT_LIMIT`]. Connections open on first use. A connection that
//! was lost is dropped and reopened by its next user; when one user finds its connection
//! lost, the others check theirs before their next statement, so a database restart costs
//! at most one failed request, never a host restart. Each connection caches its prepared
//! statements. A request cancelled mid-statement (the shutdown deadline) leaves its
//! connection usable: the client discards the unread reply on the next use.

mod connect;
mod socket;

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use async_lock::{Semaphore, SemaphoreGuard};
use futures_lite::future;
use serde_json::Value;
use smol::Timer;
use tokio_postgres::{AsyncMessage, Client, Config, Statement};

use super::{error, types};
use crate::envelope::Payload;
use crate::handler::HandlerError;
use connect::Connection;

/// Connections in the pool.
pub(super) const POOL_SIZE: usize = 5;
/// How long a request may wait for a free connection.
pub(super) const WAIT_LIMIT: Duration = Duration::from_secs(30);
/// How long checking a connection may take.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(2);
/// How long closing a connection politely may take at shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;

/// What a statement does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    /// Return the rows.
    Query,
    /// Return the number of rows affected.
    Execute,
    /// Check the connection (health).
    Ping,
}

/// The pool: [`POOL_SIZE`] slots, each empty or holding an open connection.
#[derive(Debug)]
pub(super) struct Pool {
    config: Config,
    /// One per slot: a request holding one is owed a slot from `idle`.
    permits: Semaphore,
    idle: Mutex<Idle>,
    /// Bumped whenever a user finds its connection lost.
    lost: AtomicU64,
    /// Requests waiting for a slot.
    waiting: AtomicUsize,
}

/// The slots not in use.
#[derive(Debug)]
struct Idle {
    /// The most recently used last: light load keeps reusing one warm connection (and
    /// one warm server process) instead of cycling through all of them.
    slots: Vec<Slot>,
    stopped: bool,
}

/// One place in the pool.
#[derive(Default)]
struct Slot {
    link: Option<Link>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.link.is_some() { "open" } else { "empty" })
    }
}

/// An open connection: the client half issues statements, the connection half owns the
/// socket and must be polled for either to make progress.
struct Link {
    client: Client,
    connection: Connection,
    statements: HashMap<String, Statement>,
    /// The value of `lost` when this connection was last known good.
    checked: u64,
    /// The socket failed or closed; the link must not be used again.
    broken: bool,
}

/// A checked-out slot, back in the pool when dropped (also when its request is
/// cancelled). Fields drop in order: the slot is back before the permit is.
struct Checkout<'a> {
    pool: &'a Pool,
    slot: Slot,
    _permit: SemaphoreGuard<'a>,
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        let slot = std::mem::take(&mut self.slot);
        let mut idle = self.pool.idle();
        if !idle.stopped {
            idle.slots.push(slot);
        }
        // Once stopped, the slot's connection simply closes as it drops.
    }
}

impl Pool {
    /// A pool for `config`; nothing connects until the first statement.
    pub(super) fn new(config: Config) -> Pool {
        Pool {
            config,
            permits: Semaphore::new(POOL_SIZE),
            idle: Mutex::new(Idle {
                slots: (0..POOL_SIZE).map(|_| Slot::default()).collect(),
                stopped: false,
            }),
            lost: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Runs one statement and returns its result payload.
    pub(super) async fn run(
        &self,
        op: Op,
        sql: &str,
        parameters: &[Value],
    ) -> Result<Payload, HandlerError> {
        let mut checkout = self.check_out().await?;
        self.run_on(&mut checkout.slot, op, sql, parameters).await
    }

    /// Requests waiting for a connection.
    pub(super) fn queued(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Stops lending connections and closes the idle ones; one in use closes when its
    /// request ends.
    pub(super) async fn stop(&self) {
        let slots = {
            let mut idle = self.idle();
            idle.stopped = true;
            std::mem::take(&mut idle.slots)
        };
        for link in slots.into_iter().filter_map(|slot| slot.link) {
            link.close().await;
        }
    }

    fn idle(&self) -> MutexGuard<'_, Idle> {
        self.idle
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    async fn check_out(&self) -> Result<Checkout<'_>, HandlerError> {
        // The wait limit costs a timer, so only a request that has to wait pays for one.
        let permit = match self.permits.try_acquire() {
            Some(permit) => permit,
            None => {
                self.waiting.fetch_add(1, Ordering::Relaxed);
                let permit = future::or(async { Some(self.permits.acquire().await) }, async {
                    Timer::after(WAIT_LIMIT).await;
                    None
                })
                .await;
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                permit.ok_or_else(|| {
                    HandlerError::execution(format!(
                        "no database connection became free within {} s",
                        WAIT_LIMIT.as_secs()
                    ))
                })?
            }
        };
        let mut idle = self.idle();
        if idle.stopped {
            return Err(HandlerError::execution("the db handler is shut down"));
        }
        // A permit guarantees a slot; an empty one would do as well.
        let slot = idle.slots.pop().unwrap_or_default();
        drop(idle);
        Ok(Checkout {
            pool: self,
            slot,
            _permit: permit,
        })
    }

    async fn run_on(
        &self,
        slot: &mut Slot,
        op: Op,
        sql: &str,
        parameters: &[Value],
    ) -> Result<Payload, HandlerError> {
        let lost = self.lost.load(Ordering::Acquire);
        if let Some(link) = &mut slot.link {
            if link.checked < lost && !link.validate().await {
                slot.link = None;
            }
        }
        let reused = slot.link.is_some();
        let link = match &mut slot.link {
            Some(link) => link,
            None => match connect::open(&self.config).await {
                Ok((client, connection)) => slot.link.insert(Link {
                    client,
                    connection,
                    statements: HashMap::new(),
                    checked: lost,
                    broken: false,
                }),
                Err(error) => {
                    // The server is unreachable: every open connection is suspect.
                    self.lost.fetch_add(1, Ordering::AcqRel);
                    return Err(error);
                }
            },
        };
        link.checked = lost;
        let result = link.run(op, sql, parameters).await;
        // A failure may mean the server went away (a restart, a failover): check, since
        // the client may only learn it when it next talks to the server.
        if link.broken || (result.is_err() && !link.validate().await) {
            slot.link = None;
            self.lost.fetch_add(1, Ordering::AcqRel);
            // A health check that found a stale connection says nothing about the
            // server: ask again on a fresh one (once; it has no side effects).
            if op == Op::Ping && reused {
                return Box::pin(self.run_on(slot, op, sql, parameters)).await;
            }
        }
        result
    }
}

/// Why awaiting a statement stopped short of its result: the connection ended.
enum Broken {
    Failed(tokio_postgres::Error),
    Closed,
}

/// Awaits `work` while polling the socket, which `work` needs to make progress. The
/// outer error means the connection ended; the inner result is the statement's own.
///
/// Each pass polls `work` (queueing its request), then the socket (writing the request,
/// reading replies), then `work` again (taking a reply just read), so that neither half
/// has to wake the task for the other: a wake-up costs the reactor a round of syscalls.
async fn drive<T>(
    connection: &mut Connection,
    work: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<Result<T, tokio_postgres::Error>, Broken> {
    let mut work = pin!(work);
    future::poll_fn(|cx| {
        if let Poll::Ready(done) = work.as_mut().poll(cx) {
            return Poll::Ready(Ok(done));
        }
        loop {
            match connection.poll_message(cx) {
                Poll::Ready(Some(Ok(AsyncMessage::Notice(notice)))) => {
                    log::info!(handler_type = "db"; "database notice: {}", notice.message());
                }
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(Broken::Failed(error))),
                Poll::Ready(None) => return Poll::Ready(Err(Broken::Closed)),
                Poll::Pending => break,
            }
        }
        work.as_mut().poll(cx).map(Ok)
    })
    .await
}

impl Link {
    /// [`drive`] for a statement of this link; a connection that ended marks it broken.
    async fn drive<T>(
        connection: &mut Connection,
        broken: &mut bool,
        work: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, HandlerError> {
        match drive(connection, work).await {
            Ok(done) => done.map_err(error::db_error),
            Err(ended) => {
                *broken = true;
                Err(match ended {
                    Broken::Failed(error) => error::db_error(error),
                    Broken::Closed => {
                        HandlerError::execution("the connection to the database was lost")
                    }
                })
            }
        }
    }

    /// Whether the connection still answers.
    async fn validate(&mut self) -> bool {
        if self.broken || self.client.is_closed() {
            return false;
        }
        let Link {
            client,
            connection,
            broken,
            ..
        } = self;
        let check = future::or(
            async { Some(Link::drive(connection, broken, client.simple_query("")).await) },
            async {
                Timer::after(VALIDATION_TIMEOUT).await;
                None
            },
        );
        matches!(check.await, Some(Ok(_)))
    }

    async fn run(
        &mut self,
        op: Op,
        sql: &str,
        parameters: &[Value],
    ) -> Result<Payload, HandlerError> {
        if op == Op::Ping {
            let Link {
                client,
                connection,
                broken,
                ..
            } = self;
            Link::drive(connection, broken, client.simple_query("SELECT 1")).await?;
            return Ok(Payload::new());
        }
        let statement = self.prepare(sql).await?;
        let parameters = bind(parameters, statement.params())?;
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = parameters
            .iter()
            .map(|p| &**p as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let Link {
            client,
            connection,
            broken,
            ..
        } = self;
        let mut payload = Payload::new();
        if op == Op::Execute {
            let count = Link::drive(connection, broken, client.execute(&statement, &refs)).await?;
            payload.insert("row_count".into(), count.into());
            return Ok(payload);
        }
        let rows = Link::drive(connection, broken, client.query(&statement, &refs)).await?;
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

    async fn prepare(&mut self, sql: &str) -> Result<Statement, HandlerError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let Link {
            client,
            connection,
            broken,
            ..
        } = self;
        let statement = Link::drive(connection, broken, client.prepare(sql)).await?;
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Tells the server goodbye: dropping the client queues a Terminate message, which
    /// the connection writes before it ends.
    async fn close(self) {
        let Link {
            client,
            mut connection,
            ..
        } = self;
        drop(client);
        let ended = future::poll_fn(|cx| {
            loop {
                match connection.poll_message(cx) {
                    Poll::Ready(Some(Ok(_))) => {}
                    Poll::Ready(_) => return Poll::Ready(()),
                    Poll::Pending => return Poll::Pending,
                }
            }
        });
        future::or(ended, async {
            Timer::after(CLOSE_TIMEOUT).await;
        })
        .await;
    }
}

/// Converts the JSON parameters to the types the prepared statement expects.
fn bind(
    parameters: &[Value],
    types: &[tokio_postgres::types::Type],
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
