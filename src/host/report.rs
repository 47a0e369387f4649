//! What the host says about itself: readiness, per-handler health, and the wiring.

use std::fmt::Write as _;
use std::time::Duration;

use futures_lite::future;
use serde::Serialize;
use serde_json::{Value, json};
use smol::Timer;

use super::{HostState, RuntimeHost};
use crate::handler::Handler;
use crate::health::HealthReport;

/// How long a handler's health check may take: a probe must be answered even when a
/// dependency does not answer, and a handler that does not answer is not healthy.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// `handler`'s health, or unhealthy if it does not tell within [`HEALTH_TIMEOUT`].
async fn health_of(handler: &dyn Handler) -> HealthReport {
    future::or(handler.health_check(), async {
        Timer::after(HEALTH_TIMEOUT).await;
        HealthReport::new(false).with("error", "the health check did not answer within 2 s")
    })
    .await
}

/// Whether the host can take requests, and why not.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Readiness {
    /// Ready: started, not draining, the bus and every handler healthy.
    pub ready: bool,
    /// The host's state (`starting`, `ready`, `draining`).
    pub state: &'static str,
    /// Each component's health: `bus` and each handler type.
    pub components: serde_json::Map<String, Value>,
    /// The handler types that are up but degraded (an open circuit breaker): they do not
    /// make the host unready, since other handlers, and other calls, still work.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub degraded: Vec<String>,
}

impl RuntimeHost {
    /// Readiness, checking the bus and every handler now.
    pub async fn readiness(&self) -> Readiness {
        let state = self.state();
        let mut components = serde_json::Map::new();
        let bus = self.bus.health_check().await;
        let mut healthy = bus.healthy;
        let mut degraded = Vec::new();
        components.insert("bus".into(), Value::Bool(bus.healthy));
        // Keyed by binding: an unnamed binding's name is its type's, as before bindings
        // had names.
        for (binding, handler) in self.runtime.bindings() {
            let report = health_of(handler).await;
            healthy &= report.healthy;
            if report.degraded {
                degraded.push(binding.to_owned());
            }
            components.insert(binding.to_owned(), Value::Bool(report.healthy));
        }
        Readiness {
            ready: healthy && state == HostState::Ready,
            state: state.as_str(),
            components,
            degraded,
        }
    }

    /// Each handler's health and description, and the bus's health, as JSON.
    pub async fn handlers_report(&self) -> Value {
        let mut handlers = Vec::new();
        for (binding, handler) in self.runtime.bindings() {
            let health = health_of(handler).await;
            handlers.push(json!({
                "binding": binding,
                "handler_type": handler.handler_type(),
                "state": match (health.healthy, health.degraded) {
                    (false, _) => "unhealthy",
                    (true, true) => "degraded",
                    (true, false) => "healthy",
                },
                "health": health,
                "describe": handler.describe(),
            }));
        }
        if let Some(depth) = self.bus.depth(&self.input) {
            self.metrics.set_queue_depth(self.input.as_str(), depth);
        }
        json!({
            "runtime": self.name,
            "state": self.state().as_str(),
            "handlers": handlers,
            "bus": self.bus.health_check().await,
        })
    }

    /// The metrics text, with the bus queue depths and the memory held read now.
    pub fn metrics_text(&self) -> String {
        self.metrics
            .set_memory(self.budget.held(), self.budget.total());
        for topic in [&self.input, &self.output] {
            if let Some(depth) = self.bus.depth(topic) {
                self.metrics.set_queue_depth(topic.as_str(), depth);
            }
        }
        self.metrics.encode()
    }

    /// What this host wires, for `--dry-run`: handlers, nodes, bus and topics.
    pub fn wiring_summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "runtime: {}", self.name);
        let _ = writeln!(out, "event bus: {}", self.bus.kind());
        let _ = writeln!(out, "  input topic:  {}", self.input);
        let _ = writeln!(out, "  output topic: {}", self.output);
        let _ = writeln!(out, "handlers:");
        for (binding, handler) in self.runtime.bindings() {
            let _ = writeln!(
                out,
                "  {binding} ({}): {}",
                handler.name(),
                handler.describe().supported_operations.join(", ")
            );
        }
        let _ = writeln!(out, "nodes:");
        for node in self.runtime.nodes() {
            let _ = writeln!(out, "  {} ({})", node.slug(), node.node_type().as_str());
            for entry in &node.contract().io_operations {
                let target = entry
                    .target
                    .as_ref()
                    .map_or(String::new(), |t| format!(" -> {t}"));
                let binding = entry
                    .binding
                    .as_ref()
                    .map_or(String::new(), |name| format!(" on {name}"));
                let _ = writeln!(
                    out,
                    "    {}: {}{target}{binding}",
                    entry.handler_type,
                    entry.operations.join(", ")
                );
            }
        }
        out
    }
}
