//! The credentials lint: a contract names where a secret is (`dsn_env`, `dsn_file`),
//! never the secret itself.
//!
//! This module owns the rule and runs it over every contract (runtime, node, handler)
//! before any field is read, so that a credential is refused whatever key holds it,
//! known or not. It walks the YAML parser's events, so the document's structure, not
//! its lines, decides what is a key and what is a value, whatever the style (block,
//! flow, quoted, escaped, literal or folded) and through anchors and aliases. It refuses:
//! - a mapping key `password` (also `passwd`, `*_password`, in any case) with a
//!   non-empty value;
//! - a string that is a PostgreSQL connection string (`postgres://`, `postgresql://`,
//!   or keyword pairs with `password=`), with or without a password;
//! - a string holding a URL with a password, `scheme://user:pass@host`.
//!
//! Prose that only mentions these (a description saying the password comes from
//! `dsn_env`) passes. The rules on one string are in `values`.
//!
//! A problem names the line and what was found there, never the value: the contract's
//! errors are printed and logged, and must not carry what they refuse.

mod values;

use std::collections::HashMap;
use std::path::Path;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span};

use super::error::{ContractError, Problems};

/// `Err` listing every place in `text` (read from `file`) that embeds a credential.
///
/// Text that is not valid YAML is linted up to its first syntax error and no further:
/// the parse that follows runs the same parser (serde-saphyr's default options are the
/// parser's defaults), so it stops there too and reports the error itself.
pub(super) fn refuse_credentials(text: &str, file: &Path) -> Result<(), ContractError> {
    let mut walk = Walk::default();
    for next in Parser::new_from_str(text) {
        let Ok((event, span)) = next else { break };
        walk.event(event, span);
    }
    walk.found.sort_by_key(|(line, _)| *line);
    let mut problems = Problems::new(file);
    for (line, found) in walk.found {
        let (message, hint, action) = found.explained();
        problems.add(line, message, hint, action);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.into_error())
    }
}

/// A credential found, without its value.
enum Found {
    /// A key naming a password, with a value: the key (shown sanitised).
    PasswordKey(String),
    ConnectionString,
    UrlPassword,
}

impl Found {
    fn explained(self) -> (String, &'static str, &'static str) {
        match self {
            Found::PasswordKey(key) => (
                format!(
                    "the key '{}' looks like an embedded credential",
                    shown(&key)
                ),
                "secrets come from the environment or from files, never from a contract",
                "remove it; for a database, set config.dsn_env or config.dsn_file on the db binding",
            ),
            Found::ConnectionString => (
                "a value here is a PostgreSQL connection string".to_owned(),
                "connection strings may carry passwords, so they come from the environment or from files, never from a contract",
                "remove it, and set config.dsn_env (a variable's name) or config.dsn_file (a file's path) on the db binding",
            ),
            Found::UrlPassword => (
                "a URL here carries a password (scheme://user:password@host)".to_owned(),
                "secrets come from the environment or from files, never from a contract",
                "remove the user and password from the URL",
            ),
        }
    }
}

/// The longest key name a problem repeats, in characters.
const MAX_SHOWN_KEY: usize = 64;

/// `key` fit for a one-line message: control characters escaped (a quoted YAML key may
/// hold any), and cut short if long.
fn shown(key: &str) -> String {
    let mut shown = String::new();
    for c in key.chars().take(MAX_SHOWN_KEY) {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    if key.chars().nth(MAX_SHOWN_KEY).is_some() {
        shown.push('…');
    }
    shown
}

/// One complete node (a scalar, an alias, or a collection at its end), as its parent
/// mapping needs it.
#[derive(Clone)]
struct Node {
    line: Option<u64>,
    /// Null, an empty string or an empty collection: a password key may have it.
    empty: bool,
    /// For a scalar that names a password, its text: the key, if this node is one.
    password_name: Option<String>,
}

/// A collection being walked.
struct Frame {
    mapping: bool,
    /// Its anchor's id, or 0.
    anchor: usize,
    line: Option<u64>,
    children: usize,
    /// In a mapping: the next node is a value (its key has been seen).
    awaiting_value: bool,
    /// In a mapping: the key just seen, if it names a password, and its line.
    password_key: Option<(String, Option<u64>)>,
}

#[derive(Default)]
struct Walk {
    stack: Vec<Frame>,
    /// Each anchored node as an alias stands for it: anchor ids are unique in a stream,
    /// and an alias never re-walks (nor re-reports) what its anchor already did.
    anchors: HashMap<usize, Node>,
    found: Vec<(Option<u64>, Found)>,
}

impl Walk {
    fn event(&mut self, event: Event<'_>, span: Span) {
        let line = u64::try_from(span.start.line()).ok().filter(|&l| l > 0);
        match event {
            Event::Scalar(text, style, anchor, _) => {
                if values::is_connection_string(&text) {
                    self.found.push((line, Found::ConnectionString));
                } else if values::has_url_password(&text) {
                    self.found.push((line, Found::UrlPassword));
                }
                let null = style == ScalarStyle::Plain
                    && matches!(text.as_ref(), "~" | "null" | "Null" | "NULL");
                let node = Node {
                    line,
                    empty: text.is_empty() || null,
                    password_name: values::names_password(&text).then(|| text.into_owned()),
                };
                self.complete(node, anchor);
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).map_or(
                    Node {
                        line,
                        empty: false,
                        password_name: None,
                    },
                    |anchored| Node {
                        line,
                        ..anchored.clone()
                    },
                );
                self.complete(node, 0);
            }
            Event::SequenceStart(_, anchor, _) | Event::MappingStart(_, anchor, _) => {
                self.stack.push(Frame {
                    mapping: matches!(event, Event::MappingStart(..)),
                    anchor,
                    line,
                    children: 0,
                    awaiting_value: false,
                    password_key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(frame) = self.stack.pop() {
                    let node = Node {
                        line: frame.line,
                        empty: frame.children == 0,
                        password_name: None,
                    };
                    self.complete(node, frame.anchor);
                }
            }
            _ => {}
        }
    }

    /// Records `node` (anchored as `anchor`, or 0) as the next child of the collection
    /// being walked: a key, a key's value, or an item.
    fn complete(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let Some(parent) = self.stack.last_mut() else {
            return;
        };
        parent.children += 1;
        if !parent.mapping {
            return;
        }
        if parent.awaiting_value {
            match parent.password_key.take() {
                Some((key, key_line)) if !node.empty => {
                    self.found.push((key_line, Found::PasswordKey(key)));
                }
                _ => {}
            }
        } else {
            parent.password_key = node.password_name.map(|name| (name, node.line));
        }
        parent.awaiting_value = !parent.awaiting_value;
    }
}

#[cfg(test)]
mod tests;
