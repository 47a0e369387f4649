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
mod link;
mod socket;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_lock::{Semaphore, SemaphoreGuard};
use futures_lite::future;
use serde_json::Value;
use smol::Timer;
use tokio_postgres::Config;

use crate::envelope::Payload;
use crate::handler::HandlerError;
use link::Link;

/// Connections in the pool.
pub(super) const POOL_SIZE: usize = 5;
/// How long a request may wait for a free connection.
pub(super) const WAIT_LIMIT: Duration = Duration::from_secs(30);

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
                Ok((client, connection)) => slot.link.insert(Link::new(client, connection, lost)),
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
