//! The ONEX envelope: the one message format between nodes, the bus and the host.
//!
//! This module owns the envelope's shape and its JSON form ([`Envelope`]), how a request
//! is read ([`parse`]) and checked for routing ([`target`]), how a response is built from
//! its request so that every response invariant holds in one place ([`response`]), and
//! where new ids and timestamps come from ([`stamp`]). It does not route: that is
//! [`crate::runtime`].

mod error;
pub mod parse;
pub mod response;
pub mod stamp;
pub mod target;
pub mod weight;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::shared::ErrorCode;

pub use error::EnvelopeError;
pub use response::RequestContext;
pub use stamp::{Clock, IdGenerator, Stamp};
pub use target::{Request, RequestTarget, operation_domain};

/// The envelope format version this host writes.
pub const ENVELOPE_VERSION: &str = "1.0.0";

/// The largest request the host reads, in bytes; larger ones are answered with an error.
pub const MAX_ENVELOPE_BYTES: usize = 8 * 1024 * 1024;

/// A JSON object: the shape of `payload` and `metadata`.
pub type Payload = Map<String, Value>;

/// One ONEX envelope, request or response, with every MVP field.
///
/// Serialising an envelope and parsing the JSON again gives an equal value. Requests from
/// outside go through [`parse::parse_request`], which names every missing field and
/// assigns a correlation id where the request has none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// This envelope's own id.
    pub envelope_id: Uuid,
    /// The envelope format version (borrowed when it is this host's own, which saves
    /// every response an allocation).
    pub envelope_version: Cow<'static, str>,
    /// The id shared by a request and everything done on its behalf.
    pub correlation_id: Uuid,
    /// The `envelope_id` of the envelope that caused this one (a response's request).
    #[serde(default)]
    pub causation_id: Option<Uuid>,
    /// The node that sent the envelope.
    #[serde(default)]
    pub source_node: Option<String>,
    /// The node the envelope is for.
    #[serde(default)]
    pub target_node: Option<String>,
    /// The handler type (`http`, `db`, `local`); for a request, derivable from `operation`.
    #[serde(default)]
    pub handler_type: Option<String>,
    /// The dotted operation, e.g. `http.get`.
    #[serde(default)]
    pub operation: Option<String>,
    /// The operation's input (request) or result (response); an object or null.
    #[serde(default)]
    pub payload: Option<Payload>,
    /// Free-form context carried along; responses keep the request's and add
    /// `original_target_node`.
    #[serde(default)]
    pub metadata: Payload,
    /// When the envelope was made, in UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// Whether this envelope answers a request.
    #[serde(default)]
    pub is_response: bool,
    /// For a response: whether the operation succeeded.
    #[serde(default)]
    pub success: Option<bool>,
    /// For a failed response: what went wrong.
    #[serde(default)]
    pub error: Option<ErrorBody>,
}

impl Envelope {
    /// A new request for `operation` on `target_node`, stamped with a fresh id and time.
    pub fn request(
        stamp: &Stamp,
        target_node: impl Into<String>,
        operation: impl Into<String>,
        payload: Option<Payload>,
    ) -> Envelope {
        Envelope {
            envelope_id: stamp.next_id(),
            envelope_version: Cow::Borrowed(ENVELOPE_VERSION),
            correlation_id: stamp.next_id(),
            causation_id: None,
            source_node: None,
            target_node: Some(target_node.into()),
            handler_type: None,
            operation: Some(operation.into()),
            payload,
            metadata: Payload::new(),
            timestamp: stamp.now(),
            is_response: false,
            success: None,
            error: None,
        }
    }

    /// The envelope as one line of JSON.
    pub fn to_json(&self) -> String {
        String::from_utf8(self.to_json_bytes()).unwrap_or_default()
    }

    /// The envelope as one line of JSON, in bytes.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        // Most envelopes fit: growing from serde_json's default 128 bytes copied twice.
        let mut json = JsonBuffer(Vec::with_capacity(512));
        // An envelope holds only strings, numbers, booleans and JSON values with string
        // keys, written to memory: serde_json cannot fail on it.
        let _ = serde_json::to_writer(&mut json, self);
        json.0
    }
}

/// Where envelopes are serialised: a `Vec` that, on musl, copies short writes itself.
///
/// serde_json writes a response in dozens of short pieces (keys, UUIDs, short values);
/// musl's `memcpy`, which the static build uses, costs tens of cycles per call whatever
/// the length, a large share of the envelope path (docs/PERFORMANCE.md). Short
/// writes are copied eight bytes at a time instead (a fixed-size copy the compiler does
/// inline). glibc's `memcpy` is fast for short copies, so there it is always used.
struct JsonBuffer(Vec<u8>);

