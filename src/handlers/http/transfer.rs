//! One HTTP call: its redirects, its deadline, its body limit, and errors a caller can act on.
//!
//! isahc's own redirect following cannot veto a hop, so redirects are followed here: each
//! `Location` is resolved against the current URL and must be http(s) and, when the node
//! declares a `target`, lie under it; when a redirect changes origin, only the caller's
//! headers on a short safe list go on (any other may carry a credential: `Authorization`,
//! `Cookie`, but also `X-Api-Key` and its kin).
//!
//! Which method and body go on, as browsers do (the Fetch standard, RFC 9110 15.4): a 303
//! (See Other) is answered with a `GET` of the new location, without body, whatever the
//! method was (the server points at a result to read); a 301 or 302 turns a `POST` into a
//! `GET` without body (what clients have always done) and keeps any other method and its
//! body; a 307 or 308 repeats the request as it was, method and body. So a `PUT`, `PATCH`
//! or `DELETE` is never turned into a `GET` except by a 303. Messages name the origin
//! (`scheme://host:port`) only: never a path, query or credentials, which may hold secrets.
//!
//! Failures of the upstream are [`HandlerError::Dependency`] with the [`Fault`] only this
//! module knows: no connection made (a refused connection, a name that did not resolve,
//! a timeout before connecting) is `NotSent`; a timeout or a broken connection after
//! that is `Lost`.

use std::time::{Duration, Instant};

use futures_lite::AsyncReadExt;
use isahc::config::{Configurable, ExpectContinue};
use isahc::error::ErrorKind;
use isahc::http::{HeaderMap, Method, header};
use isahc::{AsyncBody, HttpClient, Request, Response};
use url::Url;

use super::call::Call;
use super::{MAX_REDIRECTS, MAX_RESPONSE_BYTES};
use crate::budget::Charge;
use crate::contract::HttpTarget;
use crate::envelope::weight::Weigher;
use crate::handler::{Fault, HandlerError};

/// A final (non-redirect) response, its body read.
#[derive(Debug)]
pub(super) struct Fetched {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) body: Vec<u8>,
}

/// The caller's headers a redirect to another origin keeps; every other is dropped.
const SAFE_ACROSS_ORIGINS: [&str; 4] = ["accept", "accept-language", "content-type", "user-agent"];

/// Sends `call`, following redirects within `target`, all within `timeout`; the final
/// response's body is charged to `charge` as it arrives.
pub(super) async fn send(
    client: &HttpClient,
    mut call: Call,
    target: Option<&HttpTarget>,
    charge: &Charge,
    timeout: Duration,
) -> Result<Fetched, HandlerError> {
    let deadline = Instant::now() + timeout;
    let mut redirects = 0;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(timed_out(&call.url, timeout, Fault::Lost));
        }
        let mut response = client
            .send_async(request(&call, remaining)?)
            .await
            .map_err(|error| match error.kind() {
                // Without a remote address no connection was made: nothing was sent.
                ErrorKind::Timeout if error.remote_addr().is_none() => {
                    timed_out(&call.url, timeout, Fault::NotSent)
                }
                ErrorKind::Timeout => timed_out(&call.url, timeout, Fault::Lost),
                _ => failed(&call.url, error),
            })?;
        let Some(location) = redirect_location(&response) else {
            let body = read_body(&mut response, &call.url, charge, timeout).await?;
            let (parts, _) = response.into_parts();
            return Ok(Fetched {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            });
        };
        redirects += 1;
        if redirects > MAX_REDIRECTS {
            return Err(HandlerError::execution(format!(
                "{} redirected more than {MAX_REDIRECTS} times",
                origin(&call.url)
            )));
        }
        let next = call.url.join(&location).map_err(|_| {
            HandlerError::execution(format!(
                "{} redirected to an invalid location",
                origin(&call.url)
            ))
        })?;
        let allowed = matches!(next.scheme(), "http" | "https")
            && target.is_none_or(|target| target.admits_url(&next));
        if !allowed {
            return Err(HandlerError::execution(format!(
                "{} redirected outside the node's target; the redirect was not followed",
                origin(&call.url)
            )));
        }
        if next.origin() != call.url.origin() {
            call.headers.retain(|(name, _)| {
                SAFE_ACROSS_ORIGINS
                    .iter()
                    .any(|safe| name.eq_ignore_ascii_case(safe))
            });
        }
        if turns_into_get(response.status().as_u16(), &call.method) {
            call.method = Method::GET;
            call.body = None;
            call.headers
                .retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
        }
        call.url = next;
    }
}

/// Whether a redirect of `status` is followed with a `GET` without body, not `method`
/// again (see the module's docs).
fn turns_into_get(status: u16, method: &Method) -> bool {
    match status {
        303 => method != Method::GET && method != Method::HEAD,
        301 | 302 => method == Method::POST,
        _ => false,
    }
}

fn request(call: &Call, remaining: Duration) -> Result<Request<AsyncBody>, HandlerError> {
    let mut builder = Request::builder()
        .method(call.method.clone())
        .uri(call.url.as_str())
        .timeout(remaining)
        // curl would otherwise wait a second for "100 Continue" before a large body.
        .expect_continue(ExpectContinue::disabled());
    for (name, value) in &call.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let body = call
        .body
        .clone()
        .map_or_else(AsyncBody::empty, AsyncBody::from);
    builder.body(body).map_err(|error| {
        HandlerError::InvalidPayload(format!("the request cannot be built: {error}"))
    })
}

/// The `Location` of a redirect response (301, 302, 303, 307, 308), if it is one.
fn redirect_location(response: &Response<AsyncBody>) -> Option<String> {
    if !matches!(response.status().as_u16(), 301..=303 | 307 | 308) {
        return None;
    }
    let location = response.headers().get(header::LOCATION)?;
    Some(String::from_utf8_lossy(location.as_bytes()).into_owned())
}

