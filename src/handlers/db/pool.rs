//! A small pool of PostgreSQL connections that statements share, pipelined.
//!
//! PostgreSQL answers a connection's statements in the order they arrive, so a statement
//! need not wait for the one before it to be answered: tokio-postgres writes what is
//! queued on a connection together and hands each reply to its statement: fewer system
//! calls on both sides, and the server's process wakes once for several statements, so
//! one shared connection answers more than several used one statement at a time
//! (docs/PERFORMANCE.md).
//!
//! A statement takes the least busy open connection that answers promptly: one that is
//! idle, or has fewer than [`PIPELINE_DEPTH`] in flight, answered its last statement
//! within [`PROMPT`] and answered one within the last [`PROMPT`] (checks, such as the
//! start-up ping, do not count). A connection that just went busy and has not answered
//! yet is given [`PROMPT`] to show which it is, while the pool has room. Only when
//! none answers promptly does the statement open another connection (up to
//! [`POOL_SIZE`], concurrently; see [`opening`]), so fast statements do not queue behind
//! a slow one while a connection is free to take them, and a burst of long ones on a
//! cold pool runs on as many connections as it has statements; once the pool is full,
//! each is pipelined on the least busy connection, open or being opened. Light load keeps reusing one warm connection (and one warm server process).
//!
//! Each connection's socket is a task on the pool's own executor (`drivers`), which runs
//! only while some request awaits a statement: every waiting request gives it turns
//! (`Executor::tick`) on the host's thread, so a statement costs no thread and no
//! hand-off. A connection that ended is dropped and a new one opened by the next
//! statement (when no statement is waiting, the sockets get a turn before the choice, and
//! an idle connection the kernel says the server sent something is checked before use, so
//! one the server closed while idle is seen closed, not used, even before the reactor has
//! reported it); when one is found lost, the other idle ones are checked before their
//! next statement, so a database restart costs at most the statements in flight on it,
//! never a host restart.
//!
//! The server enforces `statement_timeout`; so that a server that stopped answering
//! (frozen, or cut off) cannot hold a request, a connection with statements waiting that
//! answers none of them for that timeout plus [`DEADLINE_MARGIN`] is ended by the host
//! ([`watch`]): each statement on it fails within its own deadline. A statement left
//! unanswered that way, or whose request is dropped before its answer (the shutdown
//! deadline), is abandoned: its connection is retired (never chosen again), and once no
//! live statement is left on it the server is asked to cancel what it still runs
//! ([`cancel`]) and the connection is closed ([`statement`]). Health checks never queue
//! behind statements ([`health`]).

mod cancel;
mod connect;
mod health;
mod link;
mod opening;
mod socket;
mod statement;
mod transaction;
mod watch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use event_listener::Event;
use futures_lite::future;
use serde_json::Value;
use smol::{Executor, Task, Timer};
use tokio_postgres::Config;
use tokio_postgres::error::Severity;

use crate::budget::Charge;
use crate::envelope::Payload;
use crate::handler::HandlerError;
use link::{Link, micros_since};
use opening::Opening;

/// Connections in the pool (the health checks' own connection aside), unless the
/// binding's `config.pool_size` says otherwise.
pub(super) const POOL_SIZE: usize = 5;
/// Statements one connection takes at once before another is opened.
pub(super) const PIPELINE_DEPTH: usize = 8;
/// A busy connection takes another statement only while it answers within this.
pub(super) const PROMPT: Duration = Duration::from_millis(2);
/// How long a statement waits for the connection it opens before it takes an open one
/// that came free instead, giving the connect up: a usual connect takes milliseconds, and
/// giving up one that would have finished costs the server a process for nothing (and the
/// pool the connection, so that the next burst opens it again).
pub(super) const CONNECT_PATIENCE: Duration = Duration::from_millis(200);
/// How long a connection may leave its statements unanswered beyond the server's
/// `statement_timeout`: room for the server's own cancellation to arrive.
pub(super) const DEADLINE_MARGIN: Duration = Duration::from_secs(1);
/// How long (µs) a connection must have been idle before a statement asks the kernel
/// whether the server sent it anything meanwhile.
const IDLE_PAUSE_MICROS: u64 = 1000;
/// How long checking an idle connection may take.
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
    /// Return the rows if the statement returns any columns, else the number of rows
    /// affected (a transaction's statements).
    Any,
    /// Check the connection (health).
    Ping,
}

/// The pool: the open connections and the executor their sockets run on.
pub(super) struct Pool {
    config: Config,
    /// The most connections open at once (the health checks' own aside).
    size: usize,
    /// How long a connection may leave its statements unanswered; `None` when
    /// `statement_timeout` is off.
    deadline: Option<Duration>,
    /// Runs each connection's socket while requests await statements.
    drivers: Executor<'static>,
    open: Mutex<Open>,
    /// Bumped whenever a connection is found lost.
    lost: AtomicU64,
    /// Notified when a connection may have come free for a transaction.
    freed: Event,
    /// The pool's clock starts here (how promptly connections answer).
    epoch: Instant,
    /// The binding the pool serves, as its logs name it.
    binding: Arc<str>,
}

