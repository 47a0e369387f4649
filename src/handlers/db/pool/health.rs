//! Health checks: whether the server answers now, within [`HEALTH_TIMEOUT`], never queued
//! behind statements. A check pings an idle pooled connection, else a small connection of
//! the checks' own that statements never take: on a pipelined connection a ping would wait
//! for every statement ahead of it, so a busy, healthy server would look down, and a
//! frozen one would hold the probe. A frozen server fails the check at the timeout.

use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;
use smol::Timer;

use super::link::Link;
use super::watch;
use super::{Op, Pool, connect, stopped};
use crate::budget::Charge;
use crate::handler::HandlerError;

/// How long a health check may take, connecting included.
pub(super) const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

impl Pool {
    /// Whether the server answers a ping within [`HEALTH_TIMEOUT`].
    pub(in super::super) async fn health(&self) -> Result<(), HandlerError> {
        let timed_out = async {
            Timer::after(HEALTH_TIMEOUT).await;
            Err(HandlerError::execution(format!(
                "the database did not answer a health check within {} ms",
                HEALTH_TIMEOUT.as_millis()
            )))
        };
        // Past the timeout the ping is dropped: abandoned, its connection is retired and
        // the server asked to cancel it.
        future::or(self.ping(), timed_out).await
    }

    async fn ping(&self) -> Result<(), HandlerError> {
        if let Some(link) = self.idle() {
            let pinged = self.check_on(&link, ping(&link)).await;
            if pinged.is_ok() || !link.is_closed() {
                return pinged;
            }
            // A connection the server closed says nothing about the server now: ask on a
            // fresh one.
            self.forget(&link);
        }
        let link = self.health_link().await?;
        self.check_on(&link, ping(&link)).await
    }

    /// An open pooled connection with nothing in flight.
    fn idle(&self) -> Option<Arc<Link>> {
        if self.in_flight() == 0 {
            // Let the sockets see what arrived meanwhile (a connection closed by the server).
            while self.drivers.try_tick() {}
        }
        let open = self.state();
        open.links
            .iter()
            .find(|link| link.in_flight() == 0 && !link.is_closed())
            .cloned()
    }

    /// The health checks' own connection, opened when there is none.
    async fn health_link(&self) -> Result<Arc<Link>, HandlerError> {
        if let Some(link) = self.state().health.clone().filter(|link| !link.is_closed()) {
            return Ok(link);
        }
        let (client, connection, peer, socket) = connect::open(&self.config, &self.binding).await?;
        let link = Arc::new(Link::new(client, peer, socket, 0));
        // No watch: the check's own time limit bounds it.
        let binding = Arc::clone(&self.binding);
        let socket = self
            .drivers
            .spawn(watch::drive_socket(connection, None, binding));
        let mut open = self.state();
        if open.stopped {
            return Err(stopped());
        }
        // Another check opened one meanwhile: use it, and drop this one unused.
        if let Some(other) = open.health.clone().filter(|link| !link.is_closed()) {
            return Ok(other);
        }
        open.sockets.retain(|(_, socket)| !socket.is_finished());
        open.sockets.push((Arc::clone(&link), socket));
        open.health = Some(Arc::clone(&link));
        Ok(link)
    }
}

async fn ping(link: &Link) -> Result<(), HandlerError> {
    link.run(Op::Ping, "", &[], &Charge::unlimited())
        .await
        .map(drop)
}
