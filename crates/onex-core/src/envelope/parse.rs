//! Reading request envelopes from bytes.
//!
//! Every missing required field is named at once; a missing correlation id is assigned.
//! A request that fails keeps whatever identity could be read from it (its correlation
//! id above all) so that its error response can still be traced.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::target::Request;
use super::{ENVELOPE_VERSION, Envelope, EnvelopeError, MAX_ENVELOPE_BYTES, RequestContext, Stamp};

mod checks;
mod unreadable;
use checks::{check_fields, object_or_null, utc_or_now};
use unreadable::reject_unreadable;

/// A request as it arrives: every field optional, so that all missing ones can be named.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an envelope (a JSON object)")]
struct WireRequest {
    envelope_id: Option<Uuid>,
    envelope_version: Option<String>,
    correlation_id: Option<Uuid>,
    causation_id: Option<Uuid>,
    source_node: Option<String>,
    target_node: Option<String>,
    handler_type: Option<String>,
    operation: Option<String>,
    payload: Option<Value>,
    metadata: Option<Value>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    timestamp: Option<OffsetDateTime>,
    is_response: Option<bool>,
    success: Option<bool>,
    /// Only its presence matters (requests must not carry one): skipped, not built.
    error: Option<IgnoredAny>,
}

/// A request that could not be accepted, with what is known of it for the error response.
#[derive(Debug)]
pub struct Rejected {
    /// The request's identity, as far as it could be read.
    pub context: RequestContext,
    /// Why it was refused.
    pub error: EnvelopeError,
}

impl Rejected {
    /// The error response to the refused request.
    pub fn respond(self, stamp: &Stamp) -> Envelope {
        self.context.respond(Err(self.error.body()), stamp)
    }
}

