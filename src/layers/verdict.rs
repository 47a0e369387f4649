//! What one call's outcome says about the dependency behind a handler: the one place
//! the layers read a handler's results.
//!
//! A [`HandlerError::Dependency`] says it with its [`Fault`]. A successful http call
//! may still be the upstream failing: its payload's `status_code` 502, 503 or 504 is
//! transient (the upstream, or a proxy before it, is overloaded or restarting), any
//! other 5xx an outage that a retry would not fix. Everything else is the dependency
//! answering, whatever it answered.

use serde_json::Value;

use crate::envelope::Payload;
use crate::handler::{Fault, HandlerError, HandlerType};

/// The operations that only read: retried after a transient failure even without an
/// `idempotency_key`.
pub(crate) const READS: &[&str] = &["http.get", "db.query"];

/// The dependency's fault in `result`, a call by a `handler_type` handler, if it failed.
pub(crate) fn fault_of(
    handler_type: HandlerType,
    result: &Result<Option<Payload>, HandlerError>,
) -> Option<Fault> {
    match result {
        Err(error) => error.fault(),
        Ok(Some(payload)) if handler_type == HandlerType::Http => {
            match payload.get("status_code").and_then(Value::as_u64) {
                Some(502..=504) => Some(Fault::Transient),
                Some(500..=599) => Some(Fault::Lost),
                _ => None,
            }
        }
        Ok(_) => None,
    }
}

/// Whether a call of `operation` with `payload` that failed with `fault` may be made
/// again: always when nothing was sent; after a transient failure, for a read or a
/// request that carries an `idempotency_key`; never otherwise.
pub(crate) fn retryable(fault: Option<Fault>, operation: &str, payload: &Payload) -> bool {
    match fault {
        Some(Fault::NotSent) => true,
        Some(Fault::Transient) => {
            READS.contains(&operation)
                || payload
                    .get("idempotency_key")
                    .and_then(Value::as_str)
                    .is_some_and(|key| !key.is_empty())
        }
        Some(Fault::Lost) | None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(code: u16) -> Result<Option<Payload>, HandlerError> {
        Ok(Some(Payload::from_iter([(
            "status_code".to_owned(),
            json!(code),
        )])))
    }

    #[test]
    fn upstream_5xx_is_the_dependencys_fault_and_only_502_to_504_are_transient() {
        assert_eq!(fault_of(HandlerType::Http, &status(200)), None);
        assert_eq!(fault_of(HandlerType::Http, &status(404)), None);
        for code in [502, 503, 504] {
            assert_eq!(
                fault_of(HandlerType::Http, &status(code)),
                Some(Fault::Transient)
            );
        }
        assert_eq!(fault_of(HandlerType::Http, &status(500)), Some(Fault::Lost));
        assert_eq!(fault_of(HandlerType::Local, &status(503)), None);
        let error = HandlerError::dependency(Fault::NotSent, "refused", None);
        assert_eq!(fault_of(HandlerType::Db, &Err(error)), Some(Fault::NotSent));
        let own = HandlerError::execution("syntax error");
        assert_eq!(fault_of(HandlerType::Db, &Err(own)), None);
    }

    #[test]
    fn only_reads_and_idempotent_requests_are_retried_after_a_transient_failure() {
        let none = Payload::new();
        let keyed = Payload::from_iter([("idempotency_key".to_owned(), json!("k-1"))]);
        assert!(retryable(Some(Fault::NotSent), "http.post", &none));
        assert!(retryable(Some(Fault::NotSent), "db.execute", &none));
        assert!(retryable(Some(Fault::Transient), "http.get", &none));
        assert!(retryable(Some(Fault::Transient), "db.query", &none));
        assert!(!retryable(Some(Fault::Transient), "http.post", &none));
        assert!(!retryable(Some(Fault::Transient), "db.execute", &none));
        assert!(retryable(Some(Fault::Transient), "http.post", &keyed));
        assert!(!retryable(Some(Fault::Lost), "http.get", &keyed));
        assert!(!retryable(None, "http.get", &none));
    }
}
