//! The HTTP API (`--listen`): request/reply envelopes, health probes and metrics.
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /v1/envelopes` | 200 with the response envelope; 400 with an error envelope if the body is not an envelope; 413 if it is over the size limit; 503 while draining |
//! | `GET /health/live` | 200 while the process runs |
//! | `GET /health/ready` | 200 when started, not draining, and the bus and every handler are healthy; else 503 |
//! | `GET /health/handlers` | each handler's state and `describe()`, and the bus's health |
//! | `GET /metrics` | Prometheus (OpenMetrics) text |
//!
//! HTTP/1.1 by hyper on smol. Request bodies and concurrent connections are bounded; a
//! client that sends its headers too slowly is dropped. Requests from the API are
//! answered here, not on the output topic, and share the host's in-flight limit.

use std::net::{SocketAddr, TcpListener};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use async_lock::Semaphore;
use bytes::Bytes;
use futures_lite::future;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use smol::{Async, Executor};
use smol_hyper::rt::{FuturesIo, SmolTimer};

use crate::envelope::{EnvelopeError, MAX_ENVELOPE_BYTES, RequestContext};
use crate::error::{ErrorKind, RuntimeHostError};
use crate::host::{HostState, RuntimeHost};
use crate::latch::Latch;

/// Connections served at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 512;
/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the API's listening socket (before the host starts, so probes see it starting).
pub fn bind(addr: SocketAddr) -> Result<Async<TcpListener>, RuntimeHostError> {
    let listener = Async::<TcpListener>::bind(addr).map_err(|source| ErrorKind::Io {
        doing: "binding the HTTP API address (is it in use?)",
        source,
    })?;
    let local = listener.get_ref().local_addr().unwrap_or(addr);
    log::info!("HTTP API listening on http://{local}");
    Ok(listener)
}

/// The running API: its connections, to wait for at shutdown.
#[derive(Debug)]
pub struct Api {
    connections: Arc<Semaphore>,
}

impl Api {
    /// Serves the API on `listener` until the process ends; connections run on
    /// `executor`. Once `draining` is set, connections close after their current request.
    pub fn start(
        listener: Async<TcpListener>,
        host: Arc<RuntimeHost>,
        draining: Latch,
        deadline: Latch,
        executor: &Arc<Executor<'static>>,
    ) -> Api {
        let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let accepting = accept(
            listener,
            host,
            draining,
            deadline,
            Arc::clone(&connections),
            Arc::clone(executor),
        );
        executor.spawn(accepting).detach();
        Api { connections }
    }

    /// Waits until every connection has closed (their last responses written).
    pub async fn closed(&self) {
        let mut all = Vec::with_capacity(MAX_CONNECTIONS);
        for _ in 0..MAX_CONNECTIONS {
            all.push(self.connections.acquire().await);
        }
    }
}

async fn accept(
    listener: Async<TcpListener>,
    host: Arc<RuntimeHost>,
    draining: Latch,
    deadline: Latch,
    connections: Arc<Semaphore>,
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
        let permit = connections.acquire_arc().await;
        let (host, deadline) = (Arc::clone(&host), deadline.clone());
        let service = hyper::service::service_fn(move |request| {
            let (host, deadline) = (Arc::clone(&host), deadline.clone());
            async move { Ok::<_, std::convert::Infallible>(respond(request, &host, &deadline).await) }
        });
        let draining = draining.clone();
        executor
            .spawn(async move {
                // Opened while draining: serve one request (a probe, say), then close.
                let draining_already = draining.is_set();
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(SmolTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .keep_alive(!draining_already)
                    .serve_connection(FuturesIo::new(stream), service);
                let mut connection = pin!(connection);
                let result = if draining_already {
                    connection.await
                } else {
                    // Opened before: once draining starts, finish the request in progress
                    // and close instead of waiting for the next.
                    let ended = future::or(async { Some(connection.as_mut().await) }, async {
                        draining.wait().await;
                        None
                    });
                    match ended.await {
                        Some(result) => result,
                        None => {
                            connection.as_mut().graceful_shutdown();
                            connection.await
                        }
                    }
                };
                if let Err(error) = result {
                    log::debug!("HTTP connection ended: {error}");
                }
                drop(permit);
            })
            .detach();
    }
}

async fn respond(
    request: Request<Incoming>,
    host: &RuntimeHost,
    deadline: &Latch,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    match (request.method(), path.as_str()) {
        (&Method::POST, "/v1/envelopes") => envelope(request, host, deadline).await,
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
            let mut response = Response::new(Full::new(Bytes::from(host.metrics_text())));
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

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = json(
        StatusCode::METHOD_NOT_ALLOWED,
        &serde_json::json!({"error": "method not allowed"}),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

/// The most of an oversized body read (and dropped) before it is refused.
const DRAIN_LIMIT: usize = 4 * MAX_ENVELOPE_BYTES;

/// The body, or `None` if it is longer than [`MAX_ENVELOPE_BYTES`]. A longer body is
/// still read to its end, and dropped as it arrives, when it is at most [`DRAIN_LIMIT`]:
/// a client still sending when the server answers and closes gets its connection reset,
/// often before it reads the 413 that explains why.
async fn read_body(mut body: Incoming) -> Result<Option<Bytes>, hyper::Error> {
    let declared = body.size_hint().lower();
    if declared > DRAIN_LIMIT as u64 {
        return Ok(None);
    }
    let mut kept = Vec::with_capacity(declared.min(MAX_ENVELOPE_BYTES as u64) as usize);
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        total += data.len();
        if total > DRAIN_LIMIT {
            return Ok(None);
        }
        if total <= MAX_ENVELOPE_BYTES {
            kept.extend_from_slice(&data);
        }
    }
    Ok((total <= MAX_ENVELOPE_BYTES).then(|| Bytes::from(kept)))
}

/// `POST /v1/envelopes`: one request in, its response out.
async fn envelope(
    request: Request<Incoming>,
    host: &RuntimeHost,
    deadline: &Latch,
) -> Response<Full<Bytes>> {
    let body = match read_body(request.into_body()).await {
        Ok(Some(body)) => body,
        Ok(None) => {
            let response = host.reject(EnvelopeError::TooLarge(MAX_ENVELOPE_BYTES));
            return json(StatusCode::PAYLOAD_TOO_LARGE, &response);
        }
        Err(error) => {
            let response = host.reject(EnvelopeError::Syntax(format!(
                "the request body could not be read: {error}"
            )));
            return json(StatusCode::BAD_REQUEST, &response);
        }
    };
    let request = match host.parse(&body) {
        Ok(request) => request,
        Err(response) => return json(StatusCode::BAD_REQUEST, &response),
    };
    let context = RequestContext::of(&request);
    if host.state() == HostState::Draining {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            &host.refuse(context, false),
        );
    }
    let routed = future::or(
        async {
            let _ticket = host.admit().await;
            Some(host.route(request).await)
        },
        async {
            deadline.wait().await;
            None
        },
    );
    match routed.await {
        Some(response) => json(StatusCode::OK, &response),
        None => {
            host.note_cut_short(1);
            json(StatusCode::SERVICE_UNAVAILABLE, &host.refuse(context, true))
        }
    }
}

fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
