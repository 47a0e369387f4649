//! `db.transaction` on the pool: a connection held for one transaction alone, and the
//! transaction run on it (`BEGIN`, each statement, `COMMIT`), all or nothing.
//!
//! Statements are pipelined on shared connections, so a transaction cannot run on one
//! another request may use: its statements would run inside the transaction, or it
//! inside theirs. A transaction holds a connection out of the pool instead ([`Held`]): an
//! idle open one nobody else has in hand, else a new one while the pool has room, else
//! it waits (as long as a statement's deadline) for one to come free. While it waits, the
//! least busy connection is drained: statements take it last, so that a steady stream of
//! them, pipelined on every connection, cannot keep a transaction waiting. At most one
//! fewer than the pool's size are held at once ([`Pool::max_held`]), so a connection
//! always stays for single statements (a pool of one lets its transaction hold it).
//!
//! Each statement runs as any other ([`Pool::on`]): the server's `statement_timeout`
//! bounds it, the watch ends a connection that stops answering, and a request dropped
//! mid-transaction abandons its connection, which is closed with a cancel request, so
//! the server rolls the transaction back. A connection whose transaction did not end
//! cleanly (lost, stalled, its `ROLLBACK` failed) is never used again; one that ended
//! with `COMMIT` or `ROLLBACK` goes back to the pool.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use event_listener::EventListener;
use futures_lite::future;
use serde_json::Value;
use smol::Timer;

use super::super::STATEMENT_TIMEOUT;
use super::super::payload::Statement;
use super::link::Link;
use super::{Op, Pool, ends_session, stopped};
use crate::budget::Charge;
use crate::handler::HandlerError;

/// A connection held out of the pool by one transaction. Dropped without
/// [`Held::give_back`] (the transaction did not end cleanly, or its request was dropped),
/// its connection is retired and closed, with a cancel request.
pub(super) struct Held<'a> {
    pool: &'a Pool,
    link: Arc<Link>,
    given_back: bool,
}

impl Held<'_> {
    /// Returns the connection to the pool, its transaction ended.
    fn give_back(mut self) {
        self.given_back = true;
        let mut open = self.pool.state();
        open.held -= 1;
        let usable = !open.stopped && !self.link.is_closed() && !self.link.is_retired();
        if usable {
            open.links.push(Arc::clone(&self.link));
        }
        drop(open);
        self.pool.freed.notify(usize::MAX);
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.given_back {
            return;
        }
        self.pool.state().held -= 1;
        self.pool.retire(&self.link);
        if self.link.in_flight() == 0 {
            self.pool.close(&self.link);
        }
        self.pool.freed.notify(usize::MAX);
    }
}

/// Ends the draining a transaction's wait began, whichever way the wait ends: a drained
/// connection nobody took would otherwise be taken last for good.
struct Undrain<'a>(&'a Pool);

impl Drop for Undrain<'_> {
    fn drop(&mut self) {
        for link in &self.0.state().links {
            link.drain(false);
        }
    }
}

/// What a transaction looking for a connection does.
enum Take {
    /// Hold this free connection.
    Link(Arc<Link>),
    /// Open one (counted held already).
    Open,
    /// Wait for one to come free.
    Wait(EventListener),
}

/// How a transaction's end went wrong.
enum Ending {
    /// The statement at this index failed; whether the transaction was rolled back (else
    /// its connection is gone, or its state unknown).
    Statement(usize, HandlerError, bool),
    /// `BEGIN` failed: nothing ran.
    Begin(HandlerError),
    /// `COMMIT` failed.
    Commit(HandlerError),
}

impl Pool {
    /// Runs `statements` in one transaction on a connection of its own, and returns each
    /// one's result; the rows of every statement are charged to `charge`.
    pub(in super::super) async fn transaction(
        &self,
        statements: &[Statement],
        charge: &Charge,
    ) -> Result<Vec<Value>, HandlerError> {
        // A connection the server closed while it sat idle fails its BEGIN, which did
        // nothing: the transaction tries once more on another.
        let mut attempts = 0;
        let (held, results) = loop {
            attempts += 1;
            let held = self.hold().await?;
            match self.run_on(&held.link, statements, charge).await {
                Err(Ending::Begin(error)) if attempts < 2 && lost(&held.link, &error) => {}
                Err(ending) => return Err(self.ended(held, ending, statements.len())),
                Ok(results) => break (held, results),
            }
        };
        held.give_back();
        Ok(results)
    }

    /// `BEGIN`, each statement, `COMMIT`, on `link`; on a statement's failure, `ROLLBACK`.
    async fn run_on(
        &self,
        link: &Arc<Link>,
        statements: &[Statement],
        charge: &Charge,
    ) -> Result<Vec<Value>, Ending> {
        self.on(link, link.command("BEGIN"))
            .await
            .map_err(Ending::Begin)?;
        let mut results = Vec::with_capacity(statements.len());
        for (index, statement) in statements.iter().enumerate() {
            let run = link.run(Op::Any, &statement.sql, &statement.parameters, charge);
            match self.on(link, run).await {
                Ok(result) => results.push(Value::Object(result)),
                Err(error) => {
                    // A connection that failed its ROLLBACK is closed unused, which ends
                    // the transaction on the server just the same.
                    let rolled_back = !lost(link, &error)
                        && self.on(link, link.command("ROLLBACK")).await.is_ok();
                    return Err(Ending::Statement(index, error, rolled_back));
                }
            }
        }
        self.on(link, link.command("COMMIT"))
            .await
            .map_err(Ending::Commit)?;
        Ok(results)
    }