/// Writes up to this long are copied inline on musl; longer ones by `memcpy`.
const SHORT_WRITE: usize = 64;

impl std::io::Write for JsonBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if cfg!(target_env = "musl") && bytes.len() <= SHORT_WRITE {
            append_inline(&mut self.0, bytes);
        } else {
            self.0.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    /// serde_json writes through this, and one `write` always takes everything. On musl
    /// the default's retry loop kept the inline copy out of line (on glibc skipping it
    /// cost a little, so it is musl's alone).
    #[cfg(target_env = "musl")]
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write(bytes).map(drop)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Appends `bytes` to `buffer` in fixed-size pieces (eight bytes, then four, two, one),
/// which the compiler copies inline, without calling `memcpy`.
fn append_inline(buffer: &mut Vec<u8>, bytes: &[u8]) {
    buffer.reserve(bytes.len());
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let word: [u8; 8] = word.try_into().unwrap_or_default();
        buffer.extend_from_slice(&word);
    }
    let mut rest = words.remainder();
    if let Some((half, tail)) = rest.split_first_chunk::<4>() {
        buffer.extend_from_slice(half);
        rest = tail;
    }
    if let Some((pair, tail)) = rest.split_first_chunk::<2>() {
        buffer.extend_from_slice(pair);
        rest = tail;
    }
    if let Some(byte) = rest.first() {
        buffer.push(*byte);
    }
}

/// The `error` object of a failed response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The stable error code.
    pub code: ErrorCode,
    /// What went wrong, for a human: never a stack trace, path or secret.
    pub message: String,
    /// The handler type involved, if known.
    #[serde(default)]
    pub handler_type: Option<String>,
    /// The operation involved, if known.
    #[serde(default)]
    pub operation: Option<String>,
    /// Code-specific fields such as `available_handlers` or `available_nodes`.
    #[serde(flatten)]
    pub details: Payload,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(stamp: &Stamp) -> Envelope {
        let mut envelope = Envelope::request(
            stamp,
            "echo_node",
            "local.echo",
            Some(
                json!({"n": 1, "nested": {"s": "x"}})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        );
        envelope.source_node = Some("caller".into());
        envelope.metadata.insert("trace".into(), json!("abc"));
        envelope
    }

    #[test]
    fn inline_appends_copy_every_length_exactly() {
        let source: Vec<u8> = (1..=SHORT_WRITE as u8 + 9).collect();
        for length in 0..=source.len() {
            let mut buffer = b"head".to_vec();
            append_inline(&mut buffer, &source[..length]);
            assert_eq!(&buffer[..4], b"head");
            assert_eq!(&buffer[4..], &source[..length]);
        }
    }

    #[test]
    fn request_survives_a_json_round_trip() {
        let stamp = Stamp::deterministic(7);
        let envelope = sample(&stamp);
        let parsed: Envelope = serde_json::from_str(&envelope.to_json()).unwrap();
        assert_eq!(parsed, envelope);
    }

    #[test]
    fn error_response_survives_a_json_round_trip() {
        let stamp = Stamp::deterministic(7);
        let mut envelope = sample(&stamp);
        envelope.is_response = true;
        envelope.success = Some(false);
        envelope.payload = None;
        let mut details = Payload::new();
        details.insert("available_nodes".into(), json!(["a", "b"]));
        envelope.error = Some(ErrorBody {
            code: ErrorCode::NodeNotFound,
            message: "node 'x' is not hosted by this runtime".into(),
            handler_type: Some("local".into()),
            operation: Some("local.echo".into()),
            details,
        });
        let parsed: Envelope = serde_json::from_str(&envelope.to_json()).unwrap();
        assert_eq!(parsed, envelope);
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_subsecond_precision() {
        let stamp = Stamp::deterministic(1);
        let mut envelope = sample(&stamp);
        envelope.timestamp = time::macros::datetime!(2024-01-01 12:30:00.123456789 UTC);
        let json: Value = serde_json::from_str(&envelope.to_json()).unwrap();
        assert_eq!(json["timestamp"], "2024-01-01T12:30:00.123456789Z");
        let parsed: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(parsed.timestamp, envelope.timestamp);
    }
}
