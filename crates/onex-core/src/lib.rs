//! The transport-free core of the ONEX runtime host.
//!
//! Everything a host needs to know about its nodes and their messages, and nothing about
//! how messages travel or how I/O is done: this crate depends on no async runtime and no
//! transport (its manifest says which crates it may use, and the build refuses any other).
//!
//! - [`envelope`]: the message format, reading a request, building its response;
//! - [`contract`]: runtime-host, node and handler contracts, loaded from YAML and checked;
//! - [`error`]: request errors (which become error envelopes with a stable code) and host
//!   errors (which end the process);
//! - [`shared`]: the leaf types the others share (error codes, handler types, descriptions);
//! - [`handler`], [`health`]: the protocol-handler trait and what handlers report;
//! - [`bus`]: the event-bus trait and the in-memory bus;
//! - [`runtime`]: `NodeRuntime` and `NodeInstance`, which route envelopes to handlers;
//! - [`budget`]: the byte budget bounding what a host holds in memory;
//! - [`local`]: `LocalHandler`, the in-process handler for development and tests.
//!
//! The I/O handlers, the host process and the binaries are the `onex-host` crate.
#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]

pub mod budget;
pub mod bus;
pub mod contract;
pub mod envelope;
pub mod error;
pub mod handler;
pub mod health;
pub mod local;
pub mod runtime;
pub mod shared;

pub use envelope::Envelope;
pub use error::{ErrorCode, HostError, RequestError};
pub use handler::{Handler, HandlerType};
