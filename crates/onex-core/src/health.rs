//! What handlers and buses report from `health_check()`.

use serde::Serialize;
use serde_json::Value;

use crate::envelope::Payload;

/// A component's health: healthy or not, plus component-specific facts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HealthReport {
    /// Whether the component can serve requests now.
    pub healthy: bool,
    /// Whether it serves only some of them: up, but a dependency behind it is failing
    /// (an open circuit breaker answers at once instead of calling it). Readiness stays
    /// as `healthy` says, and names the degraded components.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub degraded: bool,
    /// Component-specific facts, e.g. `dev_test_only` or queue depths.
    #[serde(flatten)]
    pub details: Payload,
}

impl HealthReport {
    /// A report of `healthy` with no details.
    pub fn new(healthy: bool) -> Self {
        HealthReport {
            healthy,
            degraded: false,
            details: Payload::new(),
        }
    }

    /// Adds the fact `name: value`.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.details.insert(name.to_owned(), value.into());
        self
    }
}
