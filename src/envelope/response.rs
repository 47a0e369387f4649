//! Building responses: every response invariant of INTERFACE.md is enforced here and only here.
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
use crate::error::{ErrorContext, RuntimeHostError};

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
    pub fn split(request: Box<Envelope>) -> (RequestContext, Option<Payload>) {
        let Envelope {
            envelope_id,
            correlation_id,
            source_node,
            target_node,
            handler_type,
            operation,
            payload,
            metadata,
            ..
        } = *request;
        // Moved, not copied: a parsed request already has it (see `parse_request`).
        let handler_type = handler_type_or_domain(handler_type, operation.as_deref());
        let context = RequestContext {
            envelope_id: Some(envelope_id),
            correlation_id,
            source_node,
            target_node,
            handler_type,
            operation,
            metadata,
        };
        (context, payload)
    }

    /// The context an error about this request carries.
    pub fn error_context(&self) -> ErrorContext {
        ErrorContext {
            correlation_id: Some(self.correlation_id),
            handler_type: self.handler_type.clone(),
            operation: self.operation.clone(),
        }
    }

    /// The response to this request: a result, or an error envelope.
    pub fn respond(
        self,
        outcome: Result<Option<Payload>, RuntimeHostError>,
        stamp: &Stamp,
    ) -> Envelope {
        let (success, payload, error) = match outcome {
            Ok(payload) => (true, payload, None),
            Err(error) => (false, None, Some(self.error_body(&error))),
        };
        let mut metadata = self.metadata;
        if let Some(target) = &self.target_node {
            metadata.insert(
                "original_target_node".to_owned(),
                Value::String(target.clone()),
            );
        }
        Envelope {
            envelope_id: stamp.next_id(),
            envelope_version: Cow::Borrowed(ENVELOPE_VERSION),
            correlation_id: self.correlation_id,
            causation_id: self.envelope_id,
            source_node: self.target_node,
            target_node: self.source_node,
            handler_type: self.handler_type,
            operation: self.operation,
            payload,
            metadata,
            timestamp: stamp.now(),
            is_response: true,
            success: Some(success),
            error,
        }
    }

    fn error_body(&self, error: &RuntimeHostError) -> ErrorBody {
        let mut details = Payload::new();
        if let Some((name, values)) = error.kind().detail() {
            let values = values.into_iter().map(Value::String).collect();
            details.insert(name.to_owned(), Value::Array(values));
        }
        let context = error.context();
        ErrorBody {
            code: error.code(),
            message: error.message_chain(),
            handler_type: context
                .handler_type
                .clone()
                .or_else(|| self.handler_type.clone()),
            operation: context.operation.clone().or_else(|| self.operation.clone()),
            details,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorCode, ErrorKind};
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
    fn failure_response_has_null_payload_and_a_structured_error() {
        let stamp = Stamp::deterministic(0);
        let request = Envelope::request(&stamp, "ghost", "local.echo", Some(Payload::new()));
        let correlation = request.correlation_id;
        let context = RequestContext::of(&request);
        let error = RuntimeHostError::new(
            ErrorKind::NodeNotFound {
                node: "ghost".into(),
                available: vec!["node_a".into()],
            },
            context.error_context(),
        );
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
