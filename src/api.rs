//! The HTTP API (`--listen`): request/reply envelopes, health probes and metrics.
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /v1/envelopes` | 200 with the response envelope; 400 with an error envelope if the body is not an envelope; 413 if it is over the size limit or more than the memory budget could ever hold; 408 if it does not arrive in time; 503 with `Retry-After` while draining or when the memory budget cannot hold it now |
//! | `GET /health/live` | 200 while the process runs |
//! | `GET /health/ready` | 200 when started, not draining, and the bus and every handler are healthy; else 503 |
//! | `GET /health/handlers` | each handler's state and `describe()`, and the bus's health |
//! | `GET /metrics` | Prometheus (OpenMetrics) text |
//!
//! HTTP/1.1 by hyper on smol. Whatever clients do, the API keeps answering: a request's
//! headers and body must arrive within the request timeout, a response must be read
//! without stalling, bodies are charged to the host's memory budget as they arrive
//! (`body`), and connections past the limit either displace an idle one or are served
//! health probes only (`connections`). A request whose body was read is always
//! answered before its connection closes, at shutdown too: in full, or, once the
//! deadline has passed, with a failure saying whether it ran. Requests from the API are
//! answered here, not on the output topic, and share the host's in-flight limit.

mod body;
mod connections;
mod envelopes;
mod reply;
mod stall;

use std::net::{SocketAddr, TcpListener};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::future;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use smol::{Async, Executor, Timer};
use smol_hyper::rt::SmolTimer;

use crate::error::HostError;
use crate::host::RuntimeHost;
use crate::latch::Latch;
use connections::{Admitted, Connections};
use envelopes::Requests;
use reply::{Reply, busy, charged, closing, json, json_sized, method_not_allowed, reply};
use stall::{Vectored, WriteDeadline};

pub use connections::{MAX_CONNECTIONS, RESERVE};

/// How long a client may take to send a request, headers and body, unless told otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to send a request's headers, at most.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection served from the reserve may take to send its headers (or a
/// body it is refused).
const RESERVE_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a response may wait for the client to read it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// The read buffer of a connection: large enough for any sane headers, small enough
/// that every connection holding one full stays well inside the memory bound.
const READ_BUFFER: usize = 64 * 1024;
/// How long, after the shutdown deadline, the last responses may take to be written.
const LAST_WRITE: Duration = Duration::from_secs(2);

/// Binds the API's listening socket (before the host starts, so probes see it starting).
pub fn bind(addr: SocketAddr) -> Result<Async<TcpListener>, HostError> {
    let listener = Async::<TcpListener>::bind(addr).map_err(|source| HostError::Io {
        doing: "binding the HTTP API address (is it in use?)",
        source,
    })?;
    let local = listener.get_ref().local_addr().unwrap_or(addr);
    log::info!("HTTP API listening on http://{local}");
    Ok(listener)
}

/// The running API: its connections and the requests in progress, to wait for at shutdown.
#[derive(Debug)]
pub struct Api {
    connections: Arc<Connections>,
    requests: Arc<Requests>,
}

/// What every connection shares.
struct Shared {
    host: Arc<RuntimeHost>,
    draining: Latch,
    deadline: Latch,
    requests: Arc<Requests>,
    request_timeout: Duration,
}

impl Api {
    /// Serves the API on `listener` until the process ends; connections run on
    /// `executor`. Once `draining` is set, connections close after their current request.
    /// A client must send each request within `request_timeout`.
    pub fn start(
        listener: Async<TcpListener>,
        host: Arc<RuntimeHost>,
        (draining, deadline): (Latch, Latch),
        request_timeout: Duration,
        executor: &Arc<Executor<'static>>,
    ) -> Api {
        let connections = Arc::new(Connections::default());
        let requests = Arc::new(Requests::default());
        let shared = Arc::new(Shared {
            host,
            draining,
            deadline,
            requests: Arc::clone(&requests),
            request_timeout,
        });
        let accepting = accept(
            listener,
            shared,
            Arc::clone(&connections),
            Arc::clone(executor),
        );
        executor.spawn(accepting).detach();
        Api {
            connections,
            requests,
        }
    }

    /// Waits until every envelope request taken in has been answered and its response
    /// written, and every connection has closed; once `deadline` is set, for at most
    /// `LAST_WRITE` (2 s) more.
    pub async fn finished(&self, deadline: &Latch) {
        let everything = async {
            self.requests.none_left().await;
            self.connections.all_closed().await;
        };
        future::or(everything, async {
            deadline.wait().await;
            Timer::after(LAST_WRITE).await;
            if self.requests.count() > 0 {
                log::warn!(
                    "{} API response(s) were not read by their clients in time",
                    self.requests.count()
                );
            }
        })
        .await;
    }
}

async fn accept(
    listener: Async<TcpListener>,
    shared: Arc<Shared>,
    connections: Arc<Connections>,
    executor: Arc<Executor<'static>>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                log::warn!("accepting an HTTP connection failed: {error}");
                continue;
            }
        };
        let admitted = connections.admit().await;
        executor
            .spawn(serve_connection(stream, admitted, Arc::clone(&shared)))
            .detach();
    }
}

async fn serve_connection(
    stream: Async<std::net::TcpStream>,
    admitted: Admitted,
    shared: Arc<Shared>,
) {
    let reserve = admitted.reserve;
    let conn = Arc::clone(&admitted.conn);
    let draining = shared.draining.clone();
    // Opened while draining: serve one request (a probe, say), then close.
    let draining_already = draining.is_set();
    let service = {
        let (shared, conn) = (Arc::clone(&shared), Arc::clone(&conn));
        hyper::service::service_fn(move |request| {
            let (shared, conn) = (Arc::clone(&shared), Arc::clone(&conn));
            async move {
                let _in_request = conn.enter();
                Ok::<_, std::convert::Infallible>(respond(request, &shared, reserve).await)
            }
        })
    };
    let header_timeout = if reserve {
        RESERVE_HEADER_TIMEOUT
    } else {
        HEADER_TIMEOUT.min(shared.request_timeout)
    };
    let io = Vectored::new(WriteDeadline::new(stream, WRITE_TIMEOUT));
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(SmolTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(READ_BUFFER)
        // A client may shut its sending side once the request is out, and still read.
        .half_close(true)
        .keep_alive(!draining_already && !reserve)
        .serve_connection(io, service);
    let mut connection = pin!(connection);
    // Once draining starts (for a connection opened before), or another connection needs
    // this one's place, finish the request in progress and close instead of waiting for
    // the next.
    let close_early = async {
        if draining_already {
            conn.shed.wait().await;
        } else {
            future::or(draining.wait(), conn.shed.wait()).await;
        }
    };
    let ended = future::or(async { Some(connection.as_mut().await) }, async {
        close_early.await;
        None
    });
    let result = match ended.await {
        Some(result) => result,
        None => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        log::debug!("HTTP connection ended: {error}");
    }
    drop(admitted);
}

async fn respond(request: Request<Incoming>, shared: &Shared, reserve: bool) -> Response<Reply> {
    let host = &*shared.host;
    let path = request.uri().path().to_owned();
    match (request.method(), path.as_str()) {
        (&Method::POST, "/v1/envelopes") if !reserve => envelopes::envelope(request, shared).await,
        (&Method::POST, "/v1/envelopes") => {
            // Read what the client sends (briefly: the reserve is for probes), so closing
            // does not reset the connection and lose the answer under the client's feet.
            body::drain(&mut request.into_body(), RESERVE_HEADER_TIMEOUT).await;
            busy(
                "the host serves as many connections as it can; this one answers health probes only",
            )
        }
        (&Method::GET, "/health/live") => {
            json(StatusCode::OK, &serde_json::json!({"status": "live"}))
        }
        (&Method::GET, "/health/ready") => {
            let readiness = host.readiness().await;
            let status = if readiness.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json(status, &readiness)
        }
        (&Method::GET, "/health/handlers") => json(StatusCode::OK, &host.handlers_report().await),
        (&Method::GET, "/metrics") => {
            let mut response = reply(StatusCode::OK, Bytes::from(host.metrics_text()));
            let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
        (_, "/v1/envelopes") => method_not_allowed("POST"),
        (_, "/health/live" | "/health/ready" | "/health/handlers" | "/metrics") => {
            method_not_allowed("GET")
        }
        _ => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": "no such route"}),
        ),
    }
}
