//! `HttpHandler`: `http.get`, `http.post` and (schema 1.1.0) `http.put`, `http.patch`,
//! `http.delete` on isahc (libcurl), driven on smol.
//!
//! | payload field | meaning |
//! | --- | --- |
//! | `url` (required) | an absolute `http` or `https` URL |
//! | `headers` | an object of header name to string value |
//! | `body` (not `http.get`) | an object or array is sent as JSON (with `Content-Type: application/json` unless `headers` names one); a string is sent as it is |
//! | `idempotency_key` | a string sent as the `Idempotency-Key` header: the caller says the call is safe to repeat, so the retry layer may retry it |
//!
//! The response payload is `{status_code, headers, body}`: headers by lowercase name
//! (repeated headers joined by `", "`), the body parsed as JSON when the response says it
//! is JSON, else text. Any status is a success: the call was made. A fixed 30 s deadline
//! covers the whole call, redirects included; a body over [`MAX_RESPONSE_BYTES`] is an
//! error, never buffered whole, and every body is charged to the request's share of the
//! host's memory budget as it arrives (an error if the budget is spent). Redirects are
//! followed up to [`MAX_REDIRECTS`] hops, only within the node's `target` when it
//! declares one; how each method fares on a redirect is in the `transfer` module.

mod call;
mod transfer;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use futures_lite::future::{self, Boxed};
use isahc::HttpClient;
use isahc::config::{Configurable, RedirectPolicy};
use isahc::http::HeaderMap;
use serde_json::Value;

use crate::contract::{HttpTarget, Reach};
use crate::envelope::Payload;
use crate::handler::{Description, Handler, HandlerError, HandlerRequest, HandlerType};
use crate::health::HealthReport;
use call::call_of;
use transfer::Fetched;

/// The operations `HttpHandler` supports (`put`, `patch` and `delete` need a node contract
/// at schema 1.1.0).
pub const OPERATIONS: &[&str] = &[
    "http.get",
    "http.post",
    "http.put",
    "http.patch",
    "http.delete",
];
/// The deadline of one call, redirects and body included.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response body read; a larger one is an error.
pub const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;
/// How many redirects one call follows.
pub const MAX_REDIRECTS: u32 = 10;

/// The HTTP client handler: one connection-reusing client, shared by every node.
#[derive(Debug)]
pub struct HttpHandler {
    client: Mutex<Option<HttpClient>>,
    timeout: Duration,
}

impl HttpHandler {
    /// A handler with the fixed [`TIMEOUT`] and no client yet; `initialize` builds it.
    pub fn new() -> Self {
        Self::with_timeout(TIMEOUT)
    }

    /// A handler whose calls time out after `timeout` (tests use short ones).
    #[must_use]
    pub fn with_timeout(timeout: Duration) -> Self {
        HttpHandler {
            client: Mutex::new(None),
            timeout,
        }
    }

    fn client(&self) -> Option<HttpClient> {
        self.client
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }
}

impl Default for HttpHandler {
    fn default() -> Self {
        Self::new()
    }
}

impl Handler for HttpHandler {
    fn handler_type(&self) -> HandlerType {
        HandlerType::Http
    }

    fn name(&self) -> &'static str {
        "HttpHandler"
    }

    fn initialize(&self) -> Boxed<Result<(), HandlerError>> {
        // Redirects are followed by `transfer`, hop by hop, so each can be checked.
        let built = HttpClient::builder()
            .redirect_policy(RedirectPolicy::None)
            .timeout(self.timeout)
            .build()
            .map_err(|error| HandlerError::Execution {
                message: "the HTTP client could not be created".into(),
                source: Some(Box::new(error)),
            });
        let result = built.map(|client| {
            *self
                .client
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()) = Some(client);
        });
        Box::pin(future::ready(result))
    }

    fn shutdown(&self) -> Boxed<()> {
        // Dropping the client ends its agent thread and closes its connections.
        self.client
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
        Box::pin(future::ready(()))
    }

    fn execute(&self, request: HandlerRequest) -> Boxed<Result<Option<Payload>, HandlerError>> {
        let (client, timeout) = (self.client(), self.timeout);
        Box::pin(async move {
            let client =
                client.ok_or_else(|| HandlerError::execution("the http handler is not running"))?;
            let call = call_of(&request)?;
            let target = confinement(&request)?;
            let fetched = transfer::send(&client, call, target, &request.charge, timeout).await?;
            Ok(Some(response_payload(fetched)))
        })
    }

    fn health_check(&self) -> Boxed<HealthReport> {
        let running = self.client().is_some();
        let report =
            HealthReport::new(running).with("client", if running { "ready" } else { "stopped" });
        Box::pin(future::ready(report))
    }

    fn describe(&self) -> Description {
        Description {
            handler_type: HandlerType::Http,
            version: "1.1.0".to_owned(),
            supported_operations: OPERATIONS.iter().map(|op| (*op).to_owned()).collect(),
            required_payload_fields: vec!["url".to_owned()],
            response_shape: BTreeMap::from([
                ("status_code".to_owned(), "integer".to_owned()),
                (
                    "headers".to_owned(),
                    "object: lowercase name -> string".to_owned(),
                ),
                (
                    "body".to_owned(),
                    "JSON value (JSON responses) or string".to_owned(),
                ),
            ]),
            limits: BTreeMap::from([
                (
                    "timeout_ms".to_owned(),
                    u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
                ),
                ("max_response_bytes".to_owned(), MAX_RESPONSE_BYTES),
                ("max_redirects".to_owned(), u64::from(MAX_REDIRECTS)),
            ]),
        }
    }
}

/// The target the node's contract confines the request's URL, and every redirect, to:
/// none when it declares the operation without one.
fn confinement(request: &HandlerRequest) -> Result<Option<&HttpTarget>, HandlerError> {
    let url = request.payload.get("url").and_then(Value::as_str);
    match request
        .node
        .reach(&request.operation, url.unwrap_or_default())
    {
        Reach::Anywhere => Ok(None),
        Reach::Within(target) => Ok(Some(target)),
        // The node refuses such a request before it reaches the handler; never send it.
        Reach::Outside(_) => Err(HandlerError::InvalidPayload(format!(
            "the URL lies outside every target node '{}' declares for {}",
            request.node.name, request.operation
        ))),
    }
}

/// `{status_code, headers, body}` of a fetched response.
fn response_payload(fetched: Fetched) -> Payload {
    let body = if is_json(&fetched.headers) {
        serde_json::from_slice(&fetched.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&fetched.body).into_owned()))
    } else {
        Value::String(String::from_utf8_lossy(&fetched.body).into_owned())
    };
    let mut headers = Payload::new();
    for name in fetched.headers.keys() {
        let values: Vec<String> = fetched
            .headers
            .get_all(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect();
        headers.insert(name.as_str().to_owned(), Value::String(values.join(", ")));
    }
    let mut payload = Payload::new();
    payload.insert("status_code".to_owned(), Value::from(fetched.status));
    payload.insert("headers".to_owned(), Value::Object(headers));
    payload.insert("body".to_owned(), body);
    payload
}

/// Whether the response says its body is JSON (`application/json` or `application/*+json`).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get("content-type").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}
