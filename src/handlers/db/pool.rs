//! A small pool of PostgreSQL connections that statements share, pipelined.
//!
//! PostgreSQL answers a connection's statements in the order they arrive, so a statement
//! need not wait for the one before it to be answered: tokio-postgres writes what is
//! queued on a connection together and hands each reply to its statement. Measured here
//! (one-row `SELECT`s, 5 in flight on one thread), one shared connection answered about
//! 88k statements/s where five connections used one statement at a time answered 57k:
//! fewer system calls on both sides, and the server's process wakes once for several.
//!
//! A statement takes the least busy open connection that answers promptly: one that is
//! idle, or has fewer than [`PIPELINE_DEPTH`] in flight, answered its last statement
//! within [`PROMPT`] and made progress within the last [`PROMPT`]. Only when none does
//! is another opened (up to [`POOL_SIZE`]), so fast statements do not queue behind a slow
//! one while a connection is free to take them; once the pool is full, the least busy
//! connection takes it. Light load keeps reusing one warm connection (and one warm
//! server process).
//!
//! Each connection's socket is a task on the pool's own executor (`drivers`), which runs
//! only while some request awaits a statement: every waiting request gives it turns
//! (`Executor::tick`) on the host's thread, so a statement costs no thread and no
//! hand-off. Connections open on first use. A connection that ended is dropped and a new
//! one opened by the next statement (when no statement is waiting, the sockets get a turn
//! before the choice, so one the server closed while idle is seen closed, not used);
//! when one is found lost, the others are checked before their next statement, so a
//! database restart costs at most the statements in flight on it, never a host restart.
//! A request cancelled mid-statement (the shutdown deadline) leaves its connection
//! usable: the client discards the unread reply.

mod connect;
mod link;
mod socket;

use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_lite::future;
use serde_json::Value;
use smol::{Executor, Task, Timer};
use tokio_postgres::Config;

use crate::envelope::Payload;
use crate::handler::HandlerError;
use link::{Link, micros_since};

/// Connections in the pool.
pub(super) const POOL_SIZE: usize = 5;
/// Statements one connection takes at once before another is opened.
pub(super) const PIPELINE_DEPTH: usize = 8;
/// A busy connection takes another statement only while it answers within this.
pub(super) const PROMPT: Duration = Duration::from_millis(2);
/// How long checking a connection may take.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(2);
/// How long closing the connections politely may take at shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

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

/// The pool: the open connections and the executor their sockets run on.
pub(super) struct Pool {
    config: Config,
    /// Runs each connection's socket while requests await statements.
    drivers: Executor<'static>,
    open: Mutex<Open>,
    /// Held while a connection opens, so that concurrent statements open one, not many.
    opening: async_lock::Mutex<()>,
    /// Bumped whenever a connection is found lost.
    lost: AtomicU64,
    /// The pool's clock starts here (how promptly connections answer).
    epoch: Instant,
}

