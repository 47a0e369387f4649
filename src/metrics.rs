//! Prometheus metrics: what the host counts, in the OpenMetrics text format `/metrics` serves.
//!
//! | metric | labels |
//! | --- | --- |
//! | `onex_envelopes_received_total` | `handler_type`, `operation` |
//! | `onex_envelopes_answered_total` | `handler_type`, `operation`, `outcome` (`success` or the error code) |
//! | `onex_envelope_duration_seconds` (histogram) | `handler_type`, `operation` |
//! | `onex_envelopes_in_flight` | |
//! | `onex_bus_queue_depth` | `topic` |
//! | `onex_memory_held_bytes`, `onex_memory_budget_bytes` | |
//!
//! Label values come from closed sets, never straight from a request, so a caller cannot
//! grow the registry: an unknown handler type is `unknown`, an operation no registered
//! handler supports (by its description) is `other`.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::envelope::Envelope;
use crate::envelope::operation_domain;
use crate::error::ErrorCode;
use crate::handler::{Description, HandlerType};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    handler_type: &'static str,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    handler_type: &'static str,
    operation: String,
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
    /// The operations label values name: every one a registered handler supports.
    operations: Vec<String>,
    received: Family<Request, Counter>,
    answered: Family<Outcome, Counter>,
    duration: DurationFamily,
    series: Series,
    in_flight: Gauge,
    queue_depth: Family<Queue, Gauge>,
    memory_held: Gauge,
    memory_budget: Gauge,
}

impl Metrics {
    /// Fresh, zeroed metrics for a host with the handlers `described`.
    pub fn new(described: &[Description]) -> Self {
        let operations: Vec<String> = described
            .iter()
            .flat_map(|description| description.supported_operations.iter().cloned())
            .collect();
        let mut registry = Registry::with_prefix("onex");
        let received = Family::<Request, Counter>::default();
        let answered = Family::<Outcome, Counter>::default();
        // 100 µs to about 52 s: loopback echo to the handlers' 30 s limits.
        let duration: DurationFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0001, 2.0, 20)));
        let in_flight = Gauge::default();
        let queue_depth = Family::<Queue, Gauge>::default();
        let (memory_held, memory_budget) = (Gauge::default(), Gauge::default());
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
        registry.register(
            "memory_held_bytes",
            "Bytes of requests and responses charged to the memory budget now",
            memory_held.clone(),
        );
        registry.register(
            "memory_budget_bytes",
            "Bytes of requests and responses the host may hold at once",
            memory_budget.clone(),
        );
        Metrics {
            registry,
            series: Series::new(operations.len() + 1),
            operations,
            received,
            answered,
            duration,
            in_flight,
            queue_depth,
            memory_held,
            memory_budget,
        }
    }

    /// Adds `collector`'s figures to what `/metrics` serves.
    pub fn register_collector(&mut self, collector: Box<dyn Collector>) {
        self.registry.register_collector(collector);
    }

    /// Counts a request taken in.
    pub fn received(&self, request: &Envelope) {
        let at = self.labels(
            request.handler_type.as_deref(),
            request.operation.as_deref(),
        );
        self.series.received[at.series]
            .get_or_init(|| self.received.get_or_create(&self.request(at)).clone())
            .inc();
    }

    /// Counts `response`, which took `elapsed` to produce.
    pub fn answered(&self, response: &Envelope, elapsed: Duration) {
        let at = self.labels(
            response.handler_type.as_deref(),
            response.operation.as_deref(),
        );
        let outcome = response.error.as_ref().map_or(0, |error| {
            1 + ErrorCode::ALL
                .iter()
                .position(|code| *code == error.code)
                .unwrap_or(0)
        });
        self.series.answered[at.series * OUTCOMES + outcome]
            .get_or_init(|| {
                let Request {
                    handler_type,
                    operation,
                } = self.request(at);
                let outcome = match outcome {
                    0 => "success",
                    n => ErrorCode::ALL[n - 1].as_str(),
                };
                let labels = Outcome {
                    handler_type,
                    operation,
                    outcome,
                };
                self.answered.get_or_create(&labels).clone()
            })
            .inc();
        self.series.duration[at.series]
            .get_or_init(|| self.duration.get_or_create(&self.request(at)).clone())
            .observe(elapsed.as_secs_f64());
    }

    /// The gauge of requests in flight.
    pub fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }

    /// Records how much of the memory budget (`budget` bytes) is `held` now.
    pub fn set_memory(&self, held: u64, budget: u64) {
        self.memory_held
            .set(i64::try_from(held).unwrap_or(i64::MAX));
        self.memory_budget
            .set(i64::try_from(budget).unwrap_or(i64::MAX));
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

/// Handler type label values: the known types, then `unknown`.
const HANDLER_TYPES: usize = HandlerType::ALL.len() + 1;
/// Outcome label values: `success`, then every error code.
const OUTCOMES: usize = ErrorCode::ALL.len() + 1;

/// Handles to the series in use, by label values. A family finds a series by hashing its
/// labels under a lock; each envelope counts three times, so the host keeps the handles
/// (which share the family's values) and counts with one atomic add. Series are still
/// created on first use only, so `/metrics` lists what happened.
#[derive(Debug)]
struct Series {
    received: Vec<OnceLock<Counter>>,
    duration: Vec<OnceLock<Histogram>>,
    answered: Vec<OnceLock<Counter>>,
}

impl Series {
    /// Slots for every handler type with each of `operations` label values.
    fn new(operations: usize) -> Self {
        fn slots<T>(n: usize) -> Vec<OnceLock<T>> {
            (0..n).map(|_| OnceLock::new()).collect()
        }
        Series {
            received: slots(HANDLER_TYPES * operations),
            duration: slots(HANDLER_TYPES * operations),
            answered: slots(HANDLER_TYPES * operations * OUTCOMES),
        }
    }
}

/// Bounded label values for a handler type and an operation, as indices into the closed
/// sets: [`HandlerType::ALL`] then `unknown`, the metrics' operations then `other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Labels {
    handler_type: usize,
    operation: usize,
    /// The pair's index among every pair.
    series: usize,
}

