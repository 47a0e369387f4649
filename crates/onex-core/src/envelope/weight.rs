//! How much memory a JSON message takes once parsed, told from its bytes before parsing,
//! and what a payload already parsed holds ([`payload_weight`]).
//!
//! Parsed JSON is not the size of its text: every value is a 32-byte `serde_json::Value`,
//! every object entry a map slot, and vectors grow by doubling, so `[0,0,0,…]` takes some
//! 30 times its length. An 8 MiB line of it would be a quarter of a gigabyte. The host
//! charges a message's [`weight`] to its memory budget before parsing it, and refuses one
//! that could never fit. The estimate counts the places where a value or entry begins
//! outside strings (`,` `:` `[` `{`), at [`VALUE_COST`] bytes each, plus the text itself
//! [`TEXT_COPIES`] times: as read, as copied into the parsed strings, and as written
//! again in the response.

/// What one value or object entry costs once parsed, at most: the 32-byte value, its
/// share of a map node or of a vector grown by doubling.
pub const VALUE_COST: u64 = 64;

/// How many times a message's text is held while it is handled: the message itself, the
/// strings parsed out of it, and the response that echoes them.
pub const TEXT_COPIES: u64 = 3;

/// Messages up to this size are charged as if every other byte began a value, without
/// reading them: cheaper than scanning, and still a bound.
pub const UNREAD_UP_TO: usize = 16 * 1024;

/// The bytes `message` takes once parsed, together with the message itself: an upper
/// bound for a small message, an estimate from its structure for a larger one.
pub fn weight(message: &[u8]) -> u64 {
    if message.len() <= UNREAD_UP_TO {
        return message.len() as u64 * (TEXT_COPIES + VALUE_COST / 2);
    }
    let mut weigher = Weigher::default();
    weigher.feed(message);
    weigher.weight()
}

/// A running estimate over a message that arrives in pieces (an HTTP body).
#[derive(Clone, Debug, Default)]
pub struct Weigher {
    in_string: bool,
    escaped: bool,
    values: u64,
    bytes: u64,
}

impl Weigher {
    /// Reads the next piece of the message.
    pub fn feed(&mut self, mut piece: &[u8]) {
        self.bytes += piece.len() as u64;
        while !piece.is_empty() {
            if self.in_string {
                // Skip to the string's next quote or backslash in one search.
                if self.escaped {
                    self.escaped = false;
                    piece = &piece[1..];
                    continue;
                }
                let Some(at) = memchr::memchr2(b'"', b'\\', piece) else {
                    return;
                };
                if piece[at] == b'"' {
                    self.in_string = false;
                } else {
                    self.escaped = true;
                }
                piece = &piece[at + 1..];
                continue;
            }
            match piece[0] {
                b'"' => self.in_string = true,
                b',' | b':' | b'[' | b'{' => self.values += 1,
                _ => {}
            }
            piece = &piece[1..];
        }
    }

    /// The estimate so far: the text [`TEXT_COPIES`] times, and [`VALUE_COST`] for every
    /// value begun.
    pub fn weight(&self) -> u64 {
        self.bytes * TEXT_COPIES + (self.values + 1) * VALUE_COST
    }
}

/// The bytes a parsed payload holds: [`VALUE_COST`] for it and for every value and entry
/// inside it, and the text of its strings, keys and numbers. What a copy of it takes (the
/// retry layer keeps one of a request's payload).
pub fn payload_weight(payload: &super::Payload) -> u64 {
    VALUE_COST + entries_weight(payload)
}

fn entries_weight(entries: &serde_json::Map<String, serde_json::Value>) -> u64 {
    entries
        .iter()
        .map(|(key, value)| key.len() as u64 + value_weight(value))
        .sum()
}

fn value_weight(value: &serde_json::Value) -> u64 {
    use serde_json::Value;
    let inside = match value {
        Value::String(text) => text.len() as u64,
        Value::Number(number) => number.as_str().len() as u64,
        Value::Array(items) => items.iter().map(value_weight).sum(),
        Value::Object(entries) => entries_weight(entries),
        Value::Null | Value::Bool(_) => 0,
    };
    VALUE_COST + inside
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_outside_strings_are_counted_and_strings_skipped() {
        let mut weigher = Weigher::default();
        weigher.feed(br#"{"a,b:[{":[1,2,"x\"],"],"c":{}}"#);
        // `{`, `:`, `[`, `,`, `,`, `,`, `:`, `{`: the commas and brackets in strings are not.
        assert_eq!(weigher.values, 8);
    }

    #[test]
    fn a_message_split_anywhere_weighs_the_same() {
        let message = br#"{"k":"a\\\"b,[","n":[1,2,3],"o":{"p":"q"}}"#;
        let whole = {
            let mut weigher = Weigher::default();
            weigher.feed(message);
            weigher.weight()
        };
        for split in 0..message.len() {
            let mut weigher = Weigher::default();
            weigher.feed(&message[..split]);
            weigher.feed(&message[split..]);
            assert_eq!(weigher.weight(), whole, "split at {split}");
        }
    }

    #[test]
    fn dense_values_weigh_far_more_than_long_strings() {
        let numbers = format!("{{\"a\":[{}0]}}", "0,".repeat(100_000));
        let text = format!("{{\"a\":\"{}\"}}", "x".repeat(200_000));
        assert!(weight(numbers.as_bytes()) > 30 * numbers.len() as u64);
        assert!(weight(text.as_bytes()) < 3 * text.len() as u64 + 1024);
        assert_eq!(weight(b"{}"), 2 * 35);
    }

    #[test]
    fn a_parsed_payload_weighs_its_values_and_its_text() {
        let value = serde_json::json!({"body": "x".repeat(1000), "n": [1, 22, null]});
        let serde_json::Value::Object(payload) = &value else {
            unreachable!("an object")
        };
        // The object, its two entries' values and the array's three: six values; the
        // text: "body", 1,000 x, "n", "1" and "22".
        assert_eq!(
            payload_weight(payload),
            6 * VALUE_COST + 4 + 1000 + 1 + 1 + 2
        );
        // Never more than what the message was charged before it was parsed.
        let text = value.to_string();
        assert!(payload_weight(payload) < weight(text.as_bytes()));
    }
}
