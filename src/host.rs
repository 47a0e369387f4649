//! The runtime host process: owns the bus, drives the runtime, answers every request.
//!
//! Lifecycle: [`RuntimeHost::start`] initialises each handler once and subscribes to the
//! input topic (the host is *starting* until then, *ready* after); [`RuntimeHost::consume`]
//! answers the input topic's messages, at most `max_in_flight` at a time; the HTTP API
//! calls [`RuntimeHost::parse`] and [`RuntimeHost::route`] directly for request/reply.
//! [`RuntimeHost::begin_drain`] makes the host *draining* (not ready, no new input);
//! [`RuntimeHost::shutdown`] shuts each handler down exactly once and closes the bus.
//!
//! Every request taken in is answered exactly once: a result, an error envelope, or,
//! when the shutdown grace runs out, a failure saying the host stopped first.

mod consume;
mod report;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_lock::{Semaphore, SemaphoreGuard};
use prometheus_client::collector::Collector;
use prometheus_client::metrics::gauge::Gauge;

use crate::budget::{Budget, Charge};
use crate::bus::{EventBus, Subscription, Topic};
use crate::envelope::parse::parse_request;
use crate::envelope::{Envelope, EnvelopeError, Request, RequestContext};
use crate::error::{ErrorContext, ErrorKind, HostError, RequestError};
use crate::metrics::{Labels, Metrics};
use crate::runtime::NodeRuntime;

pub use report::Readiness;

/// How many bytes of requests and responses a host holds at once, unless told otherwise:
/// with the bus's queues and the process itself, inside a 128 MiB container.
pub const DEFAULT_MEMORY_BUDGET: u64 = 48 * 1024 * 1024;

/// Where the host is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostState {
    /// Handlers are being initialised: not ready.
    Starting,
    /// Taking requests.
    Ready,
    /// Finishing what it took in; takes nothing new: not ready.
    Draining,
}

impl HostState {
    /// The state's name, as health reports show it.
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Starting => "starting",
            HostState::Ready => "ready",
            HostState::Draining => "draining",
        }
    }
}

/// A runtime host: one runtime, one bus, one input and one output topic.
pub struct RuntimeHost {
    name: String,
    runtime: NodeRuntime,
    bus: Arc<dyn EventBus>,
    input: Topic,
    output: Topic,
    metrics: Metrics,
    state: AtomicU8,
    slots: Semaphore,
    max_in_flight: usize,
    budget: Arc<Budget>,
    cut_short: AtomicU64,
    shut_down: AtomicBool,
}

/// A request the host took in: it passed routing step 1 and was counted under its
/// labels, which its response is counted under too (looked up once, not per count).
#[derive(Debug)]
pub struct Received {
    request: Request,
    labels: Labels,
}

impl Received {
    /// The request, to take apart.
    pub fn into_request(self) -> Request {
        self.request
    }
}

/// Read access only, as [`Request`]'s.
impl std::ops::Deref for Received {
    type Target = Request;

    fn deref(&self) -> &Request {
        &self.request
    }
}

/// Permission to handle one request; the slot is freed when it is dropped.
///
/// Borrowed from the host, not shared: every clone and drop of an `Arc` is an atomic
/// operation, and a ticket that owned its semaphore and gauge cost four more of them.
pub struct Ticket<'a> {
    _slot: SemaphoreGuard<'a>,
    in_flight: &'a Gauge,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

impl RuntimeHost {
    /// A host named `name` that serves `runtime` on `bus`, from `input` to `output`,
    /// handling at most `max_in_flight` requests at once (at least one).
    pub fn new(
        name: String,
        runtime: NodeRuntime,
        bus: Arc<dyn EventBus>,
        input: Topic,
        output: Topic,
        max_in_flight: usize,
    ) -> Self {
        let max_in_flight = max_in_flight.max(1);
        let metrics = Metrics::new(&runtime);
        RuntimeHost {
            name,
            runtime,
            bus,
            input,
            output,
            metrics,
            state: AtomicU8::new(HostState::Starting as u8),
            slots: Semaphore::new(max_in_flight),
            max_in_flight,
            budget: Budget::new(DEFAULT_MEMORY_BUDGET),
            cut_short: AtomicU64::new(0),
            shut_down: AtomicBool::new(false),
        }
    }