/// The connections open now.
struct Open {
    /// Oldest first: ties go to the warmest connection.
    links: Vec<Arc<Link>>,
    /// Their socket tasks (a finished one is pruned when a connection opens).
    sockets: Vec<Task<()>>,
    stopped: bool,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("open", &self.state().links.len())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool for `config`; nothing connects until the first statement.
    pub(super) fn new(config: Config) -> Pool {
        Pool {
            config,
            drivers: Executor::new(),
            open: Mutex::new(Open {
                links: Vec::new(),
                sockets: Vec::new(),
                stopped: false,
            }),
            opening: async_lock::Mutex::new(()),
            lost: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Runs one statement and returns its result payload.
    pub(super) async fn run(
        &self,
        op: Op,
        sql: &str,
        parameters: &[Value],
    ) -> Result<Payload, HandlerError> {
        let (mut link, mut fresh) = self.link().await?;
        let lost = self.lost.load(Ordering::Acquire);
        if link.checked() < lost {
            if self.validate(&link).await {
                link.mark_checked(lost);
            } else {
                self.forget(&link);
                (link, fresh) = self.link().await?;
            }
        }
        let result = self.on(&link, link.run(op, sql, parameters)).await;
        // A failure may mean the server went away (a restart, a failover): check, since
        // the client may only learn it when it next talks to the server.
        if result.as_ref().is_err_and(may_be_lost) && !self.validate(&link).await {
            self.forget(&link);
            // A health check that found a stale connection says nothing about the
            // server: ask again on a fresh one (once; it has no side effects).
            if op == Op::Ping && !fresh {
                let (link, _) = self.link().await?;
                return self.on(&link, link.run(op, sql, parameters)).await;
            }
        }
        result
    }

    /// Statements in flight on all connections.
    pub(super) fn in_flight(&self) -> usize {
        self.state().links.iter().map(|link| link.in_flight()).sum()
    }

    /// Connections open now.
    pub(super) fn connections(&self) -> usize {
        self.state().links.len()
    }

    /// Stops lending connections and closes them: each says goodbye to the server once
    /// the statements still using it end, or is cut at [`CLOSE_TIMEOUT`].
    pub(super) async fn stop(&self) {
        let sockets = {
            let mut open = self.state();
            open.stopped = true;
            open.links.clear();
            std::mem::take(&mut open.sockets)
        };
        // Dropping a connection's last client queues a Terminate message, which its
        // socket task writes before it ends.
        let ended = self.drivers.run(async {
            for socket in sockets {
                socket.await;
            }
        });
        future::or(ended, async {
            Timer::after(CLOSE_TIMEOUT).await;
        })
        .await;
    }

    /// Awaits `work`, a statement on `link`, counted in flight there and running the
    /// connections' sockets meanwhile.
    async fn on<T>(&self, link: &Link, work: impl Future<Output = T>) -> T {
        let _busy = link.enter(self.epoch);
        // `tick`, not `Executor::run`: a runner sets up a task queue of its own, which
        // cost a statement more than its round trip's worth of instructions.
        let mut sockets = pin!(async {
            loop {
                self.drivers.tick().await;
            }
        });
        let mut work = pin!(work);
        // Each pass polls the statement, then the sockets (writing it, reading replies),
        // then the statement again: a reply read in this pass is taken in this pass, not
        // after the whole task has been polled once more. When others are in flight on
        // this connection, the first pass only queues the statement and yields, so the
        // statements of other requests ready to run queue too and leave in one write
        // (measured: half the sends at 5 in flight).
        let mut queued_only = link.in_flight() > 1;
        future::poll_fn(|cx| {
            if let Poll::Ready(done) = work.as_mut().poll(cx) {
                return Poll::Ready(done);
            }
            if std::mem::take(&mut queued_only) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let _ = sockets.as_mut().poll(cx);
            work.as_mut().poll(cx)
        })
        .await
    }

    /// Whether `link` still answers, within [`VALIDATION_TIMEOUT`].
    async fn validate(&self, link: &Link) -> bool {
        let check = future::or(self.on(link, link.validate()), async {
            Timer::after(VALIDATION_TIMEOUT).await;
            false
        });
        check.await
    }

    /// Drops `link` from the pool (its connection was lost) and has the others checked.
    fn forget(&self, link: &Arc<Link>) {
        self.state().links.retain(|open| !Arc::ptr_eq(open, link));
        self.lost.fetch_add(1, Ordering::AcqRel);
    }

    fn state(&self) -> MutexGuard<'_, Open> {
        self.open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The connection the next statement uses, and whether it was opened for it.
    async fn link(&self) -> Result<(Arc<Link>, bool), HandlerError> {
        // When no statement is waiting, nothing has run the sockets since the last one:
        // let them take what arrived meanwhile, so that a connection the server closed
        // ends now and is replaced instead of failing this statement. (While statements
        // wait, they run the sockets; doing it here too broke up batched writes.)
        if self.in_flight() == 0 {
            while self.drivers.try_tick() {}
        }
        if let Some(link) = self.choose()? {
            return Ok((link, false));
        }
        let _opening = self.opening.lock().await;
        // Another statement may have opened one meanwhile.
        if let Some(link) = self.choose()? {
            return Ok((link, false));
        }
        let lost = self.lost.load(Ordering::Acquire);
        let (client, connection) = match connect::open(&self.config).await {
            Ok(pair) => pair,
            Err(error) => {
                // The server is unreachable: every open connection is suspect.
                self.lost.fetch_add(1, Ordering::AcqRel);
                return Err(error);
            }
        };
        let link = Arc::new(Link::new(client, lost));
        let socket = self.drivers.spawn(link::drive_socket(connection));
        let mut open = self.state();
        if open.stopped {
            return Err(stopped());
        }
        open.sockets.retain(|socket| !socket.is_finished());
        open.sockets.push(socket);
        open.links.push(Arc::clone(&link));
        Ok((link, true))
    }

    /// The connection a statement should use now, or `None` when a new one should be
    /// opened: the least busy open one that [takes more](Link::takes_more) (ties to
    /// the oldest); when none does and the pool is full, the least busy of all.
    fn choose(&self) -> Result<Option<Arc<Link>>, HandlerError> {
        let mut open = self.state();
        if open.stopped {
            return Err(stopped());
        }
        open.links.retain(|link| !link.is_closed());
        let now = micros_since(self.epoch);
        let prompt = u64::try_from(PROMPT.as_micros()).unwrap_or(u64::MAX);
        let prompt_one = open
            .links
            .iter()
            .filter(|link| link.takes_more(now, PIPELINE_DEPTH, prompt))
            .min_by_key(|link| link.in_flight());
        let best = match prompt_one {
            None if open.links.len() >= POOL_SIZE => {
                open.links.iter().min_by_key(|link| link.in_flight())
            }
            best => best,
        };
        Ok(best.map(Arc::clone))
    }
}

/// Whether a failed statement may mean its connection was lost: not when the server
/// answered it with an error (which shows the connection works), nor when it was refused
/// before anything was sent, nor when its result could not be mapped.
fn may_be_lost(error: &HandlerError) -> bool {
    let HandlerError::Execution {
        source: Some(source),
        ..
    } = error
    else {
        return false;
    };
    source
        .downcast_ref::<tokio_postgres::Error>()
        .is_some_and(|error| error.as_db_error().is_none())
}

fn stopped() -> HandlerError {
    HandlerError::execution("the db handler is shut down")
}
