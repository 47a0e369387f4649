//! Log lines on standard error, as text for people or JSON for machines.
//!
//! Standard output belongs to response envelopes, so every line goes to standard error.
//! A line carries the time (RFC 3339, UTC), the level, the message, the runtime's name
//! once it is known, and the record's key-values (`correlation_id`, `envelope_id`,
//! `node`, `handler_type`, …), which the host attaches to every line about an envelope:
//!
//! ```text
//! 2026-01-01T00:00:00.000000Z INFO answered runtime=dev correlation_id=… outcome=ok
//! {"time":"2026-01-01T00:00:00.000000Z","level":"INFO","message":"answered","runtime":"dev","correlation_id":"…"}
//! ```
//!
//! Written here rather than taken from a crate because both formats must carry the same
//! fixed fields and key-values; the text loggers at hand drop key-values.
//!
//! Messages and values carry what requests sent (a node's name, an error's text), so in
//! text lines every control character is escaped, as JSON escapes it: no field can end
//! the line and start a forged one, or send the terminal an escape sequence. A value that
//! is not a plain word is quoted, so none can pose as another `key=value`.

use std::io::Write;
use std::sync::OnceLock;

use log::kv::{self, VisitSource};
use log::{LevelFilter, Log, Metadata, Record};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::macros::format_description;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// `time LEVEL message key=value …`
    Text,
    /// One JSON object a line.
    Json,
}

static RUNTIME: OnceLock<String> = OnceLock::new();

/// Installs the logger for the process; later calls change nothing.
pub fn init(level: LevelFilter, format: LogFormat) {
    if log::set_boxed_logger(Box::new(Logger { format })).is_ok() {
        log::set_max_level(level);
    }
}

/// Names the runtime on every later line.
pub fn set_runtime(name: &str) {
    let _ = RUNTIME.set(name.to_owned());
}

struct Logger {
    format: LogFormat,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format_line(self.format, record);
        // A log line that cannot be written has nowhere else to go.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// One record as one line, newline included.
fn format_line(format: LogFormat, record: &Record<'_>) -> String {
    let time = OffsetDateTime::now_utc()
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        ))
        .unwrap_or_default();
    let mut fields = Fields(Vec::new());
    if let Some(runtime) = RUNTIME.get() {
        fields
            .0
            .push(("runtime".to_owned(), Value::String(runtime.clone())));
    }
    let _ = record.key_values().visit(&mut fields);
    match format {
        LogFormat::Text => {
            let mut line = format!("{time} {:<5} ", record.level());
            match record.args().as_str() {
                Some(message) => push_escaped(&mut line, message),
                None => push_escaped(&mut line, &record.args().to_string()),
            }
            for (key, value) in fields.0 {
                line.push(' ');
                push_escaped(&mut line, &key);
                line.push('=');
                match value {
                    Value::String(text) => push_value(&mut line, &text),
                    other => push_value(&mut line, &other.to_string()),
                }
            }
            line.push('\n');
            line
        }
        LogFormat::Json => {
            let mut object = Map::new();
            object.insert("time".into(), Value::String(time));
            object.insert("level".into(), Value::String(record.level().to_string()));
            object.insert("message".into(), Value::String(record.args().to_string()));
            object.extend(fields.0);
            let mut line = Value::Object(object).to_string();
            line.push('\n');
            line
        }
    }
}

/// Whether `c` must not reach a text log as it is: control characters (C0, DEL, C1), the
/// Unicode line and paragraph separators some viewers break lines at, and the bidi
/// controls that make a line read differently from what it holds.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Appends `text`, each unsafe character written as an escape (`\n`, `\r`, `\t`,
/// `\u{1b}`).
fn push_escaped(line: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c if is_unsafe(c) => line.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => line.push(c),
        }
    }
}

/// Appends a key-value's value: as it is when it is a plain word, else in double quotes
/// with `"` and `\` escaped too.
fn push_value(line: &mut String, text: &str) {
    let plain = !text.is_empty()
        && !text
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '=' | '\\') || is_unsafe(c));
    if plain {
        line.push_str(text);
        return;
    }
    line.push('"');
    for c in text.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            c => push_escaped(line, c.encode_utf8(&mut [0; 4])),
        }
    }
    line.push('"');
}

/// Collects a record's key-values in order.
struct Fields(Vec<(String, Value)>);

impl<'kvs> VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        let value = if let Some(n) = value.to_i64() {
            Value::from(n)
        } else if let Some(b) = value.to_bool() {
            Value::Bool(b)
        } else {
            Value::String(value.to_string())
        };
        self.0.push((key.as_str().to_owned(), value));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_carry_the_message_level_time_and_key_values() {
        let record = Record::builder()
            .args(format_args!("answered"))
            .level(log::Level::Info)
            .key_values(&[("correlation_id", "c-1"), ("outcome", "ok")])
            .build();
        let line: Value = serde_json::from_str(&format_line(LogFormat::Json, &record)).unwrap();
        assert_eq!(line["message"], "answered");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["correlation_id"], "c-1");
        assert!(line["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn text_lines_append_key_values() {
        let record = Record::builder()
            .args(format_args!("answered"))
            .level(log::Level::Warn)
            .key_values(&[("correlation_id", "c-1")])
            .build();
        let line = format_line(LogFormat::Text, &record);
        assert!(
            line.ends_with(" WARN  answered correlation_id=c-1\n"),
            "{line}"
        );
    }

    #[test]
    fn text_lines_cannot_be_forged_by_what_they_carry() {
        let forged = "x\n2026-01-01T00:00:00.000000Z ERROR forged\r\u{1b}[31m\u{2028}\u{202e}";
        let key_values = [("node", forged), ("code", "a b"), ("q", "say \"hi\" \\")];
        let line = format_line(
            LogFormat::Text,
            &Record::builder()
                .args(format_args!("answered: node '{forged}' is not hosted"))
                .level(log::Level::Info)
                .key_values(&key_values)
                .build(),
        );
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        assert!(line.ends_with('\n') && !line.contains(['\r', '\u{1b}', '\u{2028}', '\u{202e}']));
        assert!(
            line.contains("node 'x\\n2026-01-01T00:00:00.000000Z ERROR forged\\r\\u{1b}[31m\\u{2028}\\u{202e}' is not hosted"),
            "{line}"
        );
        assert!(line.contains(r#" node="x\n2026"#), "{line}");
        assert!(line.contains(r#" code="a b""#), "{line}");
        assert!(line.ends_with(" q=\"say \\\"hi\\\" \\\\\"\n"), "{line}");
    }
}
