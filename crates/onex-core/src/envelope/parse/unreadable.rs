//! The slow path for a request serde could not read: name where it went wrong (read
//! again, tracking the path), and salvage whatever identity it has (its correlation id
//! above all) so that its error response can still be traced.

use serde_json::Value;
use uuid::Uuid;

use super::super::target::handler_type_or_domain;
use super::super::{EnvelopeError, Payload, RequestContext, Stamp};
use super::checks::json_kind;
use super::{Rejected, WireRequest};

/// The slow path for a request serde could not read: say where, and salvage its identity.
pub(super) fn reject_unreadable(bytes: &[u8], stamp: &Stamp) -> Rejected {
    let salvaged = serde_json::from_slice::<Value>(bytes);
    let error = match &salvaged {
        Err(error) => EnvelopeError::Syntax(error.to_string()),
        Ok(Value::Object(_)) => {
            // Read again, tracking the path, only to name the field the error is in.
            let mut reader = serde_json::Deserializer::from_slice(bytes);
            match serde_path_to_error::deserialize::<_, WireRequest>(&mut reader) {
                Err(error) if error.path().iter().next().is_some() => {
                    EnvelopeError::Shape(format!("field `{}`: {}", error.path(), error.inner()))
                }
                Err(error) => EnvelopeError::Shape(error.inner().to_string()),
                Ok(_) => EnvelopeError::Shape("the envelope could not be read".into()),
            }
        }
        Ok(other) => EnvelopeError::Shape(format!(
            "expected an envelope (a JSON object), not {}",
            json_kind(other)
        )),
    };
    let salvaged = salvaged.ok();
    let field = |name: &str| {
        salvaged
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
    };
    let uuid = |name: &str| field(name).and_then(|s| Uuid::parse_str(s).ok());
    let text = |name: &str| field(name).map(str::to_owned);
    let operation = text("operation");
    let context = RequestContext {
        envelope_id: uuid("envelope_id"),
        correlation_id: uuid("correlation_id").unwrap_or_else(|| stamp.next_id()),
        source_node: text("source_node"),
        target_node: text("target_node"),
        handler_type: handler_type_or_domain(text("handler_type"), operation.as_deref()),
        operation,
        metadata: Payload::new(),
    };
    Rejected { context, error }
}
