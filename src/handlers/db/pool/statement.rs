//! One statement on a connection: counted in flight there, awaited while the pool's
//! sockets run. A statement left unanswered (its connection stalled past the deadline, or
//! its request dropped, or a check's own time limit passed) is abandoned: the server may still be running it and the
//! connection's next reply is its, so the connection is retired (never chosen again), and
//! closed, with a cancel request for what the server still runs, once no live statement
//! is left on it.

use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use futures_lite::future;

use super::link::{Busy, Link};
use super::{Pool, cancel};
use crate::handler::{Fault, HandlerError};

impl Pool {
    /// Awaits `work`, a statement on `link`, counted in flight there and running the
    /// connections' sockets meanwhile. On a connection found stalled ([`super::watch`]) it
    /// fails, abandoned (see [`Statement`]).
    pub(super) async fn on<T>(
        &self,
        link: &Arc<Link>,
        work: impl Future<Output = Result<T, HandlerError>>,
    ) -> Result<T, HandlerError> {
        self.await_on(link, work, true).await
    }

    /// [`Pool::on`] for a check of the connection (a ping, a validation): how fast it is
    /// answered says nothing of how fast statements are (the start-up ping's answer, just
    /// before a burst of long statements, made the connection look prompt).
    pub(super) async fn check_on<T>(
        &self,
        link: &Arc<Link>,
        work: impl Future<Output = Result<T, HandlerError>>,
    ) -> Result<T, HandlerError> {
        self.await_on(link, work, false).await
    }

    async fn await_on<T>(
        &self,
        link: &Arc<Link>,
        work: impl Future<Output = Result<T, HandlerError>>,
        measured: bool,
    ) -> Result<T, HandlerError> {
        let mut statement = Statement {
            pool: self,
            link,
            busy: Some(link.enter(self.epoch, Instant::now(), measured)),
            answered: false,
        };
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
        // statements of other requests ready to run queue too and leave in one write.
        let mut queued_only = link.in_flight() > 1;
        let done = future::poll_fn(|cx| {
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
        .await;
        if done.is_err() && link.is_stalled() {
            let message = format!(
                "the database did not answer within {} ms; the statement was cancelled",
                self.deadline.unwrap_or_default().as_millis()
            );
            return Err(HandlerError::dependency(Fault::Lost, message, None));
        }
        statement.answered = true;
        done
    }

    /// Never lends `link` again.
    pub(super) fn retire(&self, link: &Arc<Link>) {
        if link.retire() {
            let mut open = self.state();
            open.links.retain(|open| !Arc::ptr_eq(open, link));
            if open
                .health
                .as_ref()
                .is_some_and(|health| Arc::ptr_eq(health, link))
            {
                open.health = None;
            }
        }
    }

    /// Closes `link`, retired and with no live statement left, and has the server cancel
    /// what it still runs there.
    ///
    /// A cancel request stops whatever the backend runs when it arrives, and on a pipelined
    /// connection that may be another request's statement, queued behind or ahead of the
    /// abandoned one. So the cancel waits until every statement still on the connection is
    /// abandoned: a retired connection takes no new statements, and once the last live one
    /// has left (answered, failed, or abandoned in turn), whatever the backend still runs
    /// is work nobody awaits. A live statement meanwhile waits at most for the abandoned
    /// one's `statement_timeout`, which the server enforces.
    pub(super) fn close(&self, link: &Arc<Link>) {
        if !link.close() {
            return;
        }
        let (peer, token) = link.cancel_key();
        let mut open = self.state();
        let socket = open
            .sockets
            .iter()
            .position(|(open, _)| Arc::ptr_eq(open, link))
            .map(|index| open.sockets.swap_remove(index));
        open.cancels.retain(|cancel| !cancel.is_finished());
        open.cancels
            .push(cancel::spawn(peer, token, Arc::clone(&self.binding)));
        drop(open);
        // Dropping the socket task closes the socket (on the executor's next turn).
        drop(socket);
    }
}

/// A statement on a link, counted in flight until dropped; dropped unanswered, it is
/// abandoned (see the module's docs).
struct Statement<'a> {
    pool: &'a Pool,
    link: &'a Arc<Link>,
    busy: Option<Busy<'a>>,
    answered: bool,
}

impl Drop for Statement<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.pool.retire(self.link);
        }
        // Counted out before the check below; a statement left unanswered is no sign of
        // life for the connection's watch.
        if let Some(mut busy) = self.busy.take() {
            busy.answered = self.answered;
            drop(busy);
        }
        if self.link.is_retired() && self.link.in_flight() == 0 {
            self.pool.close(self.link);
        }
    }
}
