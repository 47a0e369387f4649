//! Contracts: the YAML files that say what a host runs.
//!
//! - [`RuntimeHostContract`]: the host's name, event bus, handlers and nodes; loading it
//!   also resolves and loads every node contract it names.
//! - [`NodeContract`]: one node, what it is and which I/O operations it may perform.
//! - [`HandlerContract`], found by [`HandlerContractSource`]: what one handler supports.
//!
//! Each is read in two steps: a raw type that mirrors the YAML exactly (unknown fields
//! are errors) and carries each value's line, then validation into a type that can only
//! hold valid values. Parsing text is pure; loading a path adds the file name. Validation
//! collects every problem it finds, each with its line, a hint and an action, before it
//! fails ([`ContractError`]).

mod binding;
mod bindings;
mod error;
mod event_bus;
mod handler_source;
mod model;
mod names;
mod node;
mod reach;
mod registry;
mod runtime;
mod secrets;
mod target;
mod topic_name;
mod yaml;

pub use binding::{Backoff, BreakerPolicy, DsnSource, HandlerConfig, RetryPolicy};
pub use error::{ContractError, MAX_REPORTED_PROBLEMS, Problem};
pub use event_bus::{DEFAULT_SESSION_TIMEOUT, EventBusConfig, KafkaConfig};
pub use handler_source::{HANDLER_CONTRACT_FILE, HandlerContract, HandlerContractSource};
pub use model::{Model, ModelField};
pub use node::{IoOperation, NodeContract, NodeType};
pub use reach::Reach;
pub use runtime::{HandlerEntry, NodeRef, RuntimeHostContract};
pub use target::HttpTarget;
pub use topic_name::{Direction, RESERVED_TENANTS, check as check_topic_name};
pub use yaml::MAX_CONTRACT_BYTES;

/// A contract schema version this host reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SchemaVersion {
    /// `1.0.0`: the MVP schema.
    V1_0,
    /// `1.1.0`: the Beta schema, which adds the kafka event bus, handler `config` and
    /// the [`BETA_OPERATIONS`].
    V1_1,
}

impl SchemaVersion {
    /// Every version this host reads, oldest first.
    pub const ALL: [SchemaVersion; 2] = [SchemaVersion::V1_0, SchemaVersion::V1_1];

    /// The version as contracts write it, e.g. `1.1.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaVersion::V1_0 => "1.0.0",
            SchemaVersion::V1_1 => "1.1.0",
        }
    }

    /// The version written `text`, if this host reads it.
    pub fn from_text(text: &str) -> Option<SchemaVersion> {
        Self::ALL
            .into_iter()
            .find(|version| version.as_str() == text)
    }
}

/// The operations schema 1.1.0 adds: a node or handler contract at 1.0.0 that names one
/// is refused, and told to set `schema_version: "1.1.0"`.
pub const BETA_OPERATIONS: [&str; 4] = ["http.put", "http.patch", "http.delete", "db.transaction"];

/// Fields reserved for later versions, refused with the reason.
const PROHIBITED_FIELDS: [(&str, &str); 3] = [
    ("tenant_id", "reserved for Beta multi-tenancy"),
    (
        "retry_policy",
        "reserved for Beta resilience: schema 1.1.0 takes it in a handler's config (handlers[].config.retry_policy)",
    ),
    (
        "rate_limit",
        "reserved for Beta throttling: MVP has no rate limits",
    ),
];
