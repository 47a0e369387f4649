//! Routing step 1 of docs/INTERFACE.md: is this envelope a routable request, and where does it go?
//!
//! The required fields are there, the operation is dotted lowercase, and the handler type
//! (given, or the operation's first part) agrees with it. A [`Request`] is an envelope that
//! passed: the later steps take one, so that nothing checks it twice.

use std::ops::Deref;

use super::{Envelope, EnvelopeError};

/// Where a valid request goes: borrowed from the envelope, checked by [`Envelope::target`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestTarget<'a> {
    /// The target node's slug.
    pub node: &'a str,
    /// The handler type: `handler_type`, or the operation's part before the first dot.
    pub handler_type: &'a str,
    /// The full dotted operation, e.g. `http.get`.
    pub operation: &'a str,
}

impl Envelope {
    /// Checks that this envelope is a routable request and says where it goes.
    pub fn target(&self) -> Result<RequestTarget<'_>, EnvelopeError> {
        if self.is_response || self.success.is_some() || self.error.is_some() {
            return Err(EnvelopeError::Invalid {
                field: "is_response",
                reason:
                    "a response (is_response, success or error set) cannot be sent as a request"
                        .into(),
            });
        }
        let (node, operation) = match (&self.target_node, &self.operation) {
            (Some(node), Some(operation)) => (node.as_str(), operation.as_str()),
            (node, operation) => {
                let mut missing = Vec::new();
                if node.is_none() {
                    missing.push("target_node");
                }
                if operation.is_none() {
                    missing.push("operation");
                }
                return Err(EnvelopeError::Missing(missing));
            }
        };
        let domain = operation_domain(operation).ok_or_else(|| EnvelopeError::Invalid {
            field: "operation",
            reason: format!(
                "'{operation}' is not a dotted lowercase operation like 'http.get' or 'db.query'"
            ),
        })?;
        if let Some(given) = self.handler_type.as_deref() {
            if given != domain {
                return Err(EnvelopeError::Invalid {
                    field: "handler_type",
                    reason: format!(
                        "'{given}' disagrees with operation '{operation}'; omit handler_type or set it to '{domain}'"
                    ),
                });
            }
        }
        Ok(RequestTarget {
            node,
            handler_type: domain,
            operation,
        })
    }
}

/// An envelope that passed routing step 1, its handler type filled in: only
/// [`Request::check`] (and [`super::parse::parse_request`], through it) makes one.
#[derive(Debug)]
pub struct Request(Box<Envelope>);

impl Request {
    /// Checks `envelope` with [`Envelope::target`] and fills in its handler type (the
    /// operation's domain) if it has none; on failure, returns it with the reason.
    pub fn check(mut envelope: Box<Envelope>) -> Result<Request, (Box<Envelope>, EnvelopeError)> {
        let domain = match envelope.target() {
            Ok(target) if envelope.handler_type.is_none() => Some(target.handler_type.to_owned()),
            Ok(_) => None,
            Err(error) => return Err((envelope, error)),
        };
        if domain.is_some() {
            envelope.handler_type = domain;
        }
        Ok(Request(envelope))
    }

    /// The checked envelope, to take apart.
    pub fn into_envelope(self) -> Box<Envelope> {
        self.0
    }
}

/// Read access only: a change could undo the check.
impl Deref for Request {
    type Target = Envelope;

    fn deref(&self) -> &Envelope {
        &self.0
    }
}

/// The part of a `{domain}.{action}` operation before the first dot, if well formed.
///
/// Well formed: two or more parts, each a lowercase letter followed by lowercase letters,
/// digits or underscores.
pub fn operation_domain(operation: &str) -> Option<&str> {
    // Bytes, not chars: every request asks this several times, and ASCII is all that
    // may pass.
    let well_formed = |part: &[u8]| {
        part.first().is_some_and(u8::is_ascii_lowercase)
            && part
                .iter()
                .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    // A byte search: `split_once('.')` sets up a char searcher, which cost more than the
    // rest of the check.
    let dot = operation.bytes().position(|b| b == b'.')?;
    let (domain, rest) = (&operation[..dot], &operation[dot + 1..]);
    (well_formed(domain.as_bytes()) && rest.as_bytes().split(|&b| b == b'.').all(well_formed))
        .then_some(domain)
}

/// The handler type a request asks for: `given`, or else its operation's domain.
pub(super) fn handler_type_or_domain(
    given: Option<String>,
    operation: Option<&str>,
) -> Option<String> {
    given.or_else(|| operation.and_then(operation_domain).map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_must_be_dotted_lowercase() {
        for bad in [
            "HTTP_GET",
            "dbQuery",
            "http-post",
            "DB.EXECUTE",
            "echo",
            "local.",
            ".x",
        ] {
            assert_eq!(operation_domain(bad), None, "{bad}");
        }
        assert_eq!(operation_domain("graph.get_neighbors"), Some("graph"));
    }

    #[test]
    fn a_checked_request_has_its_handler_type_and_a_refused_one_comes_back() {
        let stamp = super::super::Stamp::deterministic(1);
        let request = Request::check(Box::new(Envelope::request(&stamp, "n", "db.query", None)));
        assert_eq!(
            request.map(|r| r.handler_type.clone()).ok(),
            Some(Some("db".into()))
        );

        let mut response = Envelope::request(&stamp, "n", "db.query", None);
        response.is_response = true;
        let (back, error) = Request::check(Box::new(response)).unwrap_err();
        assert!(back.is_response);
        assert!(matches!(
            error,
            EnvelopeError::Invalid {
                field: "is_response",
                ..
            }
        ));
    }
}
