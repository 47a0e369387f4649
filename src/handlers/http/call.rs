//! Reading the call a request asks for out of its payload, refusing what cannot be sent
//! before any connection is made.
//!
//! The method comes from the operation; `url`, `headers`, `body` and `idempotency_key`
//! from the payload. A body is allowed on every method but `GET`: an object or array is
//! sent as JSON, a string as it is.

use isahc::http::Method;
use serde_json::Value;
use url::Url;

use super::OPERATIONS;
use crate::handler::{HandlerError, HandlerRequest};

/// The header an `idempotency_key` is sent as.
pub(super) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A request to send.
#[derive(Debug)]
pub(super) struct Call {
    pub(super) method: Method,
    pub(super) url: Url,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Option<Vec<u8>>,
}

/// The method of `operation`, if the handler supports it.
fn method(operation: &str) -> Option<Method> {
    Some(match operation {
        "http.get" => Method::GET,
        "http.post" => Method::POST,
        "http.put" => Method::PUT,
        "http.patch" => Method::PATCH,
        "http.delete" => Method::DELETE,
        _ => return None,
    })
}

/// Reads the call `request` asks for.
pub(super) fn call_of(request: &HandlerRequest) -> Result<Call, HandlerError> {
    let operation = request.operation.as_str();
    let method =
        method(operation).ok_or_else(|| HandlerError::unsupported(operation, OPERATIONS))?;
    let payload = &request.payload;
    let invalid = |message: String| HandlerError::InvalidPayload(message);
    let url = match payload.get("url") {
        Some(Value::String(url)) => url,
        Some(_) => return Err(invalid("'url' must be a string".into())),
        None => return Err(invalid(format!("'url' is required for {operation}"))),
    };
    let url = Url::parse(url)
        .map_err(|error| invalid(format!("'url' is not an absolute URL: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "'url' must be http or https, not '{}'",
            url.scheme()
        )));
    }
    let mut headers = Vec::new();
    match payload.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, value) in map {
                let Value::String(value) = value else {
                    return Err(invalid(format!("header '{name}' must have a string value")));
                };
                headers.push((name.clone(), value.clone()));
            }
        }
        Some(_) => return Err(invalid("'headers' must be an object of strings".into())),
    }
    match payload.get("idempotency_key") {
        None | Some(Value::Null) => {}
        Some(Value::String(key)) if !key.is_empty() => {
            // Two keys for one call would leave the server to pick one.
            if headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case(IDEMPOTENCY_KEY))
            {
                return Err(invalid(
                    "'idempotency_key' and an Idempotency-Key header were both given; give one"
                        .into(),
                ));
            }
            headers.push((IDEMPOTENCY_KEY.to_owned(), key.clone()));
        }
        Some(_) => {
            return Err(invalid(
                "'idempotency_key' must be a non-empty string".into(),
            ));
        }
    }
    let has_content_type = headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
    let body = match payload.get("body") {
        None | Some(Value::Null) => None,
        Some(_) if method == Method::GET => return Err(invalid("http.get takes no 'body'".into())),
        Some(Value::String(text)) => Some(text.clone().into_bytes()),
        Some(value @ (Value::Object(_) | Value::Array(_))) => {
            if !has_content_type {
                headers.push(("content-type".to_owned(), "application/json".to_owned()));
            }
            Some(value.to_string().into_bytes())
        }
        Some(_) => {
            return Err(invalid(
                "'body' must be an object, an array or a string".into(),
            ));
        }
    };
    Ok(Call {
        method,
        url,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_operation_has_a_method_and_no_other_does() {
        for operation in OPERATIONS {
            assert!(method(operation).is_some(), "{operation}");
        }
        for other in ["http.head", "http.options", "http.GET", "db.query"] {
            assert!(method(other).is_none(), "{other}");
        }
    }
}