/// Reads the body, refusing one over the limit without buffering it, and charging it
/// (with what it takes once parsed) to `charge` as it arrives.
async fn read_body(
    response: &mut Response<AsyncBody>,
    url: &Url,
    charge: &Charge,
    timeout: Duration,
) -> Result<Vec<u8>, HandlerError> {
    let too_large = || {
        HandlerError::execution(format!(
            "the response from {} is larger than the limit of {MAX_RESPONSE_BYTES} bytes",
            origin(url)
        ))
    };
    let declared = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_RESPONSE_BYTES) {
        return Err(too_large());
    }
    // Sized to the declared length so a small body is read without regrowing; at most
    // 64 KiB up front, so a length the server never sends reserves nothing much.
    let expected = declared.map_or(0, |length| length.min(64 * 1024));
    let mut body = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    let (mut weigher, mut charged, mut piece) = (Weigher::default(), 0, [0u8; 16 * 1024]);
    loop {
        let read = match response.body_mut().read(&mut piece).await {
            Ok(0) => return Ok(body),
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                return Err(timed_out(url, timeout, Fault::Lost));
            }
            Err(error) => {
                return Err(HandlerError::dependency(
                    Fault::Lost,
                    format!("reading the response from {} failed", origin(url)),
                    Some(Box::new(error)),
                ));
            }
        };
        if (body.len() + read) as u64 > MAX_RESPONSE_BYTES {
            return Err(too_large());
        }
        weigher.feed(&piece[..read]);
        if !charge.try_grow(weigher.weight() - charged) {
            return Err(HandlerError::execution(format!(
                "the response from {} was not read: the host holds as much as its memory budget allows; retry",
                origin(url)
            )));
        }
        charged = weigher.weight();
        body.extend_from_slice(&piece[..read]);
    }
}

/// `scheme://host:port` of `url`: safe to show, unlike its path, query or userinfo.
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn timed_out(url: &Url, timeout: Duration, fault: Fault) -> HandlerError {
    let message = format!(
        "the request to {} timed out after {} ms",
        origin(url),
        timeout.as_millis()
    );
    HandlerError::dependency(fault, message, None)
}

fn failed(url: &Url, error: isahc::Error) -> HandlerError {
    let origin = origin(url);
    let fault = match (transfer_failure(&error), error.kind()) {
        (Some(_), _) => Some(Fault::Lost),
        (None, ErrorKind::ConnectionFailed | ErrorKind::NameResolution) => Some(Fault::NotSent),
        _ => None,
    };
    let message = match (transfer_failure(&error), error.kind()) {
        (Some(what), _) => format!("{origin} {what}"),
        (None, ErrorKind::ConnectionFailed) => {
            format!(
                "could not connect to {origin}: nothing is listening, or the TLS handshake failed"
            )
        }
        (None, ErrorKind::NameResolution) => format!("could not resolve the host of {origin}"),
        (None, ErrorKind::BadServerCertificate) => {
            format!("the TLS certificate of {origin} could not be validated")
        }
        (None, ErrorKind::TlsEngine | ErrorKind::BadClientCertificate) => {
            format!("TLS with {origin} failed")
        }
        (None, ErrorKind::ProtocolViolation) => {
            format!("{origin} answered with something that is not HTTP")
        }
        (None, _) => format!("the request to {origin} failed: {error}"),
    };
    match fault {
        Some(fault) => HandlerError::dependency(fault, message, Some(Box::new(error))),
        None => HandlerError::Execution {
            message,
            source: Some(Box::new(error)),
        },
    }
}

/// What went wrong in the middle of a transfer, by libcurl's code: isahc reports these
/// as an unknown error.
fn transfer_failure(error: &isahc::Error) -> Option<&'static str> {
    let curl = std::error::Error::source(error)?.downcast_ref::<curl::Error>()?;
    Some(if curl.is_recv_error() {
        "broke off its response: the connection was reset, or the response headers were over 300 KiB in all (too many or too large)"
    } else if curl.is_got_nothing() {
        "closed the connection without answering"
    } else if curl.is_send_error() {
        "stopped taking the request before it was sent"
    } else if curl.is_partial_file() {
        "sent a response shorter than its declared length"
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_see_other_turns_writes_other_than_post_into_a_get() {
        for method in [Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(turns_into_get(303, &method), "{method}");
            for keeps in [301, 302, 307, 308] {
                assert!(!turns_into_get(keeps, &method), "{keeps} {method}");
            }
        }
        for status in [301, 302, 303] {
            assert!(turns_into_get(status, &Method::POST), "{status}");
        }
        for status in [307, 308] {
            assert!(!turns_into_get(status, &Method::POST), "{status}");
        }
        assert!(!turns_into_get(303, &Method::GET));
    }

    #[test]
    fn client_errors_become_messages_that_name_only_the_origin() {
        let url = Url::parse("https://user:pw@api.example.test:8443/private?token=t").unwrap();
        for (kind, expected) in [
            (
                ErrorKind::NameResolution,
                "could not resolve the host of https://api.example.test:8443",
            ),
            (
                ErrorKind::BadServerCertificate,
                "the TLS certificate of https://api.example.test:8443 could not be validated",
            ),
            (
                ErrorKind::TlsEngine,
                "TLS with https://api.example.test:8443 failed",
            ),
            (
                ErrorKind::ProtocolViolation,
                "https://api.example.test:8443 answered with something that is not HTTP",
            ),
        ] {
            assert_eq!(failed(&url, isahc::Error::from(kind)).to_string(), expected);
        }
    }
}
