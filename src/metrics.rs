//! Prometheus metrics: what the host counts, in the OpenMetrics text format `/metrics` serves.
//!
//! | metric | labels |
//! | --- | --- |
//! | `onex_envelopes_received_total` | `handler_type`, `binding`, `operation` |
//! | `onex_envelopes_answered_total` | `handler_type`, `binding`, `operation`, `outcome` (`success` or the error code) |
//! | `onex_envelope_duration_seconds` (histogram) | `handler_type`, `binding`, `operation` |
//! | `onex_envelopes_in_flight` | |
//! | `onex_bus_queue_depth` | `topic` |
//! | `onex_memory_held_bytes`, `onex_memory_budget_bytes` | |
//!
//! Label values come from closed sets, never straight from a request, so a caller cannot
//! grow the registry: an unknown handler type is `unknown`, an operation no registered
//! handler supports (by its description) is `other`, and a request no binding runs (its
//! node is not hosted, or does not declare the operation; or it was not a routable
//! request at all) has binding `none` (the `labels` module).

mod labels;

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
use crate::error::ErrorCode;
use crate::runtime::NodeRuntime;
pub use labels::Labels;
use labels::{LabelSets, OUTCOMES};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    handler_type: &'static str,
    binding: String,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    handler_type: &'static str,
    binding: String,
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
    /// The label values there are, and which ones each hosted node's operations get.
    labels: LabelSets,
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
    /// Fresh, zeroed metrics for a host running `runtime`, every handler and node of
    /// which is registered.
    pub fn new(runtime: &NodeRuntime) -> Self {
        let labels = LabelSets::new(runtime);
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
            series: Series::new(labels.combinations()),
            labels,
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

    /// Counts a request taken in; returns the labels it was counted under, which its
    /// response is counted under too ([`Metrics::answered`]).
    pub fn received(&self, request: &Envelope) -> Labels {
        let at = self.labels.of(
            request.target_node.as_deref(),
            request.handler_type.as_deref(),
            request.operation.as_deref(),
        );
        self.count_received(at);
        at
    }

    /// The labels of `response`, the answer to a request [`Metrics::received`] counted:
    /// the same as that request's.
    pub fn labels_of(&self, response: &Envelope) -> Labels {
        // A response comes from its request's target node.
        self.labels.of(
            response.source_node.as_deref(),
            response.handler_type.as_deref(),
            response.operation.as_deref(),
        )
    }

    /// Counts `response`, which took `elapsed` to produce, under `at`: its request's labels.
    pub fn answered(&self, at: Labels, response: &Envelope, elapsed: Duration) {
        self.count_answered(at, response, elapsed);
    }

    /// Counts input that was not a routable request, taken in and answered at once with
    /// `response`, under binding `none`; returns the labels it was counted under.
    pub fn unreadable(&self, response: &Envelope) -> Labels {
        let at = self.labels.of(
            None,
            response.handler_type.as_deref(),
            response.operation.as_deref(),
        );
        self.count_received(at);
        self.count_answered(at, response, Duration::ZERO);
        at
    }

    /// The binding label value of `at`: a binding's name, or `none`.
    pub fn binding(&self, at: Labels) -> &str {
        self.labels.names(at).1
    }

    fn count_received(&self, at: Labels) {
        self.series.received[at.series]
            .get_or_init(|| self.received.get_or_create(&self.request(at)).clone())
            .inc();
    }

    fn count_answered(&self, at: Labels, response: &Envelope, elapsed: Duration) {
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
                    binding,
                    operation,
                } = self.request(at);
                let outcome = match outcome {
                    0 => "success",
                    n => ErrorCode::ALL[n - 1].as_str(),
                };
                let labels = Outcome {
                    handler_type,
                    binding,
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

    fn request(&self, at: Labels) -> Request {
        let (handler_type, binding, operation) = self.labels.names(at);
        Request {
            handler_type,
            binding: binding.to_owned(),
            operation: operation.to_owned(),
        }
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
    /// Slots for `combinations` of label values, each with every outcome.
    fn new(combinations: usize) -> Self {
        fn slots<T>(n: usize) -> Vec<OnceLock<T>> {
            (0..n).map(|_| OnceLock::new()).collect()
        }
        Series {
            received: slots(combinations),
            duration: slots(combinations),
            answered: slots(combinations * OUTCOMES),
        }
    }
}
