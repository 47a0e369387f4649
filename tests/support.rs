//! Helpers shared by the integration tests: contract fixtures, running the binaries,
//! deterministic hosts and time limits.

#![allow(dead_code)]

pub mod fixture;
pub mod host;
pub mod process;

use std::future::Future;
use std::time::Duration;

use futures_lite::future;

/// Runs `test` on a smol executor, failing if it takes longer than `seconds`.
pub fn within<T>(seconds: u64, test: impl Future<Output = T>) -> T {
    smol::block_on(future::or(test, async {
        smol::Timer::after(Duration::from_secs(seconds)).await;
        panic!("timed out after {seconds} s");
    }))
}

/// A request envelope line for `target_node` and `operation`, with a fixed id.
pub fn request_line(n: u32, target_node: &str, operation: &str, payload: &str) -> String {
    format!(
        r#"{{"envelope_id":"00000000-0000-4000-8000-{n:012}","correlation_id":"00000000-0000-4000-9000-{n:012}","target_node":"{target_node}","operation":"{operation}","payload":{payload}}}"#
    )
}

/// The correlation id [`request_line`] gives request `n`.
pub fn correlation_of(n: u32) -> String {
    format!("00000000-0000-4000-9000-{n:012}")
}
