//! A runtime host for ONEX nodes.
//!
//! One small process loads a runtime-host contract (its event bus, its protocol handlers,
//! the nodes it hosts), consumes request envelopes from the bus, routes each to its node
//! and handler, and publishes one response envelope per request: a result, or a structured
//! error that echoes the request's correlation id.
//!
//! # Layout
//!
//! The transport-free core knows nothing of networks, databases or processes; a test
//! (`tests/architecture.rs`) fails if it names a transport crate or an outer module:
//!
//! - [`envelope`]: the message format, request validation, response construction;
//! - [`contract`]: runtime-host, node and handler contracts, loaded from YAML;
//! - [`error`]: the error taxonomy and its stable codes;
//! - [`handler`], [`health`]: the protocol-handler trait and what handlers report;
//! - [`bus`]: the event-bus trait (its in-memory implementation lives outside the core);
//! - [`runtime`]: `NodeRuntime` and `NodeInstance`, which route envelopes to handlers;
//! - [`handlers::local`]: the dev/test-only `LocalHandler`.
//!
//! Around it, what touches the outside world: [`bus::inmemory`], the I/O handlers in
//! [`handlers`], [`wiring`] (the one registry of handler and bus kinds), [`host`] (the
//! process that owns the bus), its edges [`stdio`] (`--stdin`) and [`api`] (`--listen`),
//! [`serve`] (signals and the drain), [`metrics`], [`logging`], and [`cli`] and [`app`]
//! (the binaries' boot script).
#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]

pub mod api;
pub mod busy_poll;
pub mod handlers;
pub mod host;
pub mod latch;
pub mod logging;
pub mod metrics;
pub mod serve;
pub mod stdio;
pub mod wiring;

/// The core's modules, under the same names here: a host's user needs one crate.
pub use onex_core::{budget, bus, contract, envelope, error, handler, health, runtime, shared};

/// Every build allocates through mimalloc: musl's own allocator made the envelope path
/// about half as fast as on glibc, and with mimalloc the glibc build takes 12% less time
/// per envelope. The static build routes the C code's `malloc` there too (issues 5 and 6;
/// the figures are in `Cargo.toml` and docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use envelope::Envelope;
pub use error::{ErrorCode, HostError, RequestError};
pub use handler::{Handler, HandlerType};