impl Metrics {
    fn labels(&self, handler_type: Option<&str>, operation: Option<&str>) -> Labels {
        let handler_type = handler_type
            .or_else(|| operation.and_then(operation_domain))
            .and_then(HandlerType::from_name)
            .and_then(|known| HandlerType::ALL.iter().position(|t| *t == known))
            .unwrap_or(HandlerType::ALL.len());
        let operation = operation
            .and_then(|op| self.operations.iter().position(|known| known == op))
            .unwrap_or(self.operations.len());
        Labels {
            handler_type,
            operation,
            series: handler_type * (self.operations.len() + 1) + operation,
        }
    }

    fn request(&self, at: Labels) -> Request {
        let handler_type = HandlerType::ALL
            .get(at.handler_type)
            .map_or("unknown", |t| t.as_str());
        let operation = self
            .operations
            .get(at.operation)
            .map_or("other", String::as_str);
        Request {
            handler_type,
            operation: operation.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Metrics {
        let described = |operations: &[&str]| Description {
            handler_type: HandlerType::Local,
            version: "1.0.0".into(),
            supported_operations: operations.iter().map(|op| (*op).to_owned()).collect(),
            required_payload_fields: Vec::new(),
            response_shape: Default::default(),
            limits: Default::default(),
        };
        Metrics::new(&[
            described(&["db.query", "db.execute"]),
            described(&["http.get", "local.echo"]),
        ])
    }

    #[test]
    fn label_values_come_from_closed_sets() {
        let metrics = metrics();
        let names = |handler_type, operation| {
            let Request {
                handler_type,
                operation,
            } = metrics.request(metrics.labels(handler_type, operation));
            (handler_type, operation)
        };
        assert_eq!(
            names(Some("db"), Some("db.query")),
            ("db", "db.query".into())
        );
        assert_eq!(
            names(Some("vault"), Some("vault.read")),
            ("unknown", "other".into())
        );
        assert_eq!(names(None, Some("local.x")), ("local", "other".into()));
        assert_eq!(names(None, Some("http.get")), ("http", "http.get".into()));
        assert_eq!(names(None, None), ("unknown", "other".into()));
    }

    #[test]
    fn every_label_pair_has_its_own_series() {
        let metrics = metrics();
        let pairs = HANDLER_TYPES * (metrics.operations.len() + 1);
        let mut seen = std::collections::HashSet::new();
        for handler_type in ["http", "db", "local", "vault"] {
            for operation in metrics
                .operations
                .iter()
                .map(String::as_str)
                .chain(["nope.x"])
            {
                let at = metrics.labels(Some(handler_type), Some(operation));
                assert!(at.series < pairs);
                seen.insert(at.series);
            }
        }
        assert_eq!(seen.len(), pairs);
    }
}
