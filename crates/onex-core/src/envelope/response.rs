//! Building responses: every response invariant of docs/INTERFACE.md is enforced here and
//! only here.
//!
//! A response has a new `envelope_id`; echoes the request's `correlation_id`; has
//! `causation_id` = the request's `envelope_id`; `is_response: true`; `success` set;
//! `source_node` = the request's `target_node` and `target_node` = its `source_node`;
//! the request's metadata plus `original_target_node`. On failure the payload is null and
//! `error` holds the stable code, a message, the handler type, the operation and any
//! code-specific field.

use std::borrow::Cow;

use serde_json::Value;
use uuid::Uuid;

use super::target::handler_type_or_domain;
use super::{ENVELOPE_VERSION, Envelope, ErrorBody, Payload, Stamp};

/// What a response needs to know of its request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestContext {
    /// The request's id, if it could be read.
    pub envelope_id: Option<Uuid>,
    /// The request's correlation id (assigned if it had none).
    pub correlation_id: Uuid,
    /// The node that sent the request.
    pub source_node: Option<String>,
    /// The node the request was for.
    pub target_node: Option<String>,
    /// The handler type the request asked for (given or derived from the operation).
    pub handler_type: Option<String>,
    /// The requested operation.
    pub operation: Option<String>,
    /// The request's metadata, carried into the response.
    pub metadata: Payload,
}

impl RequestContext {
    /// The context of `request`, copied (its payload is not).
    pub fn of(request: &Envelope) -> RequestContext {
        RequestContext {
            envelope_id: Some(request.envelope_id),
            correlation_id: request.correlation_id,
            source_node: request.source_node.clone(),
            target_node: request.target_node.clone(),
            handler_type: handler_type_or_domain(
                request.handler_type.clone(),
                request.operation.as_deref(),
            ),
            operation: request.operation.clone(),
            metadata: request.metadata.clone(),
        }
    }

    /// Splits `request` into its context and its payload, without copying either.
    pub fn split(mut request: Box<Envelope>) -> (RequestContext, Option<Payload>) {
        let payload = request.payload.take();
        (RequestContext::take(&mut request), payload)
    }

    /// Takes the context out of `request`, field by field, leaving the rest (the payload
    /// among it) where it is: [`RequestContext::answer`] then writes the response there.
    pub fn take(request: &mut Envelope) -> RequestContext {
        let operation = request.operation.take();
        // Moved, not copied: a parsed request already has it (see `parse_request`).
        let handler_type =
            handler_type_or_domain(request.handler_type.take(), operation.as_deref());
        RequestContext {
            envelope_id: Some(request.envelope_id),
            correlation_id: request.correlation_id,
            source_node: request.source_node.take(),
            target_node: request.target_node.take(),
            handler_type,
            operation,
            metadata: std::mem::take(&mut request.metadata),
        }
    }

    /// The response to this request: a result, or an error envelope.
    pub fn respond(
        mut self,
        outcome: Result<Option<Payload>, ErrorBody>,
        stamp: &Stamp,
    ) -> Envelope {
        // Every field is overwritten; the placeholders take no id or time from `stamp`.
        let mut response = Envelope {
            envelope_id: Uuid::nil(),
            envelope_version: Cow::Borrowed(ENVELOPE_VERSION),
            correlation_id: Uuid::nil(),
            causation_id: None,
            source_node: None,
            target_node: None,
            handler_type: None,
            operation: None,
            payload: None,
            metadata: Payload::new(),
            timestamp: time::OffsetDateTime::UNIX_EPOCH,
            is_response: true,
            success: None,
            error: None,
        };
        self.answer(outcome, stamp, &mut response);
        response
    }

