//! Wiring: the single source of truth for which handler and bus kinds exist and how
//! each is built from the contract.
//!
//! The sets are closed, so registration is a `match`, checked by the compiler: a new
//! protocol is one [`HandlerType`] variant, one file under `handlers/`, one arm here.
//! Nothing else in the crate constructs handlers or buses. Wiring also applies each
//! binary's policy ([`Profile`]), wraps every handler in the layers its binding's
//! `config` asks for ([`crate::layers`]), and checks every node's declared operations
//! against what its handler's `describe()` says it supports.

use std::sync::Arc;

use crate::bus::EventBus;
use crate::bus::inmemory::InMemoryEventBus;
use crate::contract::{ContractError, EventBusConfig, HandlerEntry, Problem, RuntimeHostContract};
use crate::envelope::Stamp;
use crate::error::HostError;
use crate::handler::{Handler, HandlerType};
use crate::handlers::db::HandlerDb;
use crate::handlers::http::HttpHandler;
use crate::handlers::local::LocalHandler;
use crate::host::RuntimeHost;
use crate::kafka::{KafkaEventBus, KafkaMetrics};
use crate::layers::{self, Clock, SystemClock};
use crate::runtime::{NodeInstance, NodeRuntime};

/// Which binary is wiring, and so which handlers it may register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `omnibase-runtime-host`: http and db; refuses `local`.
    Production,
    /// `omninode-runtime-host-dev`: `local` only.
    Development,
}

impl Profile {
    /// The binary's name.
    pub fn binary(self) -> &'static str {
        match self {
            Profile::Production => "omnibase-runtime-host",
            Profile::Development => "omninode-runtime-host-dev",
        }
    }

    /// Whether this binary registers handlers of `handler_type`.
    pub fn allows(self, handler_type: HandlerType) -> bool {
        match self {
            Profile::Production => handler_type != HandlerType::Local,
            Profile::Development => handler_type == HandlerType::Local,
        }
    }
}

/// Builds the handler of `handler_type`, without connecting anything.
pub fn build_handler(handler_type: HandlerType) -> Box<dyn Handler> {
    match handler_type {
        HandlerType::Local => Box::new(LocalHandler::new()),
        HandlerType::Http => Box::new(HttpHandler::new()),
        HandlerType::Db => Box::new(HandlerDb::from_env()),
    }
}

/// Builds the handler `entry` binds, set up as its `config` says (the http client's
/// timeout, the db pool's size and statement timeout, the connection string from its
/// `dsn_env` or `dsn_file`) and wrapped in the layers it asks for, timed by `clock`;
/// without a `config`, the bare handler, held to each request's deadline. A connection
/// string that cannot be read is an error naming the binding and its source, never the
/// value.
pub fn build_binding(
    entry: &HandlerEntry,
    clock: &Arc<dyn Clock>,
) -> Result<Box<dyn Handler>, HostError> {
    let config = entry.config.as_ref();
    let handler: Box<dyn Handler> = match (entry.handler_type, config) {
        (HandlerType::Http, Some(config)) => Box::new(HttpHandler::with_timeout(config.timeout)),
        (HandlerType::Db, config) => {
            let db = match config.and_then(|config| config.dsn.as_ref()) {
                Some(source) => HandlerDb::from_source(entry.binding(), source)
                    .map_err(HostError::Configuration)?,
                None => HandlerDb::from_env(),
            };
            let db = db.for_binding(entry.binding());
            Box::new(match config {
                Some(config) => db.configured(
                    config.pool_size.unwrap_or(crate::handlers::db::POOL_SIZE),
                    Some(config.timeout),
                ),
                None => db,
            })
        }
        (handler_type, _) => build_handler(handler_type),
    };
    Ok(layers::wrap(handler, entry.binding(), config, clock))
}

