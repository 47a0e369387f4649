//! The protocol-handler trait: how the host does I/O on behalf of its nodes.
//!
//! # Handler or event bus?
//!
//! | | handler | event bus |
//! | --- | --- | --- |
//! | what it is | a client the host calls for one operation (HTTP call, SQL query) | the transport envelopes arrive on and leave by |
//! | who calls it | [`crate::runtime::NodeRuntime`], once per request | the host process, which owns it |
//! | knows envelopes? | only its operation and payload | only as bytes on topics |
//! | examples | `http`, `db`, `local` | in-memory (Kafka is a bus, never a handler) |
//!
//! This module owns the closed set of handler types, the [`Handler`] trait, what a
//! handler is given ([`HandlerRequest`]) and may fail with ([`HandlerError`]), and what
//! it says about itself ([`Description`]). Implementations: [`crate::local`] here, the I/O handlers in `onex-host`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use futures_lite::future::Boxed;
use uuid::Uuid;

use crate::budget::Charge;
use crate::contract::NodeContract;
use crate::envelope::Payload;
use crate::health::HealthReport;
pub use crate::shared::{Description, HandlerType};

/// One operation for a handler to run, already routed and authorised by its node.
#[derive(Clone, Debug)]
pub struct HandlerRequest {
    /// The full dotted operation, e.g. `http.get`.
    pub operation: String,
    /// The request's payload (an empty object when the request had none).
    pub payload: Payload,
    /// The request's correlation id, for logs.
    pub correlation_id: Uuid,
    /// The contract of the node the request is for, which already allowed it: a handler
    /// reads its per-node settings there (the http handler, the targets a redirect must
    /// stay within).
    pub node: Arc<NodeContract>,
    /// The request's share of the host's memory budget: a handler that reads a large
    /// reply grows it first ([`Charge::try_grow`]) and fails if it cannot.
    pub charge: Charge,
    /// The request envelope's id, for logs.
    pub envelope_id: Option<Uuid>,
    /// When the request's time is up (`metadata.timeout_ms` after the runtime took it):
    /// no handler works on it past this instant; `None` when the request set no limit.
    pub deadline: Option<Instant>,
    /// How many calls the handler took for this request, when something (the retry
    /// layer) called it more than once; shared by the request's clones.
    pub attempts: Attempts,
}

impl HandlerRequest {
    /// A request for `operation` with `payload`, for the node `node`: no envelope id, no
    /// deadline, attempts not counted yet.
    pub fn new(
        operation: impl Into<String>,
        payload: Payload,
        correlation_id: Uuid,
        node: Arc<NodeContract>,
        charge: Charge,
    ) -> Self {
        HandlerRequest {
            operation: operation.into(),
            payload,
            correlation_id,
            node,
            charge,
            envelope_id: None,
            deadline: None,
            attempts: Attempts::default(),
        }
    }
}

/// The number of calls made for one request, written by whoever makes more than one and
/// read by the runtime for the response's `metadata.attempts`.
///
/// Shared, not copied, by the request's clones: each attempt runs on a clone.
#[derive(Clone, Debug, Default)]
pub struct Attempts(Arc<AtomicU32>);

impl Attempts {
    /// Records that `count` calls were made so far.
    pub fn set(&self, count: u32) {
        self.0.store(count, Ordering::Relaxed);
    }

