//! A connection's socket task ([`drive_socket`]) and its watch: a connection that has
//! statements waiting and has answered none of them for the pool's deadline
//! (`statement_timeout` plus a margin) is stalled, and its socket task ends it, which fails
//! every statement on it.
//!
//! The server stops a statement at `statement_timeout` itself, so a connection that stays
//! silent past it is a server that stopped answering (frozen, cut off). Watching the
//! connection instead of each statement costs a statement no timer: one timer per
//! connection stays armed while it is in use, and is moved only when it fires (at most
//! once per deadline). A statement on a stalled connection fails within its own deadline:
//! the connection's last sign of life (an answer, or its start from idle) is no later than
//! the statement's start, or the statement is answered in turn.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::future;
use smol::Timer;

use super::super::error;
use super::connect::{Connection, poll_connection};
use super::link::Link;

/// Runs a connection's socket until the connection ends (see [`poll_connection`]), or
/// until `watch` finds it stalled; its logs name the binding `binding`.
pub(super) async fn drive_socket(
    mut connection: Connection,
    mut watch: Option<Watch>,
    binding: Arc<str>,
) {
    let ended = future::poll_fn(|cx| {
        if let Poll::Ready(ended) = poll_connection(&mut connection, cx, &binding) {
            return Poll::Ready(Some(ended));
        }
        match &mut watch {
            Some(watch) => watch.poll_stalled(cx).map(|()| None),
            None => Poll::Pending,
        }
    })
    .await;
    // The statements in flight learn it from the client half; this says why.
    match ended {
        Some(Ok(())) => {}
        Some(Err(ended)) => {
            log::warn!(handler_type = "db", binding = &*binding; "a database connection ended: {}", error::failure_reason(&ended));
        }
        None => {
            log::warn!(handler_type = "db", binding = &*binding; "a database connection answered nothing past the statement deadline: closed");
        }
    }
}

/// Watches one connection for a stall.
pub(super) struct Watch {
    link: Weak<Link>,
    deadline: Duration,
    /// The pool's clock starts here.
    epoch: Instant,
    /// Armed while the connection is in use.
    timer: Option<Timer>,
}

impl Watch {
    /// A watch on `link`, stalled after `deadline` without an answer; `epoch` starts the
    /// pool's clock.
    pub(super) fn new(link: Weak<Link>, deadline: Duration, epoch: Instant) -> Watch {
        Watch {
            link,
            deadline,
            epoch,
            timer: None,
        }
    }

    /// Ready once the connection has stalled (and is marked so); pending until then, woken
    /// when it is next due to be looked at.
    pub(super) fn poll_stalled(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let Some(timer) = &mut self.timer else {
                // Disarmed while idle: armed again by the socket's first turn in use.
                match self.link.upgrade() {
                    Some(link) if link.in_flight() > 0 => {
                        self.timer = due(self.epoch, self.deadline, &link).map(Timer::at);
                        if self.timer.is_none() {
                            return Poll::Pending;
                        }
                        continue;
                    }
                    _ => return Poll::Pending,
                }
            };
            if Pin::new(&mut *timer).poll(cx).is_pending() {
                return Poll::Pending;
            }
            let Some(link) = self.link.upgrade() else {
                return Poll::Pending;
            };
            if link.in_flight() == 0 {
                self.timer = None;
                return Poll::Pending;
            }
            match due(self.epoch, self.deadline, &link) {
                Some(due) if Instant::now() < due => timer.set_at(due),
                Some(_) => {
                    link.stall();
                    return Poll::Ready(());
                }
                None => {
                    self.timer = None;
                    return Poll::Pending;
                }
            }
        }
    }
}

/// When `link` is stalled unless it answers first: `deadline` after its last sign of life.
fn due(epoch: Instant, deadline: Duration, link: &Link) -> Option<Instant> {
    epoch
        .checked_add(Duration::from_micros(link.progress()))?
        .checked_add(deadline)
}