/// Builds the event bus `config` describes for the host `name`, connecting nothing yet,
/// and the collector of its own figures, if it counts any.
pub fn build_bus(config: &EventBusConfig, name: &str) -> (Arc<dyn EventBus>, Option<KafkaMetrics>) {
    match config {
        EventBusConfig::InMemory => (Arc::new(InMemoryEventBus::default()), None),
        EventBusConfig::Kafka(kafka) => {
            let bus = KafkaEventBus::new(kafka.clone(), name);
            let metrics = bus.metrics();
            (Arc::new(bus), Some(metrics))
        }
    }
}

/// Builds the host `contract` describes, as `profile`'s binary allows: handlers
/// registered (not yet initialised), nodes checked against them, bus created; at most
/// `max_in_flight` requests handled at once.
pub fn build_host(
    contract: &RuntimeHostContract,
    profile: Profile,
    stamp: Stamp,
    max_in_flight: usize,
) -> Result<RuntimeHost, HostError> {
    check_profile(contract, profile)?;
    let mut runtime = NodeRuntime::new(stamp);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    for entry in &contract.handlers {
        let handler = build_binding(entry, &clock)?;
        log::info!(
            "Registering handler: {} (binding {})",
            handler.name(),
            entry.binding()
        );
        runtime.register_binding(entry.binding(), handler)?;
    }
    check_node_operations(contract, &runtime)?;
    for node in &contract.nodes {
        log::info!("Loading node: {}", node.slug);
        runtime.register_node(NodeInstance::new(node.contract.clone()))?;
    }
    let (bus, bus_metrics) = build_bus(&contract.event_bus, &contract.name);
    let host = RuntimeHost::new(
        contract.name.clone(),
        runtime,
        bus,
        contract.input_topic(),
        contract.output_topic(),
        max_in_flight,
    );
    Ok(match bus_metrics {
        Some(metrics) => host.with_collector(Box::new(metrics)),
        None => host,
    })
}

/// Refuses handlers the binary does not run, each with its line.
fn check_profile(contract: &RuntimeHostContract, profile: Profile) -> Result<(), ContractError> {
    let problems: Vec<Problem> = contract
        .handlers
        .iter()
        .filter(|entry| !profile.allows(entry.handler_type))
        .map(|entry| match profile {
            Profile::Production => Problem::new(
                &contract.path,
                entry.line,
                "handler type 'local' is forbidden in production",
                "LocalHandler is for development and tests only",
                "remove the local handler, or run omninode-runtime-host-dev",
            ),
            Profile::Development => Problem::new(
                &contract.path,
                entry.line,
                format!(
                    "the dev host registers only the local handler, not '{}'",
                    entry.handler_type
                ),
                "omninode-runtime-host-dev runs LocalHandler alone, for development and tests",
                "remove the handler, or run omnibase-runtime-host",
            ),
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ContractError::new(problems))
    }
}

/// Every declared operation must be one its handler supports; operations of a handler
/// type that is not registered only warn, and are answered `HANDLER_NOT_FOUND`.
fn check_node_operations(
    contract: &RuntimeHostContract,
    runtime: &NodeRuntime,
) -> Result<(), ContractError> {
    let mut problems = Vec::new();
    for node in &contract.nodes {
        for entry in &node.contract.io_operations {
            let handler = runtime
                .handlers()
                .find(|handler| handler.handler_type() == entry.handler_type);
            let Some(handler) = handler else {
                log::warn!(
                    "node '{}' declares {} operations but no {} handler is registered: they will be answered HANDLER_NOT_FOUND",
                    node.slug,
                    entry.handler_type,
                    entry.handler_type
                );
                continue;
            };
            let supported = handler.describe().supported_operations;
            for operation in entry.operations.iter().filter(|op| !supported.contains(op)) {
                problems.push(Problem::new(
                    &node.contract.path,
                    entry.line,
                    format!(
                        "node '{}' declares '{operation}', which the {} handler does not support",
                        node.slug, entry.handler_type
                    ),
                    format!(
                        "the {} handler supports: {}",
                        entry.handler_type,
                        supported.join(", ")
                    ),
                    format!("remove '{operation}' from the node's io_operations"),
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ContractError::new(problems))
    }
}
