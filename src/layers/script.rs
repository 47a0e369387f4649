//! A scripted handler for the layers' tests: each call takes the next step of its
//! script (the last one repeats), on a [`ManualClock`], and is counted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::future::{self, Boxed};
use serde_json::json;
use uuid::Uuid;

use super::clock::{Clock, ManualClock};
use crate::budget::Charge;
use crate::contract::{NodeContract, NodeType};
use crate::envelope::Payload;
use crate::handler::{Description, Fault, Handler, HandlerError, HandlerRequest, HandlerType};
use crate::health::HealthReport;

/// One call's behaviour.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    /// Answer `{status_code}` at once.
    Status(u16),
    /// Fail at once with this fault.
    Fail(Fault),
    /// Answer `{status_code: 200}` after this long.
    Sleep(Duration),
}

/// A script and what the calls did with it.
#[derive(Clone)]
pub(crate) struct Script(Arc<Shared>);

struct Shared {
    clock: Arc<ManualClock>,
    steps: Vec<Step>,
    calls: AtomicUsize,
    at: Mutex<Vec<Instant>>,
    handler_type: HandlerType,
}

impl Script {
    /// A local handler playing `steps`.
    pub(crate) fn new(clock: &Arc<ManualClock>, steps: Vec<Step>) -> Script {
        Self::of(HandlerType::Local, clock, steps)
    }

    /// A handler of `handler_type` playing `steps`.
    pub(crate) fn of(
        handler_type: HandlerType,
        clock: &Arc<ManualClock>,
        steps: Vec<Step>,
    ) -> Script {
        Script(Arc::new(Shared {
            clock: Arc::clone(clock),
            steps,
            calls: AtomicUsize::new(0),
            at: Mutex::new(Vec::new()),
            handler_type,
        }))
    }

    pub(crate) fn ok() -> Step {
        Step::Status(200)
    }

    pub(crate) fn sleep(by: Duration) -> Step {
        Step::Sleep(by)
    }

    /// The handler that plays this script.
    pub(crate) fn handler(&self) -> Box<dyn Handler> {
        Box::new(self.clone())
    }

    /// How many calls were made.
    pub(crate) fn calls(&self) -> usize {
        self.0.calls.load(Ordering::SeqCst)
    }

    /// When each call was made.
    pub(crate) fn call_times(&self) -> Vec<Instant> {
        self.0.at.lock().map(|at| at.clone()).unwrap_or_default()
    }
}

/// A request for `operation` with an empty payload and no deadline.
pub(crate) fn request(operation: &str) -> HandlerRequest {
    let node = NodeContract {
        path: "n.yaml".into(),
        name: "n".into(),
        node_version: "1.0.0".into(),
        node_type: NodeType::EffectGeneric,
        description: None,
        input_model: None,
        output_model: None,
        io_operations: Vec::new(),
        dependencies: Vec::new(),
    };
    HandlerRequest::new(
        operation,
        Payload::new(),
        Uuid::nil(),
        Arc::new(node),
        Charge::unlimited(),
    )
}

fn status(code: u16) -> Payload {
    Payload::from_iter([("status_code".to_owned(), json!(code))])
}

impl Handler for Script {
    fn handler_type(&self) -> HandlerType {
        self.0.handler_type
    }

    fn initialize(&self) -> Boxed<Result<(), HandlerError>> {
        Box::pin(future::ready(Ok(())))
    }

    fn shutdown(&self) -> Boxed<()> {
        Box::pin(future::ready(()))
    }

    fn execute(&self, _: HandlerRequest) -> Boxed<Result<Option<Payload>, HandlerError>> {
        let shared = &self.0;
        let index = shared.calls.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut at) = shared.at.lock() {
            at.push(shared.clock.now());
        }
        let step = shared.steps[index.min(shared.steps.len() - 1)].clone();
        match step {
            Step::Status(code) => Box::pin(future::ready(Ok(Some(status(code))))),
            Step::Fail(fault) => Box::pin(future::ready(Err(HandlerError::dependency(
                fault,
                format!("scripted {fault:?}"),
                None,
            )))),
            Step::Sleep(by) => {
                let sleep = shared.clock.sleep_until(shared.clock.now() + by);
                Box::pin(async move {
                    sleep.await;
                    Ok(Some(status(200)))
                })
            }
        }
    }

    fn health_check(&self) -> Boxed<HealthReport> {
        Box::pin(future::ready(HealthReport::new(true)))
    }

    fn describe(&self) -> Description {
        Description {
            handler_type: self.0.handler_type,
            version: "1.0.0".to_owned(),
            supported_operations: Vec::new(),
            required_payload_fields: Vec::new(),
            response_shape: BTreeMap::new(),
            limits: BTreeMap::new(),
        }
    }
}