    /// Turns `envelope` (the request this context was taken from, or any other) into the
    /// response to this request, every field written; the context's fields move there
    /// and it is left empty.
    ///
    /// Field by field, in place, and the context by reference: an envelope is some 350
    /// bytes and a context 160, and every move of either by value (a whole envelope into
    /// its box, the context into this call) is a call to `memcpy`, which on the static
    /// build (musl) costs tens of cycles whatever the size.
    pub fn answer(
        &mut self,
        outcome: Result<Option<Payload>, ErrorBody>,
        stamp: &Stamp,
        envelope: &mut Envelope,
    ) {
        let (success, payload, error) = match outcome {
            Ok(payload) => (true, payload, None),
            Err(mut error) => {
                // What the error does not say of its request, the request does.
                if error.handler_type.is_none() {
                    error.handler_type.clone_from(&self.handler_type);
                }
                if error.operation.is_none() {
                    error.operation.clone_from(&self.operation);
                }
                (false, None, Some(error))
            }
        };
        let mut metadata = std::mem::take(&mut self.metadata);
        if let Some(target) = &self.target_node {
            metadata.insert(
                "original_target_node".to_owned(),
                Value::String(target.clone()),
            );
        }
        envelope.envelope_id = stamp.next_id();
        envelope.envelope_version = Cow::Borrowed(ENVELOPE_VERSION);
        envelope.correlation_id = self.correlation_id;
        envelope.causation_id = self.envelope_id;
        envelope.source_node = self.target_node.take();
        envelope.target_node = self.source_node.take();
        envelope.handler_type = self.handler_type.take();
        envelope.operation = self.operation.take();
        envelope.payload = payload;
        envelope.metadata = metadata;
        envelope.timestamp = stamp.now();
        envelope.is_response = true;
        envelope.success = Some(success);
        envelope.error = error;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::ErrorCode;
    use serde_json::json;

    #[test]
    fn success_response_keeps_every_invariant() {
        let stamp = Stamp::deterministic(0);
        let mut request = Envelope::request(&stamp, "node_a", "local.echo", None);
        request.source_node = Some("caller".into());
        request.metadata.insert("trace".into(), json!("t-1"));
        let (request_id, correlation) = (request.envelope_id, request.correlation_id);
        let (context, payload) = RequestContext::split(Box::new(request));
        let response = context.respond(Ok(payload), &stamp);

        assert_ne!(response.envelope_id, request_id);
        assert_eq!(response.correlation_id, correlation);
        assert_eq!(response.causation_id, Some(request_id));
        assert!(response.is_response);
        assert_eq!(response.success, Some(true));
        assert_eq!(response.source_node.as_deref(), Some("node_a"));
        assert_eq!(response.target_node.as_deref(), Some("caller"));
        assert_eq!(response.handler_type.as_deref(), Some("local"));
        assert_eq!(response.metadata["trace"], "t-1");
        assert_eq!(response.metadata["original_target_node"], "node_a");
        assert_eq!(response.error, None);
    }

    #[test]
    fn answering_in_the_requests_place_leaves_nothing_of_the_request() {
        let request = || {
            let mut request =
                Envelope::request(&Stamp::deterministic(0), "node_a", "local.echo", None);
            request.source_node = Some("caller".into());
            request.metadata.insert("trace".into(), json!("t-1"));
            request.payload = Some(Payload::from_iter([("n".to_owned(), json!(1))]));
            request.success = Some(false);
            Box::new(request)
        };
        let (context, payload) = RequestContext::split(request());
        let built = context.respond(Ok(payload), &Stamp::deterministic(7));

        let mut envelope = request();
        let payload = envelope.payload.take();
        let mut context = RequestContext::take(&mut envelope);
        context.answer(Ok(payload), &Stamp::deterministic(7), &mut envelope);
        assert_eq!(*envelope, built);
        assert_eq!(
            envelope.payload.as_ref().map(|p| p["n"].clone()),
            Some(json!(1))
        );
        assert_eq!(
            context,
            RequestContext {
                envelope_id: context.envelope_id,
                correlation_id: context.correlation_id,
                ..RequestContext::default()
            }
        );
    }

    #[test]
    fn failure_response_has_null_payload_and_the_error_completed_from_its_request() {
        let stamp = Stamp::deterministic(0);
        let request = Envelope::request(&stamp, "ghost", "local.echo", Some(Payload::new()));
        let correlation = request.correlation_id;
        let context = RequestContext::of(&request);
        let error = ErrorBody {
            code: ErrorCode::NodeNotFound,
            message: "node 'ghost' is not hosted by this runtime".into(),
            handler_type: None,
            operation: None,
            details: Payload::from_iter([("available_nodes".to_owned(), json!(["node_a"]))]),
        };
        let response = context.respond(Err(error), &stamp);
        assert_eq!(response.success, Some(false));
        assert_eq!(response.payload, None);
        assert_eq!(response.correlation_id, correlation);
        let error = response.error.unwrap();
        assert_eq!(error.code, ErrorCode::NodeNotFound);
        assert_eq!(error.handler_type.as_deref(), Some("local"));
        assert_eq!(error.operation.as_deref(), Some("local.echo"));
        assert_eq!(error.details["available_nodes"], json!(["node_a"]));
    }
}
