//! Why a request is not a routable envelope.

use super::{ErrorBody, Payload};
use crate::shared::ErrorCode;

/// Why a request is not a routable envelope.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The bytes are not JSON at all.
    #[error("not valid JSON: {0}")]
    Syntax(String),
    /// The JSON has a field of the wrong type, an unknown field, or is not an object.
    #[error("{0}")]
    Shape(String),
    /// Required fields are absent (all of them are listed).
    #[error("missing required fields: {}", .0.join(", "))]
    Missing(Vec<&'static str>),
    /// The message is larger than the host accepts.
    #[error("the envelope is larger than the limit of {0} bytes")]
    TooLarge(usize),
    /// Once parsed, the message would take more memory than the host may hold at once.
    #[error(
        "the envelope would take about {weight} bytes of memory once parsed, more than this host's memory budget of {budget} bytes: send fewer values, or raise --memory-budget"
    )]
    TooHeavy {
        /// What it would take.
        weight: u64,
        /// The host's whole budget.
        budget: u64,
    },
    /// A field is present but its value is not acceptable.
    #[error("{field}: {reason}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// Why it is refused and what is expected instead.
        reason: String,
    },
}

impl EnvelopeError {
    /// The `error` of the response to a request refused for this reason: the same as the
    /// request error taxonomy gives it ([`crate::error::ErrorKind::Envelope`]); the
    /// response fills in the handler type and operation from the request.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: ErrorCode::EnvelopeValidationError,
            message: format!("invalid envelope: {self}"),
            handler_type: None,
            operation: None,
            details: Payload::new(),
        }
    }
}
