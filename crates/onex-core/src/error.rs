//! The errors of the host, split by who sees them.
//!
//! - A [`RequestError`] is about one request, and its caller sees it: it becomes the
//!   `error` of the response envelope ([`RequestError::to_body`]), with the stable
//!   [`ErrorCode`] this module alone assigns.
//! - A [`HostError`] is about the host process (a contract that does not load, a bus that
//!   cannot be opened, its own input or output failing): the operator sees it on standard
//!   error, and the process exits with status 1.
//!
//! Each module owns the errors of its own operations ([`crate::contract::ContractError`],
//! [`HandlerError`], [`crate::bus::BusError`], [`EnvelopeError`]); this one wraps them.

mod host;

use std::fmt;

use uuid::Uuid;

use crate::envelope::{EnvelopeError, ErrorBody, Payload, RequestContext};
use crate::handler::HandlerError;
pub use crate::shared::ErrorCode;
use crate::shared::HandlerType;
pub use host::HostError;

/// What went wrong with a request, without the request it went wrong for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request envelope is malformed.
    #[error("invalid envelope")]
    Envelope(#[source] EnvelopeError),
    /// The target node is not hosted here.
    #[error("node '{node}' is not hosted by this runtime")]
    NodeNotFound {
        /// The requested node slug.
        node: String,
        /// The slugs this host does serve.
        available: Vec<String>,
    },
    /// No handler of the requested type is registered.
    #[error("no handler registered for type '{handler_type}'")]
    HandlerNotFound {
        /// The requested handler type, as the request spelled it.
        handler_type: String,
        /// The handler types this host registered.
        available: Vec<HandlerType>,
    },
    /// The node's contract does not declare the operation, or its target excludes the request.
    #[error("node '{node}' does not allow {reason}")]
    NotDeclared {
        /// The node whose contract refused the request.
        node: String,
        /// What exactly is not allowed, e.g. `operation 'http.post'`.
        reason: String,
        /// The operations the node declares for this handler type.
        available: Vec<String>,
    },
    /// A handler refused or failed the request.
    #[error("handler '{handler_type}'")]
    Handler {
        /// The handler that failed.
        handler_type: HandlerType,
        /// What it reported.
        #[source]
        source: HandlerError,
    },
    /// The shutdown grace ran out before the request was finished (or started).
    #[error("{}", if *started {
        "the host shut down before this request finished; it may or may not have taken effect"
    } else {
        "the host shut down before this request started; it did not run"
    })]
    ShutDown {
        /// Whether a handler had started on it.
        started: bool,
    },
}

impl ErrorKind {
    /// The stable code for this kind of error: the only such mapping in the crate.
    pub fn code(&self) -> ErrorCode {
        match self {
            ErrorKind::Envelope(_) => ErrorCode::EnvelopeValidationError,
            ErrorKind::NodeNotFound { .. } => ErrorCode::NodeNotFound,
            ErrorKind::HandlerNotFound { .. } => ErrorCode::HandlerNotFound,
            ErrorKind::NotDeclared { .. } => ErrorCode::InvalidOperationError,
            ErrorKind::Handler { source, .. } => match source {
                HandlerError::UnsupportedOperation { .. } => ErrorCode::InvalidOperationError,
                HandlerError::InvalidPayload(_) => ErrorCode::EnvelopeValidationError,
                HandlerError::Execution { .. }
                | HandlerError::Dependency { .. }
                | HandlerError::Statement { .. } => ErrorCode::HandlerExecutionError,
            },
            ErrorKind::ShutDown { .. } => ErrorCode::HandlerExecutionError,
        }
    }

    /// The code-specific field of an error envelope, e.g. `available_nodes`, if any.
    pub fn detail(&self) -> Option<(&'static str, serde_json::Value)> {
        let names = |names: Vec<String>| names.into_iter().map(serde_json::Value::String).collect();
        match self {
            ErrorKind::NodeNotFound { available, .. } => {
                Some(("available_nodes", names(available.clone())))
            }
            ErrorKind::HandlerNotFound { available, .. } => Some((
                "available_handlers",
                names(available.iter().map(|t| t.as_str().to_owned()).collect()),
            )),
            ErrorKind::NotDeclared { available, .. } => {
                Some(("available_operations", names(available.clone())))
            }
            ErrorKind::Handler {
                source: HandlerError::UnsupportedOperation { available, .. },
                ..
            } => Some((
                "available_operations",
                names(available.iter().map(|op| (*op).to_owned()).collect()),
            )),
            ErrorKind::Handler {
                source: HandlerError::Statement { index, .. },
                ..
            } => Some(("statement_index", serde_json::Value::from(*index))),
            _ => None,
        }
    }
}

