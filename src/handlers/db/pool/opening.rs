//! Which connection a statement takes, and opening new ones.
//!
//! Connections open concurrently, up to the pool's size, each without a lock held: a
//! server slow to answer the handshake delays only the statements waiting for that
//! connection. A statement that finds no open connection to take (none answering
//! promptly, none that just went busy and may yet: it waits up to [`PROMPT`] to see) opens
//! one more while the pool has room, so a burst on a cold pool opens as many connections
//! as it has statements, up to the pool's size: N long statements on a pool of N run side
//! by side, not one after another on the first connection to open. Once the pool is full, a
//! statement takes the least busy connection, open or being opened (those waiting for a
//! connection being opened count as in flight there), so a burst larger than the pool is
//! spread evenly over it. Every statement waiting for a connection gets it or its failure
//! together.
//!
//! A statement waiting alone for a connection being opened that has taken longer than
//! [`CONNECT_PATIENCE`] (the connect hangs, say) takes an open one instead as soon as one
//! [takes more](Link::takes_more) and has answered a statement, and the opening it leaves
//! is given up. One that has answered nothing may be running a long statement, so it is
//! left to the statements that opened it. Before that, it waits for its own: giving up
//! connects that would have finished in a moment made the pool open and drop one after
//! another under load (docs/PERFORMANCE.md).
//!
//! A failed connect fails its statements only when nothing else can take them: a
//! statement whose connection did not open (the server refused more clients, SQLSTATE
//! 53300; the connect timed out) takes the least busy open connection, else waits for one
//! begun before the failure, and fails with the failure only when there is none. It opens no other
//! itself, so its wait stays within the connects already under way.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_lock::OnceCell;
use event_listener::EventListener;
use futures_lite::future;
use smol::Timer;

use super::link::{Link, micros_since};
use super::watch::{self, Watch};
use super::{CONNECT_PATIENCE, Open, PIPELINE_DEPTH, PROMPT, Pool, connect, stopped};
use crate::handler::{Fault, HandlerError};

/// A connection being opened.
pub(super) struct Opening {
    /// The connection, or why there is none: every statement waiting gets a copy.
    /// Whoever awaits it first opens it; if that request is dropped, the next one
    /// waiting takes over.
    result: OnceCell<Result<Arc<Link>, String>>,
    /// Statements waiting for it.
    waiting: AtomicUsize,
    /// When it was begun.
    begun: Instant,
}

/// A statement's place among those waiting for an [`Opening`]. The last to leave an
/// opening nobody has finished gives it up: nothing opens it any more, and it must not
/// count toward the pool's size.
struct Waiter<'a> {
    pool: &'a Pool,
    opening: Arc<Opening>,
}

