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

mod error;
mod handler_source;
mod model;
mod names;
mod node;
mod registry;
mod runtime;
mod target;
mod yaml;

pub use error::{ContractError, MAX_REPORTED_PROBLEMS, Problem};
pub use handler_source::{HANDLER_CONTRACT_FILE, HandlerContract, HandlerContractSource};
pub use model::{Model, ModelField};
pub use node::{IoOperation, NodeContract, NodeType, Reach};
pub use runtime::{HandlerEntry, NodeRef, RuntimeHostContract};
pub use target::HttpTarget;
pub use yaml::MAX_CONTRACT_BYTES;

/// The contract schema version this host reads.
pub const SCHEMA_VERSION: &str = "1.0.0";

/// Fields reserved for later versions, refused with the reason.
const PROHIBITED_FIELDS: [(&str, &str); 3] = [
    ("tenant_id", "reserved for Beta multi-tenancy"),
    (
        "retry_policy",
        "reserved for Beta resilience: MVP makes one attempt per call",
    ),
    (
        "rate_limit",
        "reserved for Beta throttling: MVP has no rate limits",
    ),
];