/// The request an error belongs to, as far as it is known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorContext {
    /// The request's correlation id (assigned when the request had none).
    pub correlation_id: Option<Uuid>,
    /// The handler type the request asked for.
    pub handler_type: Option<String>,
    /// The operation the request asked for.
    pub operation: Option<String>,
}

impl ErrorContext {
    /// The context an error about the request `context` describes carries.
    pub fn of(context: &RequestContext) -> Self {
        ErrorContext {
            correlation_id: Some(context.correlation_id),
            handler_type: context.handler_type.clone(),
            operation: context.operation.clone(),
        }
    }
}

/// A request's failure: a kind plus the request context it happened in.
///
/// Boxed, so that `Result<_, RequestError>` stays one pointer wide on the hot path.
#[derive(Debug)]
pub struct RequestError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    context: ErrorContext,
}

impl RequestError {
    /// An error of `kind` with the request `context` it belongs to.
    pub fn new(kind: ErrorKind, context: ErrorContext) -> Self {
        RequestError(Box::new(Inner { kind, context }))
    }

    /// An error with no request context.
    pub fn without_context(kind: ErrorKind) -> Self {
        Self::new(kind, ErrorContext::default())
    }

    /// The `error` of the response envelope that reports it.
    pub fn to_body(&self) -> ErrorBody {
        let mut details = Payload::new();
        if let Some((name, value)) = self.kind().detail() {
            details.insert(name.to_owned(), value);
        }
        let context = self.context();
        ErrorBody {
            code: self.code(),
            message: self.message_chain(),
            handler_type: context.handler_type.clone(),
            operation: context.operation.clone(),
            details,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// The request the error belongs to.
    pub fn context(&self) -> &ErrorContext {
        &self.0.context
    }

    /// The stable code users see in `error.code`.
    pub fn code(&self) -> ErrorCode {
        self.0.kind.code()
    }

    /// The message and its causes, joined by `": "`, as error envelopes show it.
    ///
    /// It stops at what a handler reported: a handler's message is written to be shown to
    /// callers, while the errors beneath it (a client library's) are for the host's logs.
    pub fn message_chain(&self) -> String {
        causes(self, true)
    }

    /// Every cause, handlers' included, for the host's own logs.
    pub fn full_chain(&self) -> String {
        causes(self, false)
    }
}

/// `error`'s message and its causes', joined by `": "`; with `stop_at_handler`, none
/// beneath what a handler reported.
fn causes(error: &dyn std::error::Error, stop_at_handler: bool) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        message.push_str(": ");
        message.push_str(&error.to_string());
        if stop_at_handler && error.downcast_ref::<HandlerError>().is_some() {
            break;
        }
        cause = error.source();
    }
    message
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.kind, f)
    }
}

impl std::error::Error for RequestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.kind.source()
    }
}

impl<E: Into<ErrorKind>> From<E> for RequestError {
    fn from(error: E) -> Self {
        RequestError::without_context(error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialise_as_their_wire_names() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
    }

    #[test]
    fn message_chain_joins_causes_once() {
        let error = RequestError::from(ErrorKind::Handler {
            handler_type: HandlerType::Local,
            source: HandlerError::execution("requested failure"),
        });
        assert_eq!(error.message_chain(), "handler 'local': requested failure");
        assert_eq!(error.code(), ErrorCode::HandlerExecutionError);
    }

    #[test]
    fn a_failed_statement_carries_its_index() {
        let error = RequestError::from(ErrorKind::Handler {
            handler_type: HandlerType::Db,
            source: HandlerError::Statement {
                index: 2,
                message: "statement 2 failed".into(),
                source: None,
            },
        });
        let body = error.to_body();
        assert_eq!(body.code, ErrorCode::HandlerExecutionError);
        assert_eq!(body.message, "handler 'db': statement 2 failed");
        assert_eq!(body.details["statement_index"], 2);
    }

    #[test]
    fn an_envelope_error_reads_the_same_from_the_envelope_and_from_the_taxonomy() {
        let error = EnvelopeError::Missing(vec!["operation"]);
        let from_taxonomy = RequestError::from(ErrorKind::Envelope(error.clone())).to_body();
        assert_eq!(error.body(), from_taxonomy);
        assert_eq!(
            from_taxonomy.message,
            "invalid envelope: missing required fields: operation"
        );
    }
}
