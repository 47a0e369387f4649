//! A runtime host for ONEX nodes.
//!
//! One small process loads a runtime-host contract (its event bus, its protocol handlers,
//! the nodes it hosts), consumes request envelopes from the bus, routes each to its node
//! and handler, and publishes one response envelope per request: a result, or a structured
//! error that echoes the request's correlation id.
//!
//! # Layout
//!
//! The transport-free core is the `onex-core` crate, re-exported here under the same
//! names: [`envelope`] (the message format), [`contract`] (contracts from YAML),
//! [`error`] (request and host errors, the stable codes), [`shared`], [`handler`] and
//! [`health`] (the protocol-handler trait), [`bus`] (the event-bus trait and the in-memory
//! bus), [`runtime`] (`NodeRuntime`, which routes envelopes to handlers) and [`budget`]
//! (the memory bound). It depends on no runtime or transport crate.
//!
//! This crate is what touches the outside world: the I/O handlers in [`handlers`],
//! [`wiring`] (the one registry of handler and bus kinds), [`host`] (the process that owns
//! the bus), its edges [`stdio`] (`--stdin`) and [`api`] (`--listen`), [`serve`] (signals
//! and the drain), [`metrics`] and [`logging`].
//!
//! # Embedding
//!
//! A program can host nodes without the binaries: load a contract, wire it, start it and
//! hand it envelopes.
//!
//! ```
//! use onex_host::contract::RuntimeHostContract;
//! use onex_host::envelope::Stamp;
//! use onex_host::wiring::{Profile, build_host};
//!
//! # fn main() -> Result<(), onex_host::HostError> {
//! let contract = RuntimeHostContract::load("contracts/runtime/dev_runtime_host.yaml".as_ref())?;
//! let host = build_host(&contract, Profile::Development, Stamp::system(), 1)?;
//! smol::block_on(async {
//!     host.start().await?;
//!     let request = br#"{"envelope_id": "6f1c1a4e-0000-4000-8000-000000000001",
//!         "target_node": "echo_node", "operation": "local.echo", "payload": {"n": 1}}"#;
//!     let response = host.process(request).await;
//!     assert_eq!(response.success, Some(true));
//!     assert_eq!(response.payload.as_ref().map(|p| &p["n"]), Some(&1.into()));
//!     host.shutdown().await;
//!     Ok(())
//! })
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]

pub mod api;
pub mod busy_poll;
pub mod handlers;
pub mod host;
pub mod kafka;
pub mod latch;
pub mod layers;
pub mod logging;
pub mod metrics;
pub mod serve;
pub mod stdio;
pub mod wiring;

/// The core's modules, under the same names here: a host's user needs one crate.
pub use onex_core::{budget, bus, contract, envelope, error, handler, health, runtime, shared};

/// Every build allocates through mimalloc: the envelope path allocates a lot, musl's own
/// allocator is slow at it, and mimalloc is faster than glibc's too. The static build
/// routes the C code's `malloc` there as well (docs/DECISIONS.md has the figures).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use envelope::Envelope;
pub use error::{ErrorCode, HostError, RequestError};
pub use handler::{Handler, HandlerType};
