//! What the credentials lint looks for in one key or one string, once YAML has decided
//! which is which: a key that names a password, a PostgreSQL connection string, a URL
//! with a password. Pure functions of a string, so each rule is tested on its own.

/// Whether `key` names a password: `password`, `passwd` or `*_password`, in any case.
pub(super) fn names_password(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    lower == "password" || lower == "passwd" || lower.ends_with("_password")
}

/// Whether `value` is a PostgreSQL connection string: a `postgres://` or
/// `postgresql://` URI (with or without a password: either may carry one, so neither
/// belongs in a contract), or keyword pairs (`host=h password=p`) with a `password`.
///
/// The whole value must be one: prose that names the scheme or `password=` (a
/// description saying where the password comes from) is not a connection string.
pub(super) fn is_connection_string(value: &str) -> bool {
    let value = value.trim();
    let scheme = value.get(..value.find("://").unwrap_or(0)).unwrap_or("");
    scheme.eq_ignore_ascii_case("postgres")
        || scheme.eq_ignore_ascii_case("postgresql")
        || keyword_pairs(value).is_some_and(|keywords| keywords.iter().any(|k| k == "password"))
}

/// The keywords (lowercased) of `value` if all of it is libpq `keyword=value` pairs,
/// separated by white space, with optional space around `=` and values either bare or
/// single-quoted (`\'` and `\\` escaped); `None` if it is anything else.
fn keyword_pairs(value: &str) -> Option<Vec<String>> {
    let mut keywords = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut keyword = String::new();
        while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_') {
            keyword.push(c.to_ascii_lowercase());
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if keyword.is_empty() || chars.next() != Some('=') {
            return None;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next()? {
                    '\\' => {
                        chars.next()?;
                    }
                    '\'' => break,
                    _ => {}
                }
            }
            // A quoted value ends the pair; the next must be set apart by white space.
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return None;
            }
        } else {
            while chars.next_if(|c| !c.is_whitespace()).is_some() {}
        }
        keywords.push(keyword);
    }
    (!keywords.is_empty()).then_some(keywords)
}

/// Whether a URL anywhere in `text` has a password in its authority
/// (`scheme://user:password@host`). Unlike a connection string, this is looked for in
/// prose too: such a URL is a credential whatever words surround it, and descriptions
/// are served by the API. A URL with only a user (`https://user@host`) passes.
pub(super) fn has_url_password(text: &str) -> bool {
    text.match_indices("://").any(|(at, separator)| {
        let has_scheme = text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        // The authority ends at the path, query or fragment (RFC 3986), or white space.
        let authority = text[at + separator.len()..]
            .split(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .next()
            .unwrap_or("");
        has_scheme
            && authority
                .rsplit_once('@')
                .and_then(|(userinfo, _)| userinfo.split_once(':'))
                .is_some_and(|(_, password)| !password.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_names() {
        for key in [
            "password",
            "PASSWORD",
            "Passwd",
            "db_password",
            "PG_PASSWORD",
        ] {
            assert!(names_password(key), "{key}");
        }
        for key in [
            "passwords_total",
            "password_file",
            "db-password",
            "pass",
            "",
        ] {
            assert!(!names_password(key), "{key}");
        }
    }

    #[test]
    fn connection_strings_as_uris_and_keywords() {
        for value in [
            "postgresql://h/db",
            "POSTGRES://u:p@h:5432/db",
            "  postgres://h/db\n",
            "host=h password=p",
            "host = h  port=5432 PASSWORD = 'it\\'s' dbname=x",
            "password='a \\' b' user=u",
            "password=",
        ] {
            assert!(is_connection_string(value), "{value:?}");
        }
        for value in [
            "passwords come from dsn_env, never password=... in a contract",
            "the scheme is postgres://, set in DATABASE_URL",
            "host=h port=5432 dbname=x",
            "password='unterminated",
            "password='a'b",
            "redis://h",
            "://h",
            "",
        ] {
            assert!(!is_connection_string(value), "{value:?}");
        }
    }

    #[test]
    fn urls_with_passwords_anywhere_in_the_text() {
        for text in [
            "https://u:p@h/x",
            "calls (https://bot:tok@api.example.com) daily",
            "'http://a:b@c'",
            "git+ssh://u:p@h",
        ] {
            assert!(has_url_password(text), "{text:?}");
        }
        for text in [
            "https://user@h:8080/x",
            "https://h/a:b@c",
            "https://u:@h",
            "the :// separator u:p@h",
            "ssh://git@h:22",
            "é://",
        ] {
            assert!(!has_url_password(text), "{text:?}");
        }
    }
}
