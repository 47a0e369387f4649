//! The checks on a request's fields once serde has read them: no error on a request,
//! routing step 1, the envelope version, and the values serde cannot check by type alone
//! (`payload` and `metadata` objects or null, a `timestamp` RFC 3339 can write back).

use serde_json::Value;
use time::OffsetDateTime;

use super::super::target::Request;
use super::super::{Envelope, EnvelopeError, Payload, Stamp};

/// The checks whose failures come first: no error on a request, routing step 1 (every
/// missing field named, `envelope_id` among them), then the envelope version.
pub(super) fn check_fields(
    envelope: Box<Envelope>,
    missing_id: bool,
    has_error: bool,
) -> Result<Request, (Box<Envelope>, EnvelopeError)> {
    if has_error && !envelope.is_response {
        let error = EnvelopeError::Invalid {
            field: "error",
            reason: "only responses carry an error".into(),
        };
        return Err((envelope, error));
    }
    let request = match (missing_id, Request::check(envelope)) {
        (false, checked) => checked?,
        (true, Err((envelope, EnvelopeError::Missing(mut fields)))) => {
            fields.insert(0, "envelope_id");
            return Err((envelope, EnvelopeError::Missing(fields)));
        }
        (true, Err((envelope, _))) => {
            return Err((envelope, EnvelopeError::Missing(vec!["envelope_id"])));
        }
        (true, Ok(request)) => {
            let envelope = request.into_envelope();
            return Err((envelope, EnvelopeError::Missing(vec!["envelope_id"])));
        }
    };
    if request.envelope_version.split('.').next() == Some("1") {
        return Ok(request);
    }
    let error = EnvelopeError::Invalid {
        field: "envelope_version",
        reason: format!(
            "'{}' is not supported; this host reads envelope version 1.x",
            request.envelope_version
        ),
    };
    Err((request.into_envelope(), error))
}

/// `timestamp` in UTC (none is now), or why it cannot be: RFC 3339 allows the years 0000
/// to 9999 with any offset, so `9999-12-31T23:59:59-01:00` is in the year 10000 in UTC,
/// which `time` cannot represent (`to_offset` panics) and `0000-01-01T00:00:00+01:00` in
/// the year -1, which RFC 3339 cannot write back.
pub(super) fn utc_or_now(
    timestamp: Option<OffsetDateTime>,
    stamp: &Stamp,
) -> (OffsetDateTime, Option<EnvelopeError>) {
    let Some(timestamp) = timestamp else {
        return (stamp.now(), None);
    };
    match timestamp.checked_to_offset(time::UtcOffset::UTC) {
        Some(utc) if (0..=9999).contains(&utc.year()) => (utc, None),
        _ => {
            let error = EnvelopeError::Invalid {
                field: "timestamp",
                reason: "must lie between the years 0000 and 9999 in UTC".into(),
            };
            (stamp.now(), Some(error))
        }
    }
}

/// `value` as an object (null is none), or why it is not one.
pub(super) fn object_or_null(
    field: &'static str,
    value: Option<Value>,
) -> (Option<Payload>, Option<EnvelopeError>) {
    match value {
        None | Some(Value::Null) => (None, None),
        Some(Value::Object(map)) => (Some(map), None),
        Some(other) => {
            let error = EnvelopeError::Invalid {
                field,
                reason: format!("must be a JSON object or null, not {}", json_kind(&other)),
            };
            (None, Some(error))
        }
    }
}

pub(super) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