    /// The host, with `collector`'s figures in its `/metrics` (its bus's, say).
    #[must_use]
    pub fn with_collector(mut self, collector: Box<dyn Collector>) -> Self {
        self.metrics.register_collector(collector);
        self
    }

    /// The host, holding at most `bytes` of requests and responses at once.
    #[must_use]
    pub fn with_memory_budget(mut self, bytes: u64) -> Self {
        self.budget = Budget::new(bytes);
        self
    }

    /// The budget everything the host holds is charged to.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// The runtime's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The runtime this host drives.
    pub fn runtime(&self) -> &NodeRuntime {
        &self.runtime
    }

    /// The bus this host owns.
    pub fn bus(&self) -> &Arc<dyn EventBus> {
        &self.bus
    }

    /// The topic requests are consumed from.
    pub fn input_topic(&self) -> &Topic {
        &self.input
    }

    /// The topic responses are published to.
    pub fn output_topic(&self) -> &Topic {
        &self.output
    }

    /// The host's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Where the host is in its life.
    pub fn state(&self) -> HostState {
        match self.state.load(Ordering::Acquire) {
            0 => HostState::Starting,
            1 => HostState::Ready,
            _ => HostState::Draining,
        }
    }

    fn set_state(&self, state: HostState) {
        self.state.store(state as u8, Ordering::Release);
    }

    /// Initialises every handler once, subscribes to the input topic and starts the bus;
    /// the host is ready afterwards.
    pub async fn start(&self) -> Result<Subscription, HostError> {
        for (binding, handler) in self.runtime.bindings() {
            handler.initialize().await.map_err(|source| {
                let name = handler.name();
                // An unnamed binding keeps the message it had before bindings had names.
                let named = if binding == handler.handler_type().as_str() {
                    String::new()
                } else {
                    format!(" (binding {binding})")
                };
                HostError::Configuration(format!("{name}{named} failed to initialise: {source}"))
            })?;
        }
        let subscription = self.bus.subscribe(&self.input)?;
        log::info!("Starting event bus: {}", self.bus.kind());
        self.bus.start_consuming().await?;
        if self.state() == HostState::Starting {
            self.set_state(HostState::Ready);
        }
        log::info!(
            "Runtime host '{}' ready. Listening on topic: {}",
            self.name,
            self.input
        );
        Ok(subscription)
    }

    /// Marks the host draining: not ready, taking no new requests, finishing the rest.
    /// (Closing the input topic is for whoever publishes to it.)
    pub fn begin_drain(&self) {
        if self.state() != HostState::Draining {
            log::info!("Draining: no new requests; finishing those in flight");
            self.set_state(HostState::Draining);
        }
    }

    /// The failure response for a request refused or cut short by shutdown: `started`
    /// says whether a handler had begun on it.
    pub fn refuse(&self, context: RequestContext, started: bool) -> Envelope {
        let error = RequestError::new(ErrorKind::ShutDown { started }, ErrorContext::of(&context));
        let response = context.respond(Err(error.to_body()), self.runtime.stamp());
        let labels = self.metrics.labels_of(&response);
        self.metrics.answered(labels, &response, Duration::ZERO);
        self.log_outcome(&response, labels);
        response
    }

    /// Records `count` requests answered with a failure because the grace ran out.
    pub fn note_cut_short(&self, count: u64) {
        self.cut_short.fetch_add(count, Ordering::AcqRel);
    }

    /// How many requests the shutdown deadline cut short.
    pub fn cut_short(&self) -> u64 {
        self.cut_short.load(Ordering::Acquire)
    }