    /// The error a transaction that did not commit answers; gives `held` back to the pool
    /// if its transaction ended cleanly.
    fn ended(&self, held: Held<'_>, ending: Ending, count: usize) -> HandlerError {
        let link = Arc::clone(&held.link);
        let clean = |error: &HandlerError| !lost(&link, error) && !link.is_retired();
        // The message says what the error said; its cause goes on as the source, so a
        // log's chain of causes names each once.
        let split = |error: HandlerError| match error {
            HandlerError::Execution { message, source }
            | HandlerError::Statement {
                message, source, ..
            } => (message, source),
            other => (other.to_string(), None),
        };
        match ending {
            Ending::Begin(error) => {
                if clean(&error) {
                    held.give_back();
                }
                let (error, source) = split(error);
                HandlerError::Execution {
                    message: format!("the transaction could not begin, nothing ran: {error}"),
                    source,
                }
            }
            Ending::Statement(index, error, rolled_back) => {
                let how = if rolled_back && !link.is_retired() {
                    held.give_back();
                    "the transaction was rolled back"
                } else {
                    "the transaction was not committed"
                };
                let (error, source) = split(error);
                HandlerError::Statement {
                    index,
                    message: format!(
                        "statement {index} (of {count}, counted from 0) failed, {how} and nothing took effect: {error}"
                    ),
                    source,
                }
            }
            Ending::Commit(error) if clean(&error) => {
                // The server answered COMMIT with an error (a deferred constraint, a
                // serialization failure): it rolled the transaction back.
                held.give_back();
                let (error, source) = split(error);
                HandlerError::Execution {
                    message: format!(
                        "COMMIT failed, the transaction was rolled back and nothing took effect: {error}"
                    ),
                    source,
                }
            }
            Ending::Commit(error) => {
                let (error, source) = split(error);
                HandlerError::Execution {
                    message: format!(
                        "the connection was lost during COMMIT: the transaction may or may not have taken effect; check before running it again: {error}"
                    ),
                    source,
                }
            }
        }
    }

    /// A connection for one transaction alone (see the module's docs).
    async fn hold(&self) -> Result<Held<'_>, HandlerError> {
        let wait = self.deadline.unwrap_or(STATEMENT_TIMEOUT);
        let _undrain = Undrain(self);
        let timed_out = Timer::after(wait);
        futures_lite::pin!(timed_out);
        loop {
            let listener = match self.take_or_count()? {
                Take::Link(link) => return Ok(self.held(link)),
                Take::Open => return self.open_held().await,
                Take::Wait(listener) => listener,
            };
            let came_free = future::or(
                async {
                    listener.await;
                    true
                },
                async {
                    (&mut timed_out).await;
                    false
                },
            );
            if !came_free.await {
                return Err(HandlerError::execution(format!(
                    "no database connection came free for the transaction within {} ms; retry",
                    wait.as_millis()
                )));
            }
        }
    }

    /// How many connections transactions may hold at once: all but one, so single
    /// statements always have one; a pool of one lets a transaction hold it.
    pub(super) fn max_held(&self) -> usize {
        self.size.saturating_sub(1).max(1)
    }

    /// Under the pool's lock: takes a free connection, or counts one to open, or listens
    /// for one coming free.
    fn take_or_count(&self) -> Result<Take, HandlerError> {
        let mut open = self.state();
        if open.stopped {
            return Err(stopped());
        }
        open.links.retain(|link| !link.is_closed());
        if open.held < self.max_held() {
            // Held by the pool's lists only (`links`, `sockets`): no statement has it in
            // hand, and none can take it while the lock is held.
            let free = open
                .links
                .iter()
                .position(|link| Arc::strong_count(link) == 2 && link.in_flight() == 0);
            if let Some(index) = free {
                let link = open.links.remove(index);
                link.drain(false);
                open.held += 1;
                return Ok(Take::Link(link));
            }
            if open.links.len() + open.openings.len() + open.held < self.size {
                open.held += 1;
                return Ok(Take::Open);
            }
            // Statements end on a connection drained for this wait (its statements
            // already there), while the others take the new ones. One drains at a
            // time, and never the only one.
            if open.links.len() > 1
                && !open.links.iter().any(|link| link.is_draining())
                && let Some(least) = open.links.iter().min_by_key(|link| link.in_flight())
            {
                least.drain(true);
            }
        }
        Ok(Take::Wait(self.freed.listen()))
    }

    /// Opens a connection for a transaction, counted held already.
    async fn open_held(&self) -> Result<Held<'_>, HandlerError> {
        let lost = self.lost.load(Ordering::Acquire);
        match self.open_link(lost).await {
            Ok(link) => Ok(self.held(link)),
            Err(error) => {
                self.state().held -= 1;
                self.freed.notify(usize::MAX);
                Err(error)
            }
        }
    }

    fn held(&self, link: Arc<Link>) -> Held<'_> {
        Held {
            pool: self,
            link,
            given_back: false,
        }
    }
}

/// Whether `error` on `link` means the connection is gone (closed, stalled past its
/// deadline, or ended by the server).
fn lost(link: &Link, error: &HandlerError) -> bool {
    link.is_closed() || link.is_stalled() || ends_session(error)
}