impl<'a> Waiter<'a> {
    fn join(pool: &'a Pool, opening: &Arc<Opening>) -> Waiter<'a> {
        opening.waiting.fetch_add(1, Ordering::AcqRel);
        Waiter {
            pool,
            opening: Arc::clone(opening),
        }
    }

    /// Whether no other statement waits for the same connection.
    fn alone(&self) -> bool {
        self.opening.waiting.load(Ordering::Acquire) == 1
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if self.opening.waiting.fetch_sub(1, Ordering::AcqRel) == 1
            && self.opening.result.get().is_none()
        {
            // Statements join under the pool's lock: one that joined meanwhile keeps it.
            let mut open = self.pool.state();
            if self.opening.waiting.load(Ordering::Acquire) == 0 {
                open.openings
                    .retain(|other| !Arc::ptr_eq(other, &self.opening));
            }
        }
    }
}

/// What a statement takes: an open connection, or a place waiting for one; or it waits
/// to see whether a connection that just went busy answers promptly.
enum Choice<'a> {
    Link(Arc<Link>),
    Wait(Waiter<'a>),
    /// Until a statement ends (heard on the listener) or this instant (µs on the pool's
    /// clock), whichever comes first.
    Defer(EventListener, u64),
}

impl Pool {
    /// The connection the next statement uses.
    pub(super) async fn link(&self) -> Result<Arc<Link>, HandlerError> {
        // When no statement is waiting, nothing has run the sockets since the last one:
        // let them take what arrived meanwhile, so that a connection the server closed
        // ends now and is replaced instead of failing this statement. (While statements
        // wait, they run the sockets; doing it here too broke up batched writes.)
        if self.in_flight() == 0 {
            while self.drivers.try_tick() {}
        }
        // The first connect this statement waited for that failed, and when.
        let mut failed: Option<(String, Instant)> = None;
        loop {
            let waiter = match self.choose(failed.as_ref().map(|(_, at)| *at))? {
                Some(Choice::Link(link)) => return Ok(link),
                Some(Choice::Wait(waiter)) => waiter,
                Some(Choice::Defer(ended, until)) => {
                    let left = until.saturating_sub(micros_since(self.epoch));
                    future::or(ended, async {
                        Timer::after(Duration::from_micros(left)).await;
                    })
                    .await;
                    continue;
                }
                // Only connecting fails here: nothing of the statement was sent.
                None => {
                    return Err(match failed {
                        Some((message, _)) => {
                            HandlerError::dependency(Fault::NotSent, message, None)
                        }
                        None => stopped(),
                    });
                }
            };
            match self.wait(&waiter).await {
                Ok(link) => return Ok(link),
                Err(message) => {
                    failed.get_or_insert((message, Instant::now()));
                }
            }
        }
    }

    /// Awaits the connection `waiter` waits for, or, once that has taken
    /// [`CONNECT_PATIENCE`], takes an open one that takes more and has answered a
    /// statement, if one does while it waits alone.
    async fn wait(&self, waiter: &Waiter<'_>) -> Result<Arc<Link>, String> {
        let opening = &waiter.opening;
        let mut opened = pin!(opening.result.get_or_init(|| self.open_for(opening)));
        let patience = opening.begun + CONNECT_PATIENCE;
        loop {
            // Listening before looking: a connection coming free in between is not missed.
            let freed = self.freed.listen();
            let patient = Instant::now() < patience;
            if !patient
                && waiter.alone()
                && let Some(link) = self.prompt_link(&self.state(), micros_since(self.epoch), true)
            {
                return Ok(link);
            }
            let done = future::or(async { Some(opened.as_mut().await.clone()) }, async {
                if patient {
                    Timer::at(patience).await;
                } else {
                    freed.await;
                }
                None
            })
            .await;
            if let Some(result) = done {
                return result;
            }
        }
    }

    /// Opens the connection `opening` stands for and lends it out.
    async fn open_for(&self, opening: &Arc<Opening>) -> Result<Arc<Link>, String> {
        let lost = self.lost.load(Ordering::Acquire);
        let opened = self.open_link(lost).await;
        let result = {
            let mut open = self.state();
            open.openings.retain(|other| !Arc::ptr_eq(other, opening));
            match opened {
                Err(error) => Err(error.to_string()),
                Ok(_) if open.stopped => Err(stopped().to_string()),
                Ok(link) => {
                    open.links.push(Arc::clone(&link));
                    Ok(link)
                }
            }
        };
        // The pool has room again, or one more connection: a transaction waiting for
        // either, or a statement waiting alone for another connection, looks again.
        self.freed.notify(usize::MAX);
        result
    }

    /// Opens a connection, known good at `lost`, and runs its socket on the pool's
    /// executor; lent to no one yet.
    pub(super) async fn open_link(&self, lost: u64) -> Result<Arc<Link>, HandlerError> {
        let (client, connection, peer, socket) = connect::open(&self.config, &self.binding).await?;
        let link = Arc::new(Link::new(client, peer, socket, lost));
        let watch = self
            .deadline
            .map(|deadline| Watch::new(Arc::downgrade(&link), deadline, self.epoch));
        let binding = Arc::clone(&self.binding);
        let socket = self
            .drivers
            .spawn(watch::drive_socket(connection, watch, binding));
        let mut open = self.state();
        if open.stopped {
            return Err(stopped());
        }
        open.sockets.retain(|(_, socket)| !socket.is_finished());
        open.sockets.push((Arc::clone(&link), socket));
        Ok(link)
    }

