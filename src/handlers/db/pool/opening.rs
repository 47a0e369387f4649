//! Which connection a statement takes, and opening new ones.
//!
//! Connections open concurrently, up to the pool's size, each without a lock held: a
//! server slow to answer the handshake delays only the statements waiting for that
//! connection. A statement that finds no open connection to take waits for one being
//! opened, while fewer than [`PIPELINE_DEPTH`] wait for it (as if in flight there), and
//! else opens one more; every statement waiting for a connection gets it or its failure
//! together, instead of each trying again in turn.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_lock::OnceCell;

use super::link::{Link, micros_since};
use super::watch::{self, Watch};
use super::{PIPELINE_DEPTH, PROMPT, Pool, connect, stopped};
use crate::handler::{Fault, HandlerError};

/// A connection being opened.
pub(super) struct Opening {
    /// The connection, or why there is none: every statement waiting gets a copy.
    /// Whoever awaits it first opens it; if that request is dropped, the next one
    /// waiting takes over.
    result: OnceCell<Result<Arc<Link>, String>>,
    /// Statements waiting for it.
    waiting: AtomicUsize,
}

/// A statement's place among those waiting for an [`Opening`].
struct Waiter(Arc<Opening>);

impl Waiter {
    fn join(opening: &Arc<Opening>) -> Waiter {
        opening.waiting.fetch_add(1, Ordering::Relaxed);
        Waiter(Arc::clone(opening))
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a statement takes: an open connection, or a place waiting for one.
enum Choice {
    Link(Arc<Link>),
    Wait(Waiter),
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
        let waiter = match self.choose()? {
            Choice::Link(link) => return Ok(link),
            Choice::Wait(waiter) => waiter,
        };
        let opening = &waiter.0;
        let result = opening.result.get_or_init(|| self.open_for(opening)).await;
        // Only connecting fails here: nothing of the statement was sent.
        result
            .clone()
            .map_err(|message| HandlerError::dependency(Fault::NotSent, message, None))
    }

    /// Opens the connection `opening` stands for and lends it out.
    async fn open_for(&self, opening: &Arc<Opening>) -> Result<Arc<Link>, String> {
        let lost = self.lost.load(Ordering::Acquire);
        let opened = self.open_link(lost).await;
        let mut open = self.state();
        open.openings.retain(|other| !Arc::ptr_eq(other, opening));
        let link = opened.map_err(|error| error.to_string())?;
        if open.stopped {
            return Err(stopped().to_string());
        }
        open.links.push(Arc::clone(&link));
        Ok(link)
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
    /// more](Link::takes_more) (ties to the oldest) and no transaction waits for; else a connection being opened that
    /// fewer than [`PIPELINE_DEPTH`] wait for; else a new one, while the pool has room;
    /// else the least busy open connection, or the least awaited opening one.
    fn choose(&self) -> Result<Choice, HandlerError> {
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
            .filter(|link| !link.is_draining() && link.takes_more(now, PIPELINE_DEPTH, prompt))
            .min_by_key(|link| link.in_flight());
        if let Some(link) = prompt_one {
            return Ok(Choice::Link(Arc::clone(link)));
        }
        let least_awaited = open
            .openings
            .iter()
            .min_by_key(|opening| opening.waiting.load(Ordering::Relaxed))
            .cloned();
        if let Some(opening) = least_awaited
            .as_ref()
            .filter(|opening| opening.waiting.load(Ordering::Relaxed) < PIPELINE_DEPTH)
        {
            return Ok(Choice::Wait(Waiter::join(opening)));
        }
        if open.links.len() + open.openings.len() + open.held < self.size {
            let opening = Arc::new(Opening {
                result: OnceCell::new(),
                waiting: AtomicUsize::new(0),
            });
            open.openings.push(Arc::clone(&opening));
            return Ok(Choice::Wait(Waiter::join(&opening)));
        }
        // A connection a transaction waits for is the last choice.
        if let Some(link) = open
            .links
            .iter()
            .min_by_key(|link| (link.is_draining(), link.in_flight()))
        {
            return Ok(Choice::Link(Arc::clone(link)));
        }
        match least_awaited {
            Some(opening) => Ok(Choice::Wait(Waiter::join(&opening))),
            None => Err(stopped()),
        }
    }
}
