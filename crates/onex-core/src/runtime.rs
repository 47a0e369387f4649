//! `NodeRuntime`: routes each request envelope to its node and handler, and answers it.
//!
//! Routing follows docs/INTERFACE.md's five steps: (1) the envelope is a valid request,
//! (2) its target node is hosted here, (3) the node's contract allows the operation (and,
//! for HTTP, the URL), (4) a handler of that type is registered, (5) the handler runs it.
//! Handlers are registered by binding name (schema 1.1.0; an unnamed binding's name is
//! its type's): step 4 takes the binding the node's entry for the operation names, else
//! the type's unnamed one, else the type's only one.
//! Every outcome, success or failure, becomes exactly one response envelope.
//!
//! A request's `metadata.timeout_ms` becomes its deadline when routing starts (the
//! handler request's `deadline`, which the host's layers enforce), and a response that
//! took the handler more than one call says how many in `metadata.attempts` (counted
//! by the host's retry layer through the request's [`Attempts`]).
//!
//! The runtime is pure in-memory orchestration: it knows no transport and starts no
//! tasks; whoever owns it (the host) drives it by awaiting [`NodeRuntime::route`] for a
//! request it parsed (step 1 done), or [`NodeRuntime::route_envelope`] for any envelope.

mod node;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use node::NodeInstance;

use crate::budget::Charge;
use crate::envelope::{
    Envelope, EnvelopeError, Payload, Request, RequestContext, Stamp, operation_domain,
};
use crate::error::{ErrorContext, ErrorKind, HostError, RequestError};
use crate::handler::{Attempts, Handler, HandlerRequest, HandlerType};

/// Hosts node instances and the handlers they use; routes envelopes between them.
pub struct NodeRuntime {
    /// By binding name, in type order, each type's unnamed binding first (the order
    /// reports list them in, as before bindings had names); a handful, so searched.
    handlers: Vec<(String, Box<dyn Handler>)>,
    nodes: BTreeMap<String, NodeInstance>,
    stamp: Stamp,
}

impl NodeRuntime {
    /// An empty runtime whose responses are stamped by `stamp`.
    pub fn new(stamp: Stamp) -> Self {
        NodeRuntime {
            handlers: Vec::new(),
            nodes: BTreeMap::new(),
            stamp,
        }
    }

    /// Registers `handler` as its type's unnamed binding; a second one is refused.
    pub fn register_handler(&mut self, handler: Box<dyn Handler>) -> Result<(), HostError> {
        let handler_type = handler.handler_type();
        if self.binding(handler_type.as_str()).is_some() {
            return Err(HostError::Configuration(format!(
                "a '{handler_type}' handler is already registered; MVP runs one handler per type"
            )));
        }
        self.register_binding(handler_type.as_str(), handler)
    }

    /// Registers `handler` as the binding `binding`; a name taken is refused.
    pub fn register_binding(
        &mut self,
        binding: &str,
        handler: Box<dyn Handler>,
    ) -> Result<(), HostError> {
        if self.binding(binding).is_some() {
            return Err(HostError::Configuration(format!(
                "a handler binding named '{binding}' is already registered"
            )));
        }
        self.handlers.push((binding.to_owned(), handler));
        self.handlers.sort_by(|(a, x), (b, y)| {
            let order = |name: &str, handler: &dyn Handler| {
                let handler_type = handler.handler_type();
                (handler_type, name != handler_type.as_str())
            };
            order(a, &**x).cmp(&order(b, &**y)).then_with(|| a.cmp(b))
        });
        Ok(())
    }

    /// The handler registered as `binding`.
    fn binding(&self, binding: &str) -> Option<&dyn Handler> {
        self.handlers
            .iter()
            .find(|(name, _)| name == binding)
            .map(|(_, handler)| &**handler)
    }

    /// Registers `node`; a second node with the same slug is refused.
    pub fn register_node(&mut self, node: NodeInstance) -> Result<(), HostError> {
        if self.nodes.contains_key(node.slug()) {
            return Err(HostError::Configuration(format!(
                "node '{}' is already registered",
                node.slug()
            )));
        }
        self.nodes.insert(node.slug().to_owned(), node);
        Ok(())
    }