    /// What a statement should take now: the least busy open connection that [takes
    /// more](Link::takes_more) (ties to the oldest) and no transaction waits for; else,
    /// while the pool has room, a new one, unless a connection went busy just now and has
    /// not answered yet: then nothing until it answers or [`PROMPT`] has passed (so a
    /// burst of short statements is pipelined on it, as before, without opening
    /// connections it does not need); else the least busy connection, open or being
    /// opened. After a failed connect at `failed`, no new one: only those begun by then
    /// are waited for, and `None` says there is nothing to take.
    fn choose(&self, failed: Option<Instant>) -> Result<Option<Choice<'_>>, HandlerError> {
        let mut open = self.state();
        if open.stopped {
            return Err(stopped());
        }
        open.links.retain(|link| !link.is_closed());
        let now = micros_since(self.epoch);
        if let Some(link) = self.prompt_link(&open, now, false) {
            return Ok(Some(Choice::Link(link)));
        }
        if failed.is_none() && open.links.len() + open.openings.len() + open.held < self.size {
            // Only while a new connection is the alternative: a full pool takes the least
            // busy one at once.
            let unknown = open
                .links
                .iter()
                .filter(|link| !link.is_draining())
                .filter_map(|link| link.unknown_until(now, PIPELINE_DEPTH, prompt()))
                .min();
            if let Some(until) = unknown {
                return Ok(Some(Choice::Defer(self.freed.listen(), until)));
            }
            let opening = Arc::new(Opening {
                result: OnceCell::new(),
                waiting: AtomicUsize::new(0),
                begun: Instant::now(),
            });
            open.openings.push(Arc::clone(&opening));
            return Ok(Some(Choice::Wait(Waiter::join(self, &opening))));
        }
        // The pool is full: the least busy connection, open or being opened (statements
        // waiting for one count as in flight there; ties to the open one). A connection
        // a transaction waits for is the last choice.
        let least_busy = open
            .links
            .iter()
            .min_by_key(|link| (link.is_draining(), link.in_flight()))
            .cloned();
        let least_awaited = open
            .openings
            .iter()
            .filter(|opening| failed.is_none_or(|at| opening.begun <= at))
            .min_by_key(|opening| opening.waiting.load(Ordering::Acquire))
            .cloned();
        // After a failed connect, an open connection before another connect that may fail
        // too: the statement has waited for one already.
        Ok(match (least_busy, least_awaited) {
            (Some(link), Some(opening))
                if link.is_draining()
                    || (failed.is_none()
                        && opening.waiting.load(Ordering::Acquire) < link.in_flight()) =>
            {
                Some(Choice::Wait(Waiter::join(self, &opening)))
            }
            (Some(link), _) => Some(Choice::Link(link)),
            (None, opening) => opening.map(|opening| Choice::Wait(Waiter::join(self, &opening))),
        })
    }

    /// The least busy open connection that takes more at `now` and no transaction waits
    /// for (ties to the oldest); with `proven`, only one that has answered a statement.
    fn prompt_link(&self, open: &Open, now: u64, proven: bool) -> Option<Arc<Link>> {
        open.links
            .iter()
            .filter(|link| {
                !link.is_draining()
                    && !link.is_closed()
                    && (!proven || link.is_proven())
                    && link.takes_more(now, PIPELINE_DEPTH, prompt())
            })
            .min_by_key(|link| link.in_flight())
            .cloned()
    }
}

/// [`PROMPT`] in µs.
fn prompt() -> u64 {
    u64::try_from(PROMPT.as_micros()).unwrap_or(u64::MAX)
}
