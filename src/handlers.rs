//! Protocol handler implementations, one file per handler type.
//!
//! [`local`] is part of the transport-free core (dev/test only). The I/O handlers
//! (`http`, `db`) live beside it and are registered only through [`crate::wiring`].

pub mod db;
pub mod http;
pub use onex_core::local;
