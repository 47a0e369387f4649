//! The `target` of an HTTP I/O operation: the URL prefix a node may call, and nothing else.
//!
//! This is the host's guard against request forgery: a node whose contract declares
//! `target: https://api.example.com/users` can reach `/users` and below on that origin,
//! never `/admin`, another host, another port or another scheme. URLs are compared after
//! WHATWG normalisation (dot segments, case of scheme and host, default ports), and the
//! path must match at a segment boundary (`/users` admits `/users/7`, not `/usersX`).
//!
//! A URL is inside only if no server can read it as outside. Servers differ in what they
//! decode before they resolve `..`: many decode `%2f` to `/` and `%5c` to `\` (which some
//! take for `/`), a few decode twice, and some (Tomcat) drop `;parameters` from a segment
//! first. So a path is refused when any segment, decoded up to [`DECODING_ROUNDS`] times,
//! holds a `/` or `\`, or is a dot segment once its parameters are dropped: such a path
//! means one thing to the guard and may mean another to the server.

use std::borrow::Cow;
use std::fmt;

use percent_encoding::percent_decode_str;
use url::Url;

/// How many times a path segment is percent-decoded when looking for a separator or dot
/// segment a server might see: once for the usual server, again for a proxy and an
/// application that each decode, once more to be safe.
const DECODING_ROUNDS: usize = 3;

/// A URL prefix that confines a node's HTTP calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpTarget {
    url: Url,
}

impl HttpTarget {
    /// Parses a target: an absolute `http` or `https` URL with a host, and without
    /// credentials, query or fragment.
    pub fn parse(text: &str) -> Result<HttpTarget, String> {
        let url = Url::parse(text).map_err(|error| format!("'{text}' is not a URL: {error}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("'{text}' is not an http or https URL"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("'{text}' has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("'{text}' carries credentials; targets must not"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "'{text}' has a query or fragment; a target is a prefix"
            ));
        }
        Ok(HttpTarget { url })
    }

    /// The normalised target URL.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// Whether `candidate` lies under this target.
    pub fn admits(&self, candidate: &str) -> bool {
        Url::parse(candidate).is_ok_and(|url| self.admits_url(&url))
    }

    /// Whether the parsed `url` lies under this target.
    pub fn admits_url(&self, url: &Url) -> bool {
        let same_origin = url.scheme() == self.url.scheme()
            && url.host() == self.url.host()
            && url.port_or_known_default() == self.url.port_or_known_default()
            && url.username().is_empty()
            && url.password().is_none();
        let prefix = self.url.path();
        let path = url.path();
        let under = path == prefix
            || (path.starts_with(prefix)
                && (prefix.ends_with('/') || path[prefix.len()..].starts_with('/')));
        same_origin && under && !path.split('/').any(may_leave_its_place)
    }
}

/// Whether a server might read `segment` (one segment of a normalised path) as more than
/// one segment or as a step up: after percent-decoding it holds `/` or `\`, or, with any
/// `;parameters` dropped, it is `.` or `..`.
fn may_leave_its_place(segment: &str) -> bool {
    let mut text = Cow::Borrowed(segment);
    for _ in 0..DECODING_ROUNDS {
        let name = text.split(';').next().unwrap_or_default();
        if text.contains(['/', '\\']) || name == "." || name == ".." {
            return true;
        }
        if !text.contains('%') {
            return false;
        }
        let decoded = percent_decode_str(&text).decode_utf8_lossy().into_owned();
        if decoded == text {
            return false;
        }
        text = Cow::Owned(decoded);
    }
    // Still encoded after every round: nothing a server does with it is predictable.
    text.contains('%')
}

impl fmt::Display for HttpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_the_prefix_and_below_only() {
        let target = HttpTarget::parse("https://api.example.com/users").unwrap();
        for ok in [
            "https://api.example.com/users",
            "https://API.example.com/users/42",
            "https://api.example.com:443/users?page=2",
            "https://api.example.com/users/a/../b",
        ] {
            assert!(target.admits(ok), "{ok}");
        }
        for refused in [
            "https://api.example.com/usersX",
            "https://api.example.com/admin",
            "https://api.example.com/users/../admin",
            "https://api.example.com/users/%2e%2e/admin",
            "https://api.example.com/users/..%2fadmin",
            "https://api.example.com/users/%2e%2e%2fadmin",
            "https://api.example.com/users/..%2Fadmin",
            "https://api.example.com/users/..%5cadmin",
            "https://api.example.com/users/..%5Cadmin",
            "https://api.example.com/users/..%252fadmin",
            "https://api.example.com/users/..;/admin",
            "https://api.example.com/users/%2e%2e;x=1/admin",
            "https://api.example.com/users/.;/x",
            "http://api.example.com/users",
            "https://api.example.com:8443/users",
            "https://api.example.com.evil.test/users",
            "https://api.example.com@evil.test/users",
            "https://user:pw@api.example.com/users",
            "not a url",
        ] {
            assert!(!target.admits(refused), "{refused}");
        }
    }

    #[test]
    fn ordinary_encoded_paths_stay_admitted() {
        let target = HttpTarget::parse("https://api.example.com/users").unwrap();
        for ok in [
            "https://api.example.com/users/a%20b",
            "https://api.example.com/users/%C3%A9t%C3%A9",
            "https://api.example.com/users/7;v=2",
            "https://api.example.com/users/...",
            "https://api.example.com/users/a.b/c..d",
            "https://api.example.com/users/50%25",
        ] {
            assert!(target.admits(ok), "{ok}");
        }
    }

    #[test]
    fn a_root_target_admits_the_whole_origin() {
        let target = HttpTarget::parse("http://127.0.0.1:8080").unwrap();
        assert!(target.admits("http://127.0.0.1:8080/anything"));
        assert!(!target.admits("http://127.0.0.1:8081/anything"));
    }

    #[test]
    fn refuses_targets_that_are_not_plain_http_prefixes() {
        for bad in [
            "ftp://example.com/x",
            "https://u:p@example.com/",
            "https://example.com/x?y=1",
            "/relative",
        ] {
            assert!(HttpTarget::parse(bad).is_err(), "{bad}");
        }
    }
}