/// The connections open now, and those on their way.
struct Open {
    /// Oldest first: ties go to the warmest connection. Never a retired one.
    links: Vec<Arc<Link>>,
    /// Connections being opened, each awaited by the statements that chose it.
    openings: Vec<Arc<Opening>>,
    /// Connections held out of `links` by transactions, or being opened for one
    /// ([`transaction`]); they count toward [`POOL_SIZE`].
    held: usize,
    /// The health checks' own connection, once one was needed.
    health: Option<Arc<Link>>,
    /// Every connection's socket task (a finished one is pruned when one opens).
    sockets: Vec<(Arc<Link>, Task<()>)>,
    /// Cancel requests, until sent.
    cancels: Vec<Task<()>>,
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
    /// A pool of at most `size` connections for `config` whose statements the server
    /// stops after `statement_timeout` (`None`: never), for the binding `binding`;
    /// nothing connects until the first statement.
    pub(super) fn new(
        config: Config,
        size: usize,
        statement_timeout: Option<Duration>,
        binding: Arc<str>,
    ) -> Pool {
        Pool {
            config,
            size: size.max(1),
            deadline: statement_timeout.and_then(|timeout| timeout.checked_add(DEADLINE_MARGIN)),
            drivers: Executor::new(),
            open: Mutex::new(Open {
                links: Vec::new(),
                openings: Vec::new(),
                held: 0,
                health: None,
                sockets: Vec::new(),
                cancels: Vec::new(),
                stopped: false,
            }),
            lost: AtomicU64::new(0),
            freed: Event::new(),
            epoch: Instant::now(),
            binding,
        }
    }

    /// Runs one statement and returns its result payload; the rows of a query are charged
    /// to `charge` as they arrive.
    pub(super) async fn run(
        &self,
        op: Op,
        sql: &str,
        parameters: &[Value],
        charge: &Charge,
    ) -> Result<Payload, HandlerError> {
        let mut link = self.link().await?;
        let lost = self.lost.load(Ordering::Acquire);
        // Another connection was found lost since this one last answered, or the server
        // sent this idle one something (its farewell, when it ended the session while the
        // connection sat idle: used as it is, the statement would get that for its answer,
        // whenever the reactor has not yet reported it): check it first, if idle. A busy
        // one is proven alive or dead by the statements already on it, and a check would
        // only queue behind them. The kernel is asked only after a pause, so that
        // statements sent one after another pay no system call for it.
        let idle = link.in_flight() == 0;
        let paused = micros_since(self.epoch).saturating_sub(link.progress()) > IDLE_PAUSE_MICROS;
        if idle && (link.checked() < lost || (paused && link.was_sent_something())) {
            let timed_out = async {
                Timer::after(VALIDATION_TIMEOUT).await;
                Err(HandlerError::execution(
                    "the connection did not answer its check",
                ))
            };
            // Past the limit the check is dropped: abandoned, its connection retired.
            match future::or(self.check_on(&link, link.validate()), timed_out).await {
                Ok(()) => link.mark_checked(lost),
                Err(_) => {
                    self.forget(&link);
                    link = self.link().await?;
                }
            }
        }
        let work = link.run(op, sql, parameters, charge);
        let result = if op == Op::Ping {
            self.check_on(&link, work).await
        } else {
            self.on(&link, work).await
        };
        // The client learns a connection ended when it next uses it, or from the server's
        // last word before it closes (its socket may not have been read to the end yet).
        if result
            .as_ref()
            .is_err_and(|error| link.is_closed() || ends_session(error))
        {
            self.forget(&link);
        }
        // The connection may now be free for a transaction waiting for one.
        drop(link);
        self.freed.notify(usize::MAX);
        result
    }

    /// Statements in flight on the pool's connections.
    pub(super) fn in_flight(&self) -> usize {
        self.state().links.iter().map(|link| link.in_flight()).sum()
    }

    /// Connections open now, those held by transactions included.
    pub(super) fn connections(&self) -> usize {
        let open = self.state();
        open.links.len() + open.held
    }

    /// Stops lending connections and closes them: each says goodbye to the server once
    /// the statements still using it end, or is cut at [`CLOSE_TIMEOUT`]; cancel requests
    /// not yet sent get the same time.
    pub(super) async fn stop(&self) {
        let (sockets, cancels) = {
            let mut open = self.state();
            open.stopped = true;
            open.links.clear();
            open.openings.clear();
            open.health = None;
            (
                std::mem::take(&mut open.sockets),
                std::mem::take(&mut open.cancels),
            )
        };
        // A transaction waiting for a connection learns there will be none.
        self.freed.notify(usize::MAX);
        // Dropping a connection's last client queues a Terminate message, which its
        // socket task writes before it ends.
        let (links, sockets): (Vec<_>, Vec<_>) = sockets.into_iter().unzip();
        drop(links);
        let ended = self.drivers.run(async {
            for socket in sockets {
                socket.await;
            }
            for cancel in cancels {
                cancel.await;
            }
        });
        future::or(ended, async {
            Timer::after(CLOSE_TIMEOUT).await;
        })
        .await;
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
}

/// Whether the server answered `error` with a FATAL or PANIC error, after which it closes
/// the connection (`pg_terminate_backend`, a shutdown, a crash).
fn ends_session(error: &HandlerError) -> bool {
    let Some(source) = std::error::Error::source(error) else {
        return false;
    };
    source
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(tokio_postgres::Error::as_db_error)
        .and_then(|db| db.parsed_severity())
        .is_some_and(|severity| matches!(severity, Severity::Fatal | Severity::Panic))
}

fn stopped() -> HandlerError {
    HandlerError::execution("the db handler is shut down")
}
