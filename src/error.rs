//! The runtime host's error taxonomy, and the one place where an error becomes a stable code.
//!
//! Each module owns the errors of its own operations ([`ContractError`],
//! [`HandlerError`], [`BusError`], [`EnvelopeError`]); [`RuntimeHostError`] wraps them
//! with the context every error envelope must carry (correlation id, handler type,
//! operation) and maps each to the [`ErrorCode`] users see in `error.code`.
//! Building the error envelope itself is [`crate::envelope`]'s job.

use std::fmt;

use uuid::Uuid;

use crate::bus::BusError;
use crate::contract::ContractError;
use crate::envelope::EnvelopeError;
use crate::handler::HandlerError;
pub use crate::shared::ErrorCode;
use crate::shared::HandlerType;

/// What went wrong, without the request it went wrong for.
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
    /// The event bus failed.
    #[error("event bus")]
    Bus(#[from] BusError),
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
    /// Reading or writing the host's own input or output failed.
    #[error("{doing}")]
    Io {
        /// What the host was doing, e.g. `reading standard input`.
        doing: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A contract failed to load or validate.
    #[error(transparent)]
    Contract(#[from] ContractError),
    /// Handlers or the bus could not be wired.
    #[error("protocol configuration: {0}")]
    ProtocolConfiguration(String),
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
                HandlerError::Execution { .. } => ErrorCode::HandlerExecutionError,
            },
            ErrorKind::ShutDown { .. } => ErrorCode::HandlerExecutionError,
            ErrorKind::Bus(_) | ErrorKind::Io { .. } => ErrorCode::EventBusError,
            ErrorKind::Contract(_) => ErrorCode::ContractValidationError,
            ErrorKind::ProtocolConfiguration(_) => ErrorCode::ProtocolConfigurationError,
        }
    }

    /// The code-specific field of an error envelope, e.g. `available_nodes`, if any.
    pub fn detail(&self) -> Option<(&'static str, Vec<String>)> {
        match self {
            ErrorKind::NodeNotFound { available, .. } => {
                Some(("available_nodes", available.clone()))
            }
            ErrorKind::HandlerNotFound { available, .. } => Some((
                "available_handlers",
                available.iter().map(|t| t.as_str().to_owned()).collect(),
            )),
            ErrorKind::NotDeclared { available, .. } => {
                Some(("available_operations", available.clone()))
            }
            ErrorKind::Handler {
                source: HandlerError::UnsupportedOperation { available, .. },
                ..
            } => Some((
                "available_operations",
                available.iter().map(|op| (*op).to_owned()).collect(),
            )),
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

/// Any failure of the runtime host: a kind plus the request context it happened in.
///
/// Boxed, so that `Result<_, RuntimeHostError>` stays one pointer wide on the hot path.
#[derive(Debug)]
pub struct RuntimeHostError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    context: ErrorContext,
}

impl RuntimeHostError {
    /// An error of `kind` with the request `context` it belongs to.
    pub fn new(kind: ErrorKind, context: ErrorContext) -> Self {
        RuntimeHostError(Box::new(Inner { kind, context }))
    }

    /// An error with no request context (start-up and configuration failures).
    pub fn without_context(kind: ErrorKind) -> Self {
        Self::new(kind, ErrorContext::default())
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
        self.chain(true)
    }

    /// Every cause, handlers' included, for the host's own logs.
    pub fn full_chain(&self) -> String {
        self.chain(false)
    }

    fn chain(&self, stop_at_handler: bool) -> String {
        let mut message = self.to_string();
        let mut cause = std::error::Error::source(self);
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
}

impl fmt::Display for RuntimeHostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.kind, f)
    }
}

impl std::error::Error for RuntimeHostError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.kind.source()
    }
}

impl<E: Into<ErrorKind>> From<E> for RuntimeHostError {
    fn from(error: E) -> Self {
        RuntimeHostError::without_context(error.into())
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
        let error = RuntimeHostError::from(ErrorKind::Handler {
            handler_type: HandlerType::Local,
            source: HandlerError::execution("requested failure"),
        });
        assert_eq!(error.message_chain(), "handler 'local': requested failure");
        assert_eq!(error.code(), ErrorCode::HandlerExecutionError);
    }
}
