//! Why the host process fails: what the operator sees on standard error, with exit status 1.

use crate::bus::BusError;
use crate::contract::ContractError;
use crate::shared::ErrorCode;

/// A failure of the host process itself, not of one request: it cannot start (a contract
/// that does not load, handlers that cannot be wired) or cannot go on (its bus, its own
/// input or output failed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// A contract failed to load or validate.
    #[error(transparent)]
    Contract(#[from] ContractError),
    /// Handlers, nodes or the bus could not be wired as configured.
    #[error("protocol configuration: {0}")]
    Configuration(String),
    /// The event bus failed.
    #[error("event bus")]
    Bus(#[from] BusError),
    /// Reading or writing the host's own input or output failed.
    #[error("{doing}")]
    Io {
        /// What the host was doing, e.g. `reading standard input`.
        doing: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl HostError {
    /// The specification's code for this failure, where it has one: its start-up codes
    /// (`CONTRACT_VALIDATION_ERROR`, `PROTOCOL_CONFIGURATION_ERROR`) and `EVENT_BUS_ERROR`.
    /// The host's own input or output failing is none of these.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            HostError::Contract(_) => Some(ErrorCode::ContractValidationError),
            HostError::Configuration(_) => Some(ErrorCode::ProtocolConfigurationError),
            HostError::Bus(_) => Some(ErrorCode::EventBusError),
            HostError::Io { .. } => None,
        }
    }

    /// The message and every cause, joined by `": "`, as the operator sees it.
    pub fn message_chain(&self) -> String {
        super::causes(self, false)
    }
}