    /// The calls recorded; 0 when nobody counted (one call).
    pub fn count(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a failed call says about the dependency behind a handler (the upstream server,
/// the database), as only the handler that made the call knows: whether anything was
/// sent, and whether trying again may help. The layers around a handler read it to
/// decide on a retry and to count failures toward a circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Nothing reached the dependency (a refused connection, a name that did not
    /// resolve, a timeout before a connection was made): trying again is safe for any
    /// operation.
    NotSent,
    /// The dependency failed in a way that passes (overloaded, restarting, a
    /// serialization conflict), but the call may have been taken: trying again is safe
    /// for a read or an idempotent request only.
    Transient,
    /// The dependency stopped answering (a timeout after the call was sent, a connection
    /// lost mid-call): an outage, but never tried again, since it may still be working
    /// on the call and another would cost the same time.
    Lost,
}

/// What a handler can fail with; [`crate::error`] maps each variant to its code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// The handler does not support the operation (`INVALID_OPERATION_ERROR`).
    #[error(
        "operation '{operation}' not supported. Available: {}",
        .available.join(", ")
    )]
    UnsupportedOperation {
        /// The refused operation.
        operation: String,
        /// The operations this handler supports.
        available: &'static [&'static str],
    },
    /// The payload lacks a field or has one of the wrong type (`ENVELOPE_VALIDATION_ERROR`).
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    /// The handler tried and failed (`HANDLER_EXECUTION_ERROR`); the message must be safe to
    /// send to the caller: no secrets, no host paths, no stack traces.
    #[error("{message}")]
    Execution {
        /// What failed, in words the caller can act on.
        message: String,
        /// The underlying error, for the host's own logs.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The dependency failed, not the request (`HANDLER_EXECUTION_ERROR`, as
    /// `Execution`): it counts toward a circuit breaker, and `fault` says whether a retry
    /// is safe. The message follows `Execution`'s rules.
    #[error("{message}")]
    Dependency {
        /// What failed, in words the caller can act on.
        message: String,
        /// Whether anything was sent, and whether trying again may help.
        fault: Fault,
        /// The underlying error, for the host's own logs.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// One statement of several run together failed (`db.transaction`;
    /// `HANDLER_EXECUTION_ERROR`, with `statement_index`); the message says which, why,
    /// and what became of the others, safe to send as for [`HandlerError::Execution`].
    #[error("{message}")]
    Statement {
        /// The failed statement's place in the request's list, from 0.
        index: usize,
        /// What failed, in words the caller can act on.
        message: String,
        /// The underlying error, for the host's own logs.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl HandlerError {
    /// An execution failure described by `message`, with no underlying error.
    pub fn execution(message: impl Into<String>) -> Self {
        HandlerError::Execution {
            message: message.into(),
            source: None,
        }
    }

    /// A failure of the dependency (`fault`) described by `message`, caused by `source`.
    pub fn dependency(
        fault: Fault,
        message: impl Into<String>,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        HandlerError::Dependency {
            message: message.into(),
            fault,
            source,
        }
    }

    /// The dependency's fault, when the error is the dependency's.
    pub fn fault(&self) -> Option<Fault> {
        match self {
            HandlerError::Dependency { fault, .. } => Some(*fault),
            _ => None,
        }
    }

    /// The error for an operation outside `available`.
    pub fn unsupported(operation: &str, available: &'static [&'static str]) -> Self {
        HandlerError::UnsupportedOperation {
            operation: operation.to_owned(),
            available,
        }
    }
}

/// A protocol handler: one per type per host, shared by every node that uses it.
///
/// # Rules for implementers
///
/// - Never block the executor: a handler on a synchronous client moves the call to a
///   thread pool inside itself; no other module knows.
/// - `initialize` is called once before any `execute`; `shutdown` exactly once, last,
///   whatever state the handler is in; after it, `execute` must fail, not hang.
/// - Dropping an `execute` future cancels the operation as far as the protocol allows;
///   the handler stays usable.
/// - `execute` returns the response payload; the host builds the envelope, so response
///   invariants hold whatever the handler does. It fails only with [`HandlerError`]:
///   `UnsupportedOperation` for an operation outside `describe().supported_operations`,
///   `InvalidPayload` for a missing or mistyped payload field, `Execution` for everything
///   that went wrong while trying, with a message safe to show the caller; `Dependency`
///   instead when the dependency failed rather than the request, with the [`Fault`]
///   that says whether a retry is safe (only the handler knows whether anything was
///   sent); `Statement` when it was one of several statements run together, naming which.
/// - Past `request.deadline` the result is not wanted: the layers stop waiting for it.
/// - Cross-cutting behaviour (timeouts, retries, limits) wraps a handler and implements
///   this same trait.
pub trait Handler: Send + Sync {
    /// The handler's type.
    fn handler_type(&self) -> HandlerType;

    /// The implementation's name, for the host's logs (e.g. `HttpHandler`).
    fn name(&self) -> &'static str {
        self.handler_type().as_str()
    }

    /// Acquires resources (connections, clients); called once, before any `execute`.
    fn initialize(&self) -> Boxed<Result<(), HandlerError>>;

    /// Releases resources; called exactly once, last.
    fn shutdown(&self) -> Boxed<()>;

    /// Whether calls reach a dependency (a server, a network) and so may fail with a
    /// [`Fault`]. A handler that says no never reports one: a retry layer around it has
    /// nothing to retry and keeps no copy of its requests.
    fn has_dependency(&self) -> bool {
        true
    }

    /// Runs one operation and returns the response payload.
    fn execute(&self, request: HandlerRequest) -> Boxed<Result<Option<Payload>, HandlerError>>;

    /// Reports whether the handler can serve requests; never fails the host.
    fn health_check(&self) -> Boxed<HealthReport>;

    /// What the handler supports and returns.
    fn describe(&self) -> Description;
}

/// A boxed handler is a handler, so that what is built as one can be wrapped again.
impl<H: Handler + ?Sized> Handler for Box<H> {
    fn handler_type(&self) -> HandlerType {
        (**self).handler_type()
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn initialize(&self) -> Boxed<Result<(), HandlerError>> {
        (**self).initialize()
    }

    fn shutdown(&self) -> Boxed<()> {
        (**self).shutdown()
    }

    fn has_dependency(&self) -> bool {
        (**self).has_dependency()
    }

    fn execute(&self, request: HandlerRequest) -> Boxed<Result<Option<Payload>, HandlerError>> {
        (**self).execute(request)
    }

    fn health_check(&self) -> Boxed<HealthReport> {
        (**self).health_check()
    }

    fn describe(&self) -> Description {
        (**self).describe()
    }
}