    /// Waits for a free slot; at most `max_in_flight` tickets exist at once.
    pub async fn admit(&self) -> Ticket<'_> {
        let slot = self.slots.acquire().await;
        self.metrics.in_flight().inc();
        Ticket {
            _slot: slot,
            in_flight: self.metrics.in_flight(),
        }
    }

    /// Whether a slot is free now.
    pub fn has_room(&self) -> bool {
        self.slots.available_permits() > 0
    }

    /// Waits until a slot is free, without taking it.
    pub async fn room(&self) {
        drop(self.slots.acquire().await);
    }

    /// Waits until no request is in flight.
    pub async fn idle(&self) {
        let mut all = Vec::with_capacity(self.max_in_flight);
        for _ in 0..self.max_in_flight {
            all.push(self.slots.acquire().await);
        }
    }

    /// Reads `message` as a request, counted as taken in; a message that is not one gets
    /// its error response.
    pub fn parse(&self, message: &[u8]) -> Result<Received, Box<Envelope>> {
        match parse_request(message, self.runtime.stamp()) {
            Ok(request) => {
                let labels = self.metrics.received(&request);
                Ok(Received { request, labels })
            }
            Err(rejected) => {
                let response = rejected.respond(self.runtime.stamp());
                let labels = self.metrics.unreadable(&response);
                self.log_outcome(&response, labels);
                Err(Box::new(response))
            }
        }
    }

    /// The error response to input that could not be read as a request at all.
    pub fn reject(&self, error: EnvelopeError) -> Envelope {
        let stamp = self.runtime.stamp();
        let context = RequestContext {
            correlation_id: stamp.next_id(),
            ..RequestContext::default()
        };
        let error = RequestError::new(ErrorKind::Envelope(error), ErrorContext::of(&context));
        let response = context.respond(Err(error.to_body()), stamp);
        let labels = self.metrics.unreadable(&response);
        self.log_outcome(&response, labels);
        response
    }

    /// Routes a parsed request and returns its response; what its handler holds is
    /// charged to `charge`.
    pub async fn route(&self, received: Received, charge: Charge) -> Box<Envelope> {
        let Received { request, labels } = received;
        let started = Instant::now();
        let response = self.runtime.route(request, charge).await;
        self.metrics.answered(labels, &response, started.elapsed());
        self.log_outcome(&response, labels);
        response
    }

    /// Reads one message as a request, routes it, and returns its response (charging
    /// nothing to the memory budget).
    pub async fn process(&self, message: &[u8]) -> Box<Envelope> {
        match self.parse(message) {
            Ok(request) => self.route(request, Charge::unlimited()).await,
            Err(response) => response,
        }
    }

    /// Shuts every handler down exactly once (later calls do nothing), then closes the bus.
    pub async fn shutdown(&self) {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return;
        }
        self.set_state(HostState::Draining);
        for (binding, handler) in self.runtime.bindings() {
            log::info!(
                "Shutting down handler: {} (binding {binding})",
                handler.name()
            );
            handler.shutdown().await;
        }
        self.bus.close();
        log::info!("Runtime host '{}' stopped", self.name);
    }

    /// One line per answered envelope, with its ids and the binding its metrics name
    /// (`labels`): successes at debug level, failures at info.
    fn log_outcome(&self, response: &Envelope, labels: Labels) {
        let level = if response.error.is_some() {
            log::Level::Info
        } else {
            log::Level::Debug
        };
        if !log::log_enabled!(level) {
            return;
        }
        let correlation_id = response.correlation_id.to_string();
        let envelope_id = response
            .causation_id
            .map_or_else(|| "-".to_owned(), |id| id.to_string());
        let node = response.source_node.as_deref().unwrap_or("-");
        let handler_type = response.handler_type.as_deref().unwrap_or("-");
        let binding = self.metrics.binding(labels);
        let operation = response.operation.as_deref().unwrap_or("-");
        match &response.error {
            None => log::debug!(
                correlation_id = correlation_id.as_str(), envelope_id = envelope_id.as_str(), node,
                handler_type, binding, operation;
                "answered: ok"
            ),
            Some(error) => log::info!(
                correlation_id = correlation_id.as_str(), envelope_id = envelope_id.as_str(), node,
                handler_type, binding, operation, code = error.code.as_str();
                "answered: {}", error.message
            ),
        }
    }
}
