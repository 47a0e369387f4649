//! The runtime host process: owns the bus, drives the runtime, publishes every response.
//!
//! Lifecycle: [`RuntimeHost::start`] initialises each handler once and subscribes to the
//! input topic; [`RuntimeHost::run`] consumes messages one at a time, in order, and
//! publishes one response per message (a result or an error envelope) to the output
//! topic; [`RuntimeHost::shutdown`] shuts each handler down exactly once and closes the
//! bus. `shutdown` consumes the host, so it cannot run twice; call it whatever `start`
//! or `run` returned.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;

use futures_lite::{StreamExt, future};

use crate::bus::{EventBus, Subscription, Topic};
use crate::envelope::Envelope;
use crate::envelope::parse::parse_request;
use crate::error::{ErrorKind, RuntimeHostError};
use crate::runtime::NodeRuntime;
use crate::wiring::handler_name;

/// A runtime host: one runtime, one bus, one input and one output topic.
pub struct RuntimeHost {
    name: String,
    runtime: NodeRuntime,
    bus: Arc<dyn EventBus>,
    input: Topic,
    output: Topic,
}

impl RuntimeHost {
    /// A host named `name` that serves `runtime` on `bus`, from `input` to `output`.
    pub fn new(
        name: String,
        runtime: NodeRuntime,
        bus: Arc<dyn EventBus>,
        input: Topic,
        output: Topic,
    ) -> Self {
        RuntimeHost {
            name,
            runtime,
            bus,
            input,
            output,
        }
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

    /// Initialises every handler once, subscribes to the input topic and starts the bus.
    pub async fn start(&self) -> Result<Subscription, RuntimeHostError> {
        for handler in self.runtime.handlers() {
            handler.initialize().await.map_err(|source| {
                ErrorKind::ProtocolConfiguration(format!(
                    "{} failed to initialise: {source}",
                    handler_name(handler.handler_type())
                ))
            })?;
        }
        let subscription = self.bus.subscribe(&self.input)?;
        log::info!("Starting event bus: {}", self.bus.kind());
        self.bus.start_consuming().await?;
        log::info!(
            "Runtime host '{}' ready. Listening on topic: {}",
            self.name,
            self.input
        );
        Ok(subscription)
    }

    /// Answers every message from `inputs`, in order, until the stream ends or `stop`
    /// completes; returns how many messages were answered.
    ///
    /// A message taken from the stream is always answered before `stop` is looked at
    /// again. Fails only if a response cannot be published.
    pub async fn run(
        &self,
        mut inputs: Subscription,
        stop: impl Future<Output = ()>,
    ) -> Result<u64, RuntimeHostError> {
        let mut stop = pin!(stop);
        let mut answered = 0;
        loop {
            let next = future::or(async { Some(inputs.next().await) }, async {
                stop.as_mut().await;
                None
            });
            let Some(Some(message)) = next.await else {
                return Ok(answered);
            };
            let response = self.process(&message).await;
            if let Err(error) = self.bus.publish_envelope(&response, &self.output).await {
                log::error!(
                    "response {} to correlation_id {} could not be published: {error}",
                    response.envelope_id,
                    response.correlation_id
                );
                return Err(error.into());
            }
            answered += 1;
        }
    }

    /// Reads one message as a request, routes it, and returns its response.
    pub async fn process(&self, message: &[u8]) -> Envelope {
        let stamp = self.runtime.stamp();
        let response = match parse_request(message, stamp) {
            Ok(request) => self.runtime.route_envelope(request).await,
            Err(rejected) => rejected.respond(stamp),
        };
        log_outcome(&response);
        response
    }

    /// Shuts every handler down exactly once, then closes the bus.
    pub async fn shutdown(self) {
        for handler in self.runtime.handlers() {
            log::info!(
                "Shutting down handler: {}",
                handler_name(handler.handler_type())
            );
            handler.shutdown().await;
        }
        self.bus.close();
        log::info!("Runtime host '{}' stopped", self.name);
    }

    /// What this host would wire, for `--dry-run`: handlers, nodes, bus and topics.
    pub fn wiring_summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "runtime: {}", self.name);
        let _ = writeln!(out, "event bus: {}", self.bus.kind());
        let _ = writeln!(out, "  input topic:  {}", self.input);
        let _ = writeln!(out, "  output topic: {}", self.output);
        let _ = writeln!(out, "handlers:");
        for handler in self.runtime.handlers() {
            let description = handler.describe();
            let _ = writeln!(
                out,
                "  {} ({}): {}",
                handler.handler_type(),
                handler_name(handler.handler_type()),
                description.supported_operations.join(", ")
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
                let _ = writeln!(
                    out,
                    "    {}: {}{target}",
                    entry.handler_type,
                    entry.operations.join(", ")
                );
            }
        }
        out
    }
}

/// One line per answered envelope: successes at debug level, failures at info.
fn log_outcome(response: &Envelope) {
    let operation = response.operation.as_deref().unwrap_or("-");
    let node = response.source_node.as_deref().unwrap_or("-");
    match &response.error {
        None => log::debug!(
            "correlation_id={} envelope_id={} node={node} operation={operation}: ok",
            response.correlation_id,
            response.envelope_id
        ),
        Some(error) => log::info!(
            "correlation_id={} envelope_id={} node={node} operation={operation}: {} {}",
            response.correlation_id,
            response.envelope_id,
            error.code,
            error.message
        ),
    }
}
