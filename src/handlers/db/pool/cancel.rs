//! Cancel requests: asking the server to stop what a connection's backend is running, over
//! a socket of their own (PostgreSQL's protocol: the backend's id and secret key on a new
//! connection to the same server), bounded by [`CANCEL_TIMEOUT`].
//!
//! A request runs on smol's global executor, not on the pool's: the pool's runs only while
//! some request awaits a statement, and a cancel must go out even when none does (the
//! request that was cancelled is gone, and the host may be idle or shutting down).

use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;
use smol::{Task, Timer};
use tokio_postgres::{CancelToken, NoTls};

use super::connect::Peer;
use super::socket::Socket;

/// How long sending one cancel request may take.
pub(super) const CANCEL_TIMEOUT: Duration = Duration::from_secs(1);

/// Sends a cancel request for the backend `token` names on `peer`, in the background; one
/// that fails, or gets no answer within [`CANCEL_TIMEOUT`] (a server cut off: nothing
/// answers the connect), is given up with a warning naming the server, why, and the
/// binding `binding`.
pub(super) fn spawn(peer: Peer, token: CancelToken, binding: Arc<str>) -> Task<()> {
    smol::spawn(async move {
        let sent = async {
            let socket = peer.connect().await.map_err(|error| error.to_string())?;
            token
                .cancel_query_raw(Socket::new(socket), NoTls)
                .await
                .map_err(|error| super::super::error::failure_reason(&error))
        };
        let timed_out = async {
            Timer::after(CANCEL_TIMEOUT).await;
            Err(format!(
                "no answer within {} ms",
                CANCEL_TIMEOUT.as_millis()
            ))
        };
        if let Err(reason) = future::or(sent, timed_out).await {
            log::warn!(handler_type = "db", binding = &*binding; "could not send a cancel request to the database at {peer}: {reason}; the statement it was for runs on until it ends or reaches statement_timeout");
        }
    })
}