    /// The registered handlers, in type order, each type's unnamed binding first.
    pub fn handlers(&self) -> impl Iterator<Item = &dyn Handler> {
        self.handlers.iter().map(|(_, handler)| &**handler)
    }

    /// The registered handlers with their binding names, in the same order.
    pub fn bindings(&self) -> impl Iterator<Item = (&str, &dyn Handler)> {
        self.handlers
            .iter()
            .map(|(name, handler)| (name.as_str(), &**handler))
    }

    /// The registered nodes, in slug order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInstance> {
        self.nodes.values()
    }

    /// Where response ids and timestamps come from.
    pub fn stamp(&self) -> &Stamp {
        &self.stamp
    }

    /// Routes the request in `envelope` and returns its response in the same box: a
    /// result, or an error envelope. An envelope that is not a routable request (step 1)
    /// is answered with the reason. Nothing is charged to a memory budget.
    pub async fn route_envelope(&self, envelope: Box<Envelope>) -> Box<Envelope> {
        match Request::check(envelope) {
            Ok(request) => self.route(request, Charge::unlimited()).await,
            Err((mut envelope, error)) => {
                let mut context = RequestContext::take(&mut envelope);
                let error =
                    RequestError::new(ErrorKind::Envelope(error), ErrorContext::of(&context));
                context.answer(Err(error.to_body()), &self.stamp, &mut envelope);
                envelope
            }
        }
    }

    /// Routes a checked request (steps 2 to 5) and returns its response in the request's
    /// box: a result, or an error envelope. What the handler holds is charged to `charge`.
    ///
    /// Both travel boxed, and the response is written into the request's box. An envelope
    /// is some 350 bytes, and every move of one by value (into a future, out of one, into
    /// a new box) is a call to `memcpy`; musl's starts each copy with `rep movs`, tens of
    /// cycles whatever the size. Boxed, they move as pointers (docs/PERFORMANCE.md counts
    /// the copies saved).
    pub async fn route(&self, request: Request, charge: Charge) -> Box<Envelope> {
        let mut envelope = request.into_envelope();
        let payload = envelope.payload.take();
        let mut context = RequestContext::take(&mut envelope);
        let attempts = Attempts::default();
        let outcome = self
            .dispatch(&context, payload.unwrap_or_default(), charge, &attempts)
            .await;
        let outcome = outcome.map_err(|error| error.to_body());
        if attempts.count() > 1 {
            let count = Value::from(attempts.count());
            context.metadata.insert("attempts".to_owned(), count);
        }
        context.answer(outcome, &self.stamp, &mut envelope);
        envelope
    }

    /// Steps 2 to 5 for a request that passed step 1.
    async fn dispatch(
        &self,
        context: &RequestContext,
        payload: Payload,
        charge: Charge,
        attempts: &Attempts,
    ) -> Result<Option<Payload>, RequestError> {
        let deadline = deadline_of(&context.metadata, Instant::now).map_err(|error| {
            RequestError::new(ErrorKind::Envelope(error), ErrorContext::of(context))
        })?;
        let slug = context.target_node.as_deref().unwrap_or_default();
        let Some(node) = self.nodes.get(slug) else {
            return Err(RequestError::new(
                ErrorKind::NodeNotFound {
                    node: slug.to_owned(),
                    available: self.nodes.keys().cloned().collect(),
                },
                ErrorContext::of(context),
            ));
        };
        let request = node::Admission {
            charge,
            deadline,
            attempts: attempts.clone(),
        };
        node.handle(self, context, payload, request).await
    }

    /// The binding that runs `operation` for the node `node`, as routing picks it (steps
    /// 2 to 4, without a request): its place among [`NodeRuntime::bindings`]. `None` when
    /// the node is not hosted here, does not declare the operation, or no binding of the
    /// operation's type is registered. The host labels its metrics with it.
    pub fn binding_for(&self, node: &str, operation: &str) -> Option<usize> {
        let node = self
            .nodes
            .get(node)
            .filter(|node| node.declares(operation))?;
        let handler_type = operation_domain(operation).and_then(HandlerType::from_name)?;
        self.pick(handler_type, node.binding_named(operation))
    }

    /// Step 4's choice for an operation of `handler_type` whose node entry names
    /// `binding`: that binding, else the type's unnamed one, else the type's only one,
    /// if of that type; its place among the bindings.
    fn pick(&self, handler_type: HandlerType, binding: Option<&str>) -> Option<usize> {
        let named = |name: &str| self.handlers.iter().position(|(n, _)| n == name);
        let only = || {
            let mut of_type = (0..self.handlers.len())
                .filter(|&at| self.handlers[at].1.handler_type() == handler_type);
            of_type.next().filter(|_| of_type.next().is_none())
        };
        binding
            .and_then(named)
            .or_else(|| named(handler_type.as_str()))
            .or_else(only)
            .filter(|&at| self.handlers[at].1.handler_type() == handler_type)
    }

    /// Steps 4 and 5: finds the handler for `context`'s handler type, the binding
    /// `binding` when the node's entry names one, and runs `request`.
    pub async fn execute_with_handler(
        &self,
        context: &RequestContext,
        binding: Option<&str>,
        request: HandlerRequest,
    ) -> Result<Option<Payload>, RequestError> {
        let requested = context.handler_type.as_deref().unwrap_or_default();
        let found = HandlerType::from_name(requested)
            .and_then(|handler_type| self.pick(handler_type, binding))
            .map(|at| (self.handlers[at].0.as_str(), &*self.handlers[at].1));
        let Some((binding, handler)) = found else {
            let mut available: Vec<HandlerType> =
                self.handlers().map(|h| h.handler_type()).collect();
            available.dedup();
            return Err(RequestError::new(
                ErrorKind::HandlerNotFound {
                    handler_type: requested.to_owned(),
                    available,
                },
                ErrorContext::of(context),
            ));
        };
        handler.execute(request).await.map_err(|source| {
            let error = RequestError::new(
                ErrorKind::Handler {
                    handler_type: handler.handler_type(),
                    source,
                },
                ErrorContext::of(context),
            );
            log::debug!(
                correlation_id:% = context.correlation_id, binding;
                "handler failed: {}", error.full_chain()
            );
            error
        })
    }
}

