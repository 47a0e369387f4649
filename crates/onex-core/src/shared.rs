//! The words every part of the core shares and none owns: the stable error codes, the
//! closed set of handler types, and what a handler says about itself. It imports nothing
//! from the crate, so the modules that use it (contracts, envelopes, handlers, errors)
//! need not import each other.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The stable error codes: the values of `error.code` in error envelopes.
///
/// These names are part of the wire format; renaming one breaks users' scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The request is not a valid envelope, or its payload misses what the handler needs.
    EnvelopeValidationError,
    /// `target_node` names no node this host loaded.
    NodeNotFound,
    /// No handler is registered for the request's handler type.
    HandlerNotFound,
    /// The operation is not declared by the node or not supported by the handler.
    InvalidOperationError,
    /// The handler tried and failed (I/O error, timeout, server error).
    HandlerExecutionError,
    /// The event bus could not take or deliver a message.
    EventBusError,
    /// A contract failed to load or validate (start-up only).
    ContractValidationError,
    /// The handlers or bus could not be wired as configured (start-up only).
    ProtocolConfigurationError,
}

impl ErrorCode {
    /// Every code.
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::EnvelopeValidationError,
        ErrorCode::NodeNotFound,
        ErrorCode::HandlerNotFound,
        ErrorCode::InvalidOperationError,
        ErrorCode::HandlerExecutionError,
        ErrorCode::EventBusError,
        ErrorCode::ContractValidationError,
        ErrorCode::ProtocolConfigurationError,
    ];

    /// The code as it appears on the wire, e.g. `NODE_NOT_FOUND`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::EnvelopeValidationError => "ENVELOPE_VALIDATION_ERROR",
            ErrorCode::NodeNotFound => "NODE_NOT_FOUND",
            ErrorCode::HandlerNotFound => "HANDLER_NOT_FOUND",
            ErrorCode::InvalidOperationError => "INVALID_OPERATION_ERROR",
            ErrorCode::HandlerExecutionError => "HANDLER_EXECUTION_ERROR",
            ErrorCode::EventBusError => "EVENT_BUS_ERROR",
            ErrorCode::ContractValidationError => "CONTRACT_VALIDATION_ERROR",
            ErrorCode::ProtocolConfigurationError => "PROTOCOL_CONFIGURATION_ERROR",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds of protocol handler: a closed set, one handler of each kind per host.
///
/// Kafka is not a handler type: it is an event bus (`event_bus.kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandlerType {
    /// HTTP client calls (`http.get`, `http.post`).
    Http,
    /// PostgreSQL statements (`db.query`, `db.execute`).
    Db,
    /// In-process echo and test operations; development and tests only.
    Local,
}

impl HandlerType {
    /// Every handler type, in the order help texts list them.
    pub const ALL: [HandlerType; 3] = [HandlerType::Http, HandlerType::Db, HandlerType::Local];

    /// The name used in contracts, envelopes and operation prefixes.
    pub fn as_str(self) -> &'static str {
        match self {
            HandlerType::Http => "http",
            HandlerType::Db => "db",
            HandlerType::Local => "local",
        }
    }

    /// The handler type named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<HandlerType> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for HandlerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a handler says about itself: `describe()`, and the body of its `handler_contract.yaml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Description {
    /// The handler's type.
    pub handler_type: HandlerType,
    /// The handler implementation's version.
    pub version: String,
    /// Every operation it accepts, dotted (`http.get`).
    pub supported_operations: Vec<String>,
    /// Payload fields every request must carry.
    pub required_payload_fields: Vec<String>,
    /// The fields of a successful response payload, with their JSON types.
    pub response_shape: BTreeMap<String, String>,
    /// Fixed limits (timeouts, sizes, pool size), by name.
    #[serde(default)]
    pub limits: BTreeMap<String, u64>,
}
