//! `LocalHandler`: in-process operations for development and tests. NOT FOR PRODUCTION.
//!
//! It does no I/O, which makes it the way to try a contract, test routing or measure the
//! host's own overhead. The production binary refuses contracts that enable it; the dev
//! binary registers nothing else.
//!
//! | operation | result |
//! | --- | --- |
//! | `local.echo` | the request's payload, unchanged |
//! | `local.transform` | the payload with every string value uppercased (keys unchanged) |
//! | `local.error` | a `HANDLER_EXECUTION_ERROR` whose message is the payload's `message`, if a string |

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_lite::future::{self, Boxed};
use serde_json::Value;

use crate::envelope::Payload;
use crate::handler::{Description, Handler, HandlerError, HandlerRequest, HandlerType};
use crate::health::HealthReport;

/// The operations `LocalHandler` supports.
pub const OPERATIONS: &[&str] = &["local.echo", "local.transform", "local.error"];

/// Echo, transform and error operations, in process. Development and tests only.
#[derive(Debug, Default)]
pub struct LocalHandler {
    shut_down: AtomicBool,
}

impl LocalHandler {
    /// A new local handler.
    pub fn new() -> Self {
        Self::default()
    }

    fn run(&self, request: HandlerRequest) -> Result<Option<Payload>, HandlerError> {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(HandlerError::execution("the local handler is shut down"));
        }
        match request.operation.as_str() {
            "local.echo" => Ok(Some(request.payload)),
            "local.transform" => Ok(Some(uppercase_strings(request.payload))),
            "local.error" => {
                let message = request.payload.get("message").and_then(Value::as_str);
                Err(HandlerError::execution(
                    message.unwrap_or("local.error: failure requested"),
                ))
            }
            other => Err(HandlerError::unsupported(other, OPERATIONS)),
        }
    }
}

fn uppercase_strings(payload: Payload) -> Payload {
    fn walk(value: Value) -> Value {
        match value {
            Value::String(s) => Value::String(s.to_uppercase()),
            Value::Array(items) => Value::Array(items.into_iter().map(walk).collect()),
            Value::Object(map) => Value::Object(uppercase_strings(map)),
            other => other,
        }
    }
    payload
        .into_iter()
        .map(|(key, value)| (key, walk(value)))
        .collect()
}

impl Handler for LocalHandler {
    fn handler_type(&self) -> HandlerType {
        HandlerType::Local
    }

    fn name(&self) -> &'static str {
        "LocalHandler"
    }

    fn initialize(&self) -> Boxed<Result<(), HandlerError>> {
        log::warn!(
            "LocalHandler initialised: it is for development and tests only; never enable it in production"
        );
        Box::pin(future::ready(Ok(())))
    }

    fn shutdown(&self) -> Boxed<()> {
        self.shut_down.store(true, Ordering::Release);
        Box::pin(future::ready(()))
    }

    fn has_dependency(&self) -> bool {
        false
    }

    fn execute(&self, request: HandlerRequest) -> Boxed<Result<Option<Payload>, HandlerError>> {
        Box::pin(future::ready(self.run(request)))
    }

    fn health_check(&self) -> Boxed<HealthReport> {
        let report =
            HealthReport::new(!self.shut_down.load(Ordering::Acquire)).with("dev_test_only", true);
        Box::pin(future::ready(report))
    }

    fn describe(&self) -> Description {
        Description {
            handler_type: HandlerType::Local,
            version: "1.0.0".to_owned(),
            supported_operations: OPERATIONS.iter().map(|op| (*op).to_owned()).collect(),
            required_payload_fields: Vec::new(),
            response_shape: BTreeMap::from([(
                "*".to_owned(),
                "any: the request payload (local.echo), strings uppercased (local.transform)"
                    .to_owned(),
            )]),
            limits: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{NodeContract, NodeType};
    use serde_json::json;
    use std::sync::Arc;
    use uuid::Uuid;

    fn request(operation: &str, payload: Value) -> HandlerRequest {
        HandlerRequest::new(
            operation,
            payload.as_object().cloned().unwrap_or_default(),
            Uuid::nil(),
            Arc::new(NodeContract {
                path: "echo.yaml".into(),
                name: "echo".into(),
                node_version: "1.0.0".into(),
                node_type: NodeType::EffectGeneric,
                description: None,
                input_model: None,
                output_model: None,
                io_operations: Vec::new(),
                dependencies: Vec::new(),
            }),
            crate::budget::Charge::unlimited(),
        )
    }

    fn run(
        handler: &LocalHandler,
        operation: &str,
        payload: Value,
    ) -> Result<Option<Payload>, HandlerError> {
        future::block_on(handler.execute(request(operation, payload)))
    }

    #[test]
    fn echo_returns_the_payload() {
        let payload = json!({"a": 1, "b": ["x", {"c": null}]});
        let result = run(&LocalHandler::new(), "local.echo", payload.clone()).unwrap();
        assert_eq!(Value::Object(result.unwrap()), payload);
    }

    #[test]
    fn transform_uppercases_every_string_value() {
        let result = run(
            &LocalHandler::new(),
            "local.transform",
            json!({"k": "ab", "n": [1, "cd", {"e": "fg"}]}),
        );
        assert_eq!(
            Value::Object(result.unwrap().unwrap()),
            json!({"k": "AB", "n": [1, "CD", {"e": "FG"}]})
        );
    }

    #[test]
    fn error_fails_with_the_requested_message() {
        let error = run(
            &LocalHandler::new(),
            "local.error",
            json!({"message": "boom"}),
        )
        .unwrap_err();
        assert!(matches!(&error, HandlerError::Execution { message, .. } if message == "boom"));
    }

    #[test]
    fn other_operations_are_unsupported_and_name_the_available_ones() {
        let error = run(&LocalHandler::new(), "local.sleep", json!({})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "operation 'local.sleep' not supported. Available: local.echo, local.transform, local.error"
        );
    }

    #[test]
    fn health_says_dev_test_only_and_shutdown_stops_execution() {
        let handler = LocalHandler::new();
        let report = future::block_on(handler.health_check());
        assert!(report.healthy);
        assert_eq!(report.details["dev_test_only"], true);
        future::block_on(handler.shutdown());
        assert!(run(&handler, "local.echo", json!({})).is_err());
        assert!(!future::block_on(handler.health_check()).healthy);
    }
}
