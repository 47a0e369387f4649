//! Helpers shared by the integration tests: contract fixtures, running the binaries,
//! deterministic hosts and time limits.

#![allow(dead_code)]

pub mod daemon;
pub mod fixture;
pub mod host;
pub mod http_server;
pub mod kafka;
pub mod kafka_mock;
pub mod logs;
pub mod postgres;
pub mod process;
pub mod proxy;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use futures_lite::future;
use onex_host::contract::NodeContract;
use onex_host::envelope::{Envelope, Payload, Stamp};
use onex_host::handler::Handler;
use onex_host::runtime::{NodeInstance, NodeRuntime};
use serde_json::Value;

/// Runs `test` on a smol executor, failing if it takes longer than `seconds`.
pub fn within<T>(seconds: u64, test: impl Future<Output = T>) -> T {
    smol::block_on(future::or(test, async {
        smol::Timer::after(Duration::from_secs(seconds)).await;
        panic!("timed out after {seconds} s");
    }))
}

/// A loopback port nothing listens on (bound and let go: a connection to it is refused).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
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

/// A runtime with `handler`, initialised, and the one node `node_yaml` describes.
pub fn runtime_with(handler: Box<dyn Handler>, node_yaml: &str) -> NodeRuntime {
    let contract =
        NodeContract::parse(node_yaml, Path::new("node.yaml")).unwrap_or_else(|e| panic!("{e}"));
    within(10, handler.initialize()).expect("the handler starts");
    let mut runtime = NodeRuntime::new(Stamp::deterministic(0));
    runtime.register_handler(handler).expect("registers");
    runtime
        .register_node(NodeInstance::new(contract))
        .expect("registers");
    runtime
}

/// Routes a request for `operation` on `node` with `payload` and returns the response.
pub fn call(runtime: &NodeRuntime, node: &str, operation: &str, payload: Value) -> Envelope {
    let payload: Payload = payload.as_object().cloned().unwrap_or_default();
    let request = Envelope::request(&Stamp::deterministic(100), node, operation, Some(payload));
    *within(60, runtime.route_envelope(Box::new(request)))
}
