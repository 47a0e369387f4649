//! Reading SQL text without running it: how many placeholders it uses, and which
//! patterns look like injection.
//!
//! The scanner knows PostgreSQL's lexical rules well enough to skip what is not code:
//! string literals (`'…'`, `E'…'` with backslash escapes), quoted identifiers (`"…"`),
//! dollar-quoted strings (`$tag$…$tag$`), line comments (`--`) and nested block comments.

/// What a scan found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Scan {
    /// The highest placeholder used (`$3` → 3): the number of parameters the SQL needs.
    pub(super) placeholders: usize,
    /// Suspicious patterns found: `;--`, `DROP`, `UNION` outside a subquery.
    pub(super) suspicious: Vec<&'static str>,
}

/// Scans `sql`.
pub(super) fn scan(sql: &str) -> Scan {
    let bytes = sql.as_bytes();
    let mut scan = Scan::default();
    let mut code = Vec::with_capacity(bytes.len());
    let mut depths = Vec::with_capacity(bytes.len());
    let mut depth = 0usize;
    let mut last_code = b' ';
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        let next = match rest {
            [b'-', b'-', ..] => {
                if last_code == b';' {
                    flag(&mut scan, ";--");
                }
                find(bytes, i, b"\n").map_or(bytes.len(), |end| end + 1)
            }
            [b'/', b'*', ..] => block_comment_end(bytes, i),
            [b'\'', ..] => quoted_end(bytes, i + 1, b'\'', false),
            [b'E' | b'e', b'\'', ..] if !ident_before(&code) => {
                quoted_end(bytes, i + 2, b'\'', true)
            }
            [b'"', ..] => quoted_end(bytes, i + 1, b'"', false),
            [b'$', digit, ..] if digit.is_ascii_digit() && !ident_before(&code) => {
                let end = i + 1 + rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
                let number = sql[i + 1..end].parse::<usize>().unwrap_or(usize::MAX);
                scan.placeholders = scan.placeholders.max(number);
                push(&mut code, &mut depths, b'?', depth);
                last_code = b'?';
                end
            }
            [b'$', ..] if !ident_before(&code) => match dollar_tag(bytes, i) {
                Some(tag) => {
                    find(bytes, i + tag.len(), tag).map_or(bytes.len(), |end| end + tag.len())
                }
                None => {
                    push(&mut code, &mut depths, b'$', depth);
                    i + 1
                }
            },
            [byte, ..] => {
                match byte {
                    b'(' => depth += 1,
                    b')' => depth = depth.saturating_sub(1),
                    _ => {}
                }
                push(&mut code, &mut depths, byte.to_ascii_uppercase(), depth);
                if !byte.is_ascii_whitespace() {
                    last_code = *byte;
                }
                i + 1
            }
            [] => break,
        };
        if code.last() != Some(&b' ')
            && next > i + 1
            && !matches!(rest, [b'$', d, ..] if d.is_ascii_digit())
        {
            // Whatever was skipped separates words, like whitespace.
            push(&mut code, &mut depths, b' ', depth);
        }
        i = next;
    }
    for (word, pattern) in [(&b"DROP"[..], "DROP"), (&b"UNION"[..], "UNION")] {
        let mut from = 0;
        while let Some(at) = find(&code, from, word) {
            let before = at.checked_sub(1).map(|b| code[b]);
            let after = code.get(at + word.len()).copied();
            let bounded = !before.is_some_and(is_ident) && !after.is_some_and(is_ident);
            if bounded && (pattern == "DROP" || depths[at] == 0) {
                flag(&mut scan, pattern);
                break;
            }
            from = at + 1;
        }
    }
    scan
}

fn flag(scan: &mut Scan, pattern: &'static str) {
    if !scan.suspicious.contains(&pattern) {
        scan.suspicious.push(pattern);
    }
}

fn push(code: &mut Vec<u8>, depths: &mut Vec<usize>, byte: u8, depth: usize) {
    code.push(byte);
    depths.push(depth);
}

fn is_ident(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$' || byte >= 0x80
}

/// Whether the code so far ends in an identifier character (`a$1` is one identifier).
fn ident_before(code: &[u8]) -> bool {
    code.last().is_some_and(|&b| is_ident(b) && b != b'?')
}

fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|at| at + from)
}

/// The index after the closing `quote` of a literal whose body starts at `from`; a doubled
/// quote is an escaped quote, and so is a backslash-escaped one where `backslashes` apply.
fn quoted_end(bytes: &[u8], from: usize, quote: u8, backslashes: bool) -> usize {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslashes => i += 2,
            b if b == quote && bytes.get(i + 1) == Some(&quote) => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index after a (nested) block comment starting at `from`.
fn block_comment_end(bytes: &[u8], from: usize) -> usize {
    let (mut i, mut level) = (from, 0usize);
    while i < bytes.len() {
        match &bytes[i..] {
            [b'/', b'*', ..] => (level, i) = (level + 1, i + 2),
            [b'*', b'/', ..] => {
                level -= 1;
                i += 2;
                if level == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The dollar-quote tag (`$$` or `$name$`) starting at `from`, if there is one.
fn dollar_tag(bytes: &[u8], from: usize) -> Option<&[u8]> {
    let name_len = bytes[from + 1..]
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80)
        .count();
    let close = from + 1 + name_len;
    let starts_with_digit = bytes.get(from + 1).is_some_and(u8::is_ascii_digit);
    (bytes.get(close) == Some(&b'$') && !starts_with_digit).then(|| &bytes[from..=close])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholders(sql: &str) -> usize {
        scan(sql).placeholders
    }

    #[test]
    fn counts_the_highest_placeholder_outside_literals_and_comments() {
        assert_eq!(placeholders("SELECT 1"), 0);
        assert_eq!(placeholders("SELECT $1, $2 WHERE a = $1"), 2);
        assert_eq!(placeholders("SELECT $3"), 3);
        assert_eq!(
            placeholders("SELECT '$1', \"$2\", $1 -- $9\n/* $8 /* $7 */ */"),
            1
        );
        assert_eq!(placeholders("SELECT E'it\\'s $5', 'it''s $6', $2"), 2);
        assert_eq!(placeholders("SELECT $$ $4 $$, $tag$ $5 $tag$, $1"), 1);
        assert_eq!(placeholders("SELECT a$1 FROM t"), 0);
        assert_eq!(placeholders("SELECT $10"), 10);
    }

    #[test]
    fn flags_suspicious_patterns_only_in_code() {
        assert_eq!(scan("SELECT 1;--").suspicious, [";--"]);
        assert_eq!(scan("SELECT 1; -- comment").suspicious, [";--"]);
        assert_eq!(scan("drop table users").suspicious, ["DROP"]);
        assert_eq!(
            scan("SELECT a FROM t UNION SELECT b FROM u").suspicious,
            ["UNION"]
        );
        assert!(
            scan("SELECT * FROM (SELECT a FROM t UNION SELECT b FROM u) s")
                .suspicious
                .is_empty()
        );
        assert!(
            scan("SELECT 'drop table; union' AS x -- DROP")
                .suspicious
                .is_empty()
        );
        assert!(scan("SELECT dropped, reunion FROM t").suspicious.is_empty());
        assert!(scan("SELECT 1 -- plain comment").suspicious.is_empty());
        assert!(scan("SELECT $1").suspicious.is_empty());
    }

    #[test]
    fn unterminated_text_does_not_panic() {
        for sql in ["'", "E'\\", "\"", "/* /*", "$tag$ x", "$", "--", "$1$"] {
            let _ = scan(sql);
        }
    }
}
