//! Prometheus metrics: what the host counts, in the OpenMetrics text format `/metrics` serves.
//!
//! | metric | labels |
//! | --- | --- |
//! | `onex_envelopes_received_total` | `handler_type`, `operation` |
//! | `onex_envelopes_answered_total` | `handler_type`, `operation`, `outcome` (`success` or the error code) |
//! | `onex_envelope_duration_seconds` (histogram) | `handler_type`, `operation` |
//! | `onex_envelopes_in_flight` | |
//! | `onex_bus_queue_depth` | `topic` |
//!
//! Label values come from closed sets, never straight from a request, so a caller cannot
//! grow the registry: an unknown handler type is `unknown`, an operation no handler
//! supports is `other`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::envelope::Envelope;
use crate::envelope::operation_domain;
use crate::handler::HandlerType;
use crate::handlers::{db, http, local};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    handler_type: &'static str,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    handler_type: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Queue {
    topic: String,
}

type DurationFamily = Family<Request, Histogram, fn() -> Histogram>;

/// The host's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    received: Family<Request, Counter>,
    answered: Family<Outcome, Counter>,
    duration: DurationFamily,
    in_flight: Gauge,
    queue_depth: Family<Queue, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh, zeroed metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("onex");
        let received = Family::<Request, Counter>::default();
        let answered = Family::<Outcome, Counter>::default();
        // 100 µs to about 52 s: loopback echo to the handlers' 30 s limits.
        let duration: DurationFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0001, 2.0, 20)));
        let in_flight = Gauge::default();
        let queue_depth = Family::<Queue, Gauge>::default();
        registry.register(
            "envelopes_received",
            "Request envelopes taken in",
            received.clone(),
        );
        registry.register(
            "envelopes_answered",
            "Response envelopes produced, by outcome",
            answered.clone(),
        );
        registry.register(
            "envelope_duration_seconds",
            "Time from routing a request to its response",
            duration.clone(),
        );
        registry.register(
            "envelopes_in_flight",
            "Requests being handled now",
            in_flight.clone(),
        );
        registry.register(
            "bus_queue_depth",
            "Messages waiting on a bus topic",
            queue_depth.clone(),
        );
        Metrics {
            registry,
            received,
            answered,
            duration,
            in_flight,
            queue_depth,
        }
    }

    /// Counts a request taken in.
    pub fn received(&self, request: &Envelope) {
        let (handler_type, operation) = labels(
            request.handler_type.as_deref(),
            request.operation.as_deref(),
        );
        self.received
            .get_or_create(&Request {
                handler_type,
                operation,
            })
            .inc();
    }

    /// Counts `response`, which took `elapsed` to produce.
    pub fn answered(&self, response: &Envelope, elapsed: Duration) {
        let (handler_type, operation) = labels(
            response.handler_type.as_deref(),
            response.operation.as_deref(),
        );
        let outcome = response
            .error
            .as_ref()
            .map_or("success", |error| error.code.as_str());
        self.answered
            .get_or_create(&Outcome {
                handler_type,
                operation,
                outcome,
            })
            .inc();
        self.duration
            .get_or_create(&Request {
                handler_type,
                operation,
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The gauge of requests in flight.
    pub fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }

    /// Records how many messages wait on `topic`.
    pub fn set_queue_depth(&self, topic: &str, depth: usize) {
        let depth = i64::try_from(depth).unwrap_or(i64::MAX);
        self.queue_depth
            .get_or_create(&Queue {
                topic: topic.to_owned(),
            })
            .set(depth);
    }

    /// Everything, in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Bounded label values for a handler type and an operation.
fn labels(handler_type: Option<&str>, operation: Option<&str>) -> (&'static str, &'static str) {
    let handler_type = handler_type
        .or_else(|| operation.and_then(operation_domain))
        .and_then(HandlerType::from_name)
        .map_or("unknown", HandlerType::as_str);
    let known = [http::OPERATIONS, db::OPERATIONS, local::OPERATIONS];
    let operation = operation
        .and_then(|op| {
            known
                .iter()
                .flat_map(|ops| ops.iter())
                .find(|known| **known == op)
        })
        .map_or("other", |op| *op);
    (handler_type, operation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_come_from_closed_sets() {
        assert_eq!(labels(Some("db"), Some("db.query")), ("db", "db.query"));
        assert_eq!(
            labels(Some("vault"), Some("vault.read")),
            ("unknown", "other")
        );
        assert_eq!(labels(None, Some("local.x")), ("local", "other"));
        assert_eq!(labels(None, Some("http.get")), ("http", "http.get"));
        assert_eq!(labels(None, None), ("unknown", "other"));
    }
}
