//! `NodeInstance`: one hosted node, which enforces its contract and delegates I/O.
//!
//! A declarative node holds no resources of its own, so it has no lifecycle; all it does
//! is routing step 3 (does my contract allow this?) before handing the request to
//! [`NodeRuntime::execute_with_handler`]. It performs no I/O itself.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::NodeRuntime;
use crate::budget::Charge;
use crate::contract::{NodeContract, NodeType, Reach};
use crate::envelope::{EnvelopeError, Payload, RequestContext};
use crate::error::{ErrorContext, ErrorKind, RequestError};
use crate::handler::{Attempts, HandlerRequest};

/// What the runtime gives a request it admits besides its payload.
#[derive(Debug)]
pub(super) struct Admission {
    /// The request's share of the memory budget.
    pub(super) charge: Charge,
    /// When the request's time is up, if it set a limit.
    pub(super) deadline: Option<Instant>,
    /// Where the layers count the calls made for it.
    pub(super) attempts: Attempts,
}

/// One node hosted by a runtime, described by its node contract.
#[derive(Clone, Debug)]
pub struct NodeInstance {
    /// Shared with every request it hands a handler, which may read its own settings there.
    contract: Arc<NodeContract>,
}

impl NodeInstance {
    /// The node described by `contract`.
    pub fn new(contract: NodeContract) -> Self {
        NodeInstance {
            contract: Arc::new(contract),
        }
    }

    /// The node's slug.
    pub fn slug(&self) -> &str {
        &self.contract.name
    }

    /// The node's type.
    pub fn node_type(&self) -> NodeType {
        self.contract.node_type
    }

    /// The node's contract.
    pub fn contract(&self) -> &NodeContract {
        &self.contract
    }

    /// Checks the request against the contract, then has `runtime` run it, charging what
    /// it holds to `admission.charge`.
    pub(super) async fn handle(
        &self,
        runtime: &NodeRuntime,
        context: &RequestContext,
        payload: Payload,
        admission: Admission,
    ) -> Result<Option<Payload>, RequestError> {
        let fail = |kind| RequestError::new(kind, ErrorContext::of(context));
        let operation = context.operation.clone().unwrap_or_default();
        self.authorize(&operation, &payload).map_err(fail)?;
        let request = HandlerRequest {
            operation,
            payload,
            correlation_id: context.correlation_id,
            node: Arc::clone(&self.contract),
            charge: admission.charge,
            envelope_id: context.envelope_id,
            deadline: admission.deadline,
            attempts: admission.attempts,
        };
        let binding = self.binding_named(&request.operation);
        runtime
            .execute_with_handler(context, binding, request)
            .await
    }

    /// Whether the node's contract declares `operation`.
    pub(super) fn declares(&self, operation: &str) -> bool {
        self.contract.entries_for(operation).next().is_some()
    }

    /// The binding the node's entries for `operation` name, if any. An operation
    /// appears in several entries only with targets; the first entry naming a binding
    /// picks it for all.
    pub(super) fn binding_named(&self, operation: &str) -> Option<&str> {
        self.contract
            .entries_for(operation)
            .find_map(|entry| entry.binding.as_deref())
    }

    /// Step 3: the operation must be declared, and an HTTP URL must lie under a declared
    /// target where the declaring entries have one.
    fn authorize(&self, operation: &str, payload: &Payload) -> Result<(), ErrorKind> {
        let not_declared = |reason: String| ErrorKind::NotDeclared {
            node: self.slug().to_owned(),
            reason,
            available: self.contract.operations_of(None),
        };
        if !self.declares(operation) {
            return Err(not_declared(format!("operation '{operation}'")));
        }
        let url = payload.get("url").and_then(Value::as_str);
        match (self.contract.reach(operation, url.unwrap_or_default()), url) {
            (Reach::Anywhere, _) | (Reach::Within(_), Some(_)) => Ok(()),
            (_, None) => Err(ErrorKind::Envelope(EnvelopeError::Invalid {
                field: "payload",
                reason: format!("'{operation}' needs a string 'url'"),
            })),
            (Reach::Outside(targets), Some(_)) => {
                let targets: Vec<&str> = targets.iter().map(|target| target.as_str()).collect();
                Err(not_declared(format!(
                    "the requested URL for '{operation}': it lies outside {}",
                    targets.join(", ")
                )))
            }
        }
    }
}
