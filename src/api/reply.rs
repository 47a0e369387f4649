//! The API's responses: their body type, which holds the request's place and its charge
//! to the memory budget until hyper has written it, and the builders of the JSON and
//! error answers every route uses.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{ALLOW, CONNECTION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};

use super::envelopes::Taken;
use crate::budget::Charge;

/// A response body, and the request's place among those taken in, kept until the body
/// has been handed to hyper.
pub(super) struct Reply {
    pub(super) body: Option<Bytes>,
    pub(super) _taken: Option<Taken>,
}

impl Body for Reply {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.body.take().map(|bytes| Ok(Frame::data(bytes))))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.body.as_ref().map_or(0, |bytes| bytes.len() as u64))
    }
}

/// A response's bytes and the request's charge to the memory budget: hyper queues the
/// bytes and drops them once written, so the charge lasts until the response has left.
struct Charged {
    bytes: Bytes,
    _charge: Charge,
}

impl AsRef<[u8]> for Charged {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// `bytes`, holding `charge` until the last of them has been written.
pub(super) fn charged(bytes: Bytes, charge: Charge) -> Bytes {
    if charge.bytes() == 0 {
        return bytes;
    }
    Bytes::from_owner(Charged {
        bytes,
        _charge: charge,
    })
}

pub(super) fn method_not_allowed(allow: &'static str) -> Response<Reply> {
    let mut response = json(
        StatusCode::METHOD_NOT_ALLOWED,
        &serde_json::json!({"error": "method not allowed"}),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

/// 503 with `Retry-After`: nothing ran; the client should try again shortly.
pub(super) fn busy(reason: &str) -> Response<Reply> {
    let mut response = json(
        StatusCode::SERVICE_UNAVAILABLE,
        &serde_json::json!({"error": format!("{reason}: retry after 1 s")}),
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// `response`, closing the connection after it.
pub(super) fn closing(mut response: Response<Reply>) -> Response<Reply> {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

pub(super) fn reply(status: StatusCode, bytes: Bytes) -> Response<Reply> {
    let mut response = Response::new(Reply {
        body: Some(bytes).filter(|bytes| !bytes.is_empty()),
        _taken: None,
    });
    *response.status_mut() = status;
    response
}

pub(super) fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response<Reply> {
    json_sized(status, body, false)
}

/// `json`, for a `large` body: measured first, then written into a buffer of its size.
/// A buffer grown while writing is copied at every doubling and ends up to twice the
/// body's size; measuring costs a second pass, worth it only for a large body.
pub(super) fn json_sized<T: serde::Serialize>(
    status: StatusCode,
    body: &T,
    large: bool,
) -> Response<Reply> {
    let mut bytes = Vec::new();
    if large {
        let mut length = Length(0);
        if serde_json::to_writer(&mut length, body).is_ok() {
            bytes.reserve_exact(length.0);
        }
    }
    if serde_json::to_writer(&mut bytes, body).is_err() {
        bytes.clear();
    }
    let mut response = reply(status, Bytes::from(bytes));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Counts the bytes written to it.
struct Length(usize);

impl std::io::Write for Length {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