/// When a request whose metadata is `metadata`, taken at `taken()`, must be done:
/// `metadata.timeout_ms` (a positive integer) after it, if set. The clock is read only
/// then: most requests set no limit.
fn deadline_of(
    metadata: &Payload,
    taken: impl FnOnce() -> Instant,
) -> Result<Option<Instant>, EnvelopeError> {
    let Some(value) = metadata.get("timeout_ms") else {
        return Ok(None);
    };
    let invalid = || EnvelopeError::Invalid {
        field: "metadata",
        reason: "'timeout_ms' must be a positive integer (milliseconds)".to_owned(),
    };
    let ms = value.as_u64().filter(|&ms| ms > 0).ok_or_else(invalid)?;
    // A limit too far away to represent is no limit.
    Ok(taken().checked_add(Duration::from_millis(ms)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_deadline_is_timeout_ms_after_the_request_was_taken() {
        let taken = Instant::now();
        let metadata = |value: Value| Payload::from_iter([("timeout_ms".to_owned(), value)]);
        assert_eq!(deadline_of(&Payload::new(), || taken), Ok(None));
        assert_eq!(
            deadline_of(&metadata(json!(250)), || taken),
            Ok(Some(taken + Duration::from_millis(250)))
        );
        for bad in [json!(0), json!(-5), json!(1.5), json!("100"), json!(null)] {
            assert!(
                deadline_of(&metadata(bad.clone()), || taken).is_err(),
                "{bad}"
            );
        }
    }
}
