//! `POST /v1/envelopes`: one request envelope in, its response envelope out.
//!
//! The body is read under the memory budget and the request timeout ([`super::body`]);
//! the request then waits for a slot and is routed, both raced with the shutdown
//! deadline, so that nothing starts after it and nothing taken in goes unanswered. Each
//! request counts as taken in ([`Requests`]) from its headers until its response has
//! been written, which is what the drain waits for.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use event_listener::Event;
use futures_lite::future;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::body::{self, Unread};
use super::{Reply, Shared, busy, charged, closing, json, json_sized};
use crate::budget::Charge;
use crate::envelope::{EnvelopeError, MAX_ENVELOPE_BYTES, RequestContext};
use crate::host::{HostState, RuntimeHost};

/// A request charged this much or more has its response measured before it is written
/// ([`json_sized`]): it may be large too.
const LARGE: u64 = 256 * 1024;

/// Envelope requests taken in and not yet answered (their response not yet written).
#[derive(Debug, Default)]
pub(super) struct Requests {
    count: AtomicUsize,
    left: Event,
}

impl Requests {
    pub(super) fn enter(self: &Arc<Self>) -> Taken {
        self.count.fetch_add(1, Ordering::AcqRel);
        Taken(Arc::clone(self))
    }

    pub(super) fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    pub(super) async fn none_left(&self) {
        loop {
            let left = self.left.listen();
            if self.count() == 0 {
                return;
            }
            left.await;
        }
    }
}

/// One envelope request taken in, until its response has been written (or dropped).
#[derive(Debug)]
pub(super) struct Taken(Arc<Requests>);

impl Drop for Taken {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.left.notify(usize::MAX);
    }
}

/// `POST /v1/envelopes`: one request in, its response out. The request counts as taken
/// in, and keeps its charge to the memory budget, until its response has been written.
pub(super) async fn envelope(request: Request<Incoming>, shared: &Shared) -> Response<Reply> {
    let taken = shared.requests.enter();
    let (response, charge) = answer(request, shared).await;
    let (parts, reply) = response.into_parts();
    Response::from_parts(
        parts,
        Reply {
            body: reply.body.map(|bytes| charged(bytes, charge)),
            _taken: Some(taken),
        },
    )
}

async fn answer(request: Request<Incoming>, shared: &Shared) -> (Response<Reply>, Charge) {
    let (host, deadline) = (&*shared.host, &shared.deadline);
    let mut body = request.into_body();
    let read = match body::read(&mut body, host.budget(), shared.request_timeout).await {
        Ok(read) => read,
        Err(unread) => {
            let response = unread_body(unread, &mut body, host, shared.request_timeout).await;
            return (response, Charge::unlimited());
        }
    };
    let charge = read.charge;
    let request = match host.parse(&read.bytes) {
        Ok(request) => request,
        Err(response) => return (json(StatusCode::BAD_REQUEST, &response), charge),
    };
    drop(read.bytes);
    let context = RequestContext::of(&request);
    if host.state() == HostState::Draining {
        let refused = host.refuse(context, false);
        return (
            closing(json(StatusCode::SERVICE_UNAVAILABLE, &refused)),
            charge,
        );
    }
    // Nothing starts once the deadline has passed, even if a slot frees at that moment.
    let ticket = future::or(async { Some(host.admit().await) }, async {
        deadline.wait().await;
        None
    })
    .await
    .filter(|_| !deadline.is_set());
    let Some(ticket) = ticket else {
        host.note_cut_short(1);
        let refused = host.refuse(context, false);
        return (json(StatusCode::SERVICE_UNAVAILABLE, &refused), charge);
    };
    let routed = future::or(
        async { Some(host.route(request, charge.clone()).await) },
        async {
            deadline.wait().await;
            None
        },
    );
    let response = match routed.await {
        Some(response) => json_sized(StatusCode::OK, &response, charge.bytes() >= LARGE),
        None => {
            host.note_cut_short(1);
            json(StatusCode::SERVICE_UNAVAILABLE, &host.refuse(context, true))
        }
    };
    drop(ticket);
    (response, charge)
}

/// The answer to a request whose body was not read whole.
async fn unread_body(
    unread: Unread,
    body: &mut Incoming,
    host: &RuntimeHost,
    timeout: Duration,
) -> Response<Reply> {
    match unread {
        Unread::TooLarge => {
            body::drain(body, timeout).await;
            let response = host.reject(EnvelopeError::TooLarge(MAX_ENVELOPE_BYTES));
            json(StatusCode::PAYLOAD_TOO_LARGE, &response)
        }
        Unread::TooHeavy(weight) => {
            body::drain(body, timeout).await;
            let budget = host.budget().total();
            let response = host.reject(EnvelopeError::TooHeavy { weight, budget });
            json(StatusCode::PAYLOAD_TOO_LARGE, &response)
        }
        Unread::Busy => {
            body::drain(body, timeout).await;
            log::warn!(
                "an API request was refused: the memory budget ({} bytes) is spent",
                host.budget().total()
            );
            busy("the host holds as much as its memory budget allows; nothing ran")
        }
        Unread::TimedOut => closing(json(
            StatusCode::REQUEST_TIMEOUT,
            &host.reject(EnvelopeError::Syntax(format!(
                "the request body did not arrive within {} s",
                timeout.as_secs_f64()
            ))),
        )),
        Unread::Failed(error) => closing(json(
            StatusCode::BAD_REQUEST,
            &host.reject(EnvelopeError::Syntax(format!(
                "the request body could not be read: {error}"
            ))),
        )),
    }
}