/// Reads one request envelope from JSON and checks it is routable.
///
/// A missing `correlation_id` is assigned, a missing `timestamp` is now, a missing
/// `envelope_version` is the current one, a missing `handler_type` is the operation's
/// domain (so that nothing later derives it again). Anything else wrong is a [`Rejected`]
/// that still carries the request's correlation id (or a fresh one if none could be read).
pub fn parse_request(bytes: &[u8], stamp: &Stamp) -> Result<Request, Box<Rejected>> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        let context = RequestContext {
            correlation_id: stamp.next_id(),
            ..RequestContext::default()
        };
        let error = EnvelopeError::TooLarge(MAX_ENVELOPE_BYTES);
        return Err(Box::new(Rejected { context, error }));
    }
    // serde would read a JSON array as a struct's fields in order: only objects are envelopes.
    let starts_as_object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let wire: WireRequest = match serde_json::from_slice(bytes) {
        Ok(wire) if starts_as_object => wire,
        _ => return Err(Box::new(reject_unreadable(bytes, stamp))),
    };
    let missing_id = wire.envelope_id.is_none();
    let (payload, payload_error) = object_or_null("payload", wire.payload);
    let (metadata, metadata_error) = object_or_null("metadata", wire.metadata);
    let (timestamp, timestamp_error) = utc_or_now(wire.timestamp, stamp);
    let envelope = Box::new(Envelope {
        envelope_id: wire.envelope_id.unwrap_or_else(Uuid::nil),
        envelope_version: wire
            .envelope_version
            .map_or(Cow::Borrowed(ENVELOPE_VERSION), Cow::Owned),
        correlation_id: wire.correlation_id.unwrap_or_else(|| stamp.next_id()),
        causation_id: wire.causation_id,
        source_node: wire.source_node,
        target_node: wire.target_node,
        handler_type: wire.handler_type,
        operation: wire.operation,
        payload,
        metadata: metadata.unwrap_or_default(),
        timestamp,
        is_response: wire.is_response.unwrap_or(false),
        success: wire.success,
        error: None,
    });
    let checked = check_fields(envelope, missing_id, wire.error.is_some()).and_then(|request| {
        match payload_error.or(metadata_error).or(timestamp_error) {
            None => Ok(request),
            Some(error) => Err((request.into_envelope(), error)),
        }
    });
    checked.map_err(|(envelope, error)| {
        let mut context = RequestContext::split(envelope).0;
        if missing_id {
            context.envelope_id = None;
        }
        Box::new(Rejected { context, error })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Envelope, Box<Rejected>> {
        parse_request(json.as_bytes(), &Stamp::deterministic(100))
            .map(|request| *request.into_envelope())
    }

    const ID: &str = "00000000-0000-0000-0000-00000000000a";
    const CORR: &str = "00000000-0000-0000-0000-0000000000cc";

    #[test]
    fn minimal_request_gets_defaults() {
        let json =
            format!(r#"{{"envelope_id":"{ID}","target_node":"n","operation":"local.echo"}}"#);
        let envelope = parse(&json).unwrap();
        assert_eq!(envelope.correlation_id, Uuid::from_u128(101));
        assert_eq!(envelope.envelope_version, ENVELOPE_VERSION);
        assert_eq!(envelope.payload, None);
        assert!(envelope.metadata.is_empty());
        assert_eq!(envelope.handler_type.as_deref(), Some("local"));
        let target = envelope.target().unwrap();
        assert_eq!(
            (target.node, target.handler_type, target.operation),
            ("n", "local", "local.echo")
        );
    }

    #[test]
    fn a_malformed_operation_gets_no_derived_handler_type() {
        let json = format!(r#"{{"envelope_id":"{ID}","target_node":"n","operation":"Echo"}}"#);
        let rejected = parse(&json).unwrap_err();
        assert_eq!(rejected.context.handler_type, None);
    }

    #[test]
    fn only_responses_may_carry_an_error_and_null_is_none() {
        let with = |error: &str| {
            format!(
                r#"{{"envelope_id":"{ID}","target_node":"n","operation":"local.echo","error":{error}}}"#
            )
        };
        for error in [r#"{"code":"X","message":"m"}"#, "[1]", r#""text""#] {
            let rejected = parse(&with(error)).unwrap_err();
            assert!(
                matches!(
                    rejected.error,
                    EnvelopeError::Invalid { field: "error", .. }
                ),
                "{error}: {:?}",
                rejected.error
            );
        }
        assert!(parse(&with("null")).is_ok());
    }

    #[test]
    fn every_missing_required_field_is_named() {
        let rejected = parse("{}").unwrap_err();
        assert_eq!(
            rejected.error,
            EnvelopeError::Missing(vec!["envelope_id", "target_node", "operation"])
        );
        assert_eq!(rejected.context.envelope_id, None);
    }

    #[test]
    fn garbage_gets_a_fresh_correlation_id() {
        let rejected = parse("not json").unwrap_err();
        assert!(matches!(rejected.error, EnvelopeError::Syntax(_)));
        assert_eq!(rejected.context.correlation_id, Uuid::from_u128(101));
    }

    #[test]
    fn a_bad_field_names_the_field_and_keeps_the_correlation_id() {
        let json = format!(
            r#"{{"envelope_id":5,"correlation_id":"{CORR}","target_node":"n","operation":"local.echo"}}"#
        );
        let rejected = parse(&json).unwrap_err();
        let message = rejected.error.to_string();
        assert!(
            message.starts_with("field `envelope_id`: invalid type"),
            "{message}"
        );
        assert_eq!(rejected.context.correlation_id.to_string(), CORR);
        assert_eq!(rejected.context.handler_type.as_deref(), Some("local"));
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let json = format!(r#"{{"envelope_id":"{ID}","target_node":"n","opration":"local.echo"}}"#);
        let message = parse(&json).unwrap_err().error.to_string();
        assert!(message.contains("unknown field `opration`"), "{message}");
    }

    #[test]
    fn non_object_input_says_an_envelope_is_expected() {
        for input in ["[1, 2]", "5", "\"x\"", "null"] {
            let message = parse(input).unwrap_err().error.to_string();
            assert!(
                message.starts_with("expected an envelope (a JSON object), not"),
                "{message}"
            );
        }
    }

    #[test]
    fn handler_type_must_agree_with_the_operation() {
        let json = format!(
            r#"{{"envelope_id":"{ID}","target_node":"n","operation":"local.echo","handler_type":"http"}}"#
        );
        let error = parse(&json).unwrap_err().error;
        assert!(matches!(
            error,
            EnvelopeError::Invalid {
                field: "handler_type",
                ..
            }
        ));
    }

    #[test]
    fn payload_must_be_an_object_or_null() {
        let json = format!(
            r#"{{"envelope_id":"{ID}","target_node":"n","operation":"local.echo","payload":[1]}}"#
        );
        let error = parse(&json).unwrap_err().error;
        assert_eq!(
            error.to_string(),
            "payload: must be a JSON object or null, not an array"
        );
    }

    #[test]
    fn responses_cannot_be_sent_as_requests() {
        let json = format!(
            r#"{{"envelope_id":"{ID}","target_node":"n","operation":"local.echo","is_response":true}}"#
        );
        assert!(matches!(
            parse(&json).unwrap_err().error,
            EnvelopeError::Invalid {
                field: "is_response",
                ..
            }
        ));
    }

    #[test]
    fn timestamps_beyond_the_years_rfc_3339_writes_are_refused() {
        for timestamp in ["9999-12-31T23:59:59-01:00", "0000-01-01T00:00:00+01:00"] {
            let json = format!(
                r#"{{"envelope_id":"{ID}","target_node":"n","operation":"local.echo","timestamp":"{timestamp}"}}"#
            );
            let rejected = parse(&json).unwrap_err();
            assert!(
                matches!(
                    rejected.error,
                    EnvelopeError::Invalid {
                        field: "timestamp",
                        ..
                    }
                ),
                "{timestamp}: {:?}",
                rejected.error
            );
        }
        let edge = format!(
            r#"{{"envelope_id":"{ID}","target_node":"n","operation":"local.echo","timestamp":"9999-12-31T23:59:59+00:00"}}"#
        );
        assert!(parse(&edge).is_ok());
    }

    #[test]
    fn payload_numbers_keep_their_exact_value_through_a_round_trip() {
        let json = format!(
            r#"{{"envelope_id":"{ID}","target_node":"n","operation":"local.echo","payload":{{"a":1.5e200,"b":0.1,"c":-2.5e-300,"d":123456.789}}}}"#
        );
        let envelope = parse(&json).unwrap();
        let payload = envelope.payload.as_ref().unwrap();
        for (key, text) in [
            ("a", "1.5e200"),
            ("b", "0.1"),
            ("c", "-2.5e-300"),
            ("d", "123456.789"),
        ] {
            assert_eq!(
                payload[key].as_f64(),
                text.parse::<f64>().ok(),
                "{key}: {text}"
            );
        }
        let again = parse(&envelope.to_json()).unwrap();
        assert_eq!(again, envelope);
    }

    #[test]
    fn timestamps_with_offsets_are_kept_as_utc() {
        let json = format!(
            r#"{{"envelope_id":"{ID}","target_node":"n","operation":"local.echo","timestamp":"2024-01-01T02:00:00+02:00"}}"#
        );
        let envelope = parse(&json).unwrap();
        assert_eq!(
            envelope.timestamp,
            time::macros::datetime!(2024-01-01 0:00 UTC)
        );
        assert!(envelope.timestamp.offset().is_utc());
    }

    #[test]
    fn unsupported_envelope_versions_are_refused() {
        let json = format!(
            r#"{{"envelope_id":"{ID}","target_node":"n","operation":"local.echo","envelope_version":"2.0.0"}}"#
        );
        assert!(matches!(
            parse(&json).unwrap_err().error,
            EnvelopeError::Invalid {
                field: "envelope_version",
                ..
            }
        ));
    }
}
