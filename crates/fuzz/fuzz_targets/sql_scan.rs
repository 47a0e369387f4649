//! The SQL placeholder scanner (`onex_host::handlers::db::placeholder_count`).
//!
//! Properties: it never panics; it reports no placeholder that is not written in the
//! text (the count is 0, or at most the highest `$n` anywhere in it, literals and comments
//! included); and it takes linear-ish time: the text repeated to about 32 KiB scans in
//! well under 100 ms, where a scan that went back over the text for each `$`, quote or
//! comment would take seconds.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use onex_host::handlers::db::placeholder_count;

/// Linear scanning of 32 KiB takes well under a millisecond: this leaves room for a busy
/// machine, not for a quadratic scan.
const PUMPED_LIMIT: Duration = Duration::from_millis(100);
const PUMPED_BYTES: usize = 32 * 1024;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let count = placeholder_count(sql);
    assert!(
        count <= highest_written(sql),
        "{count} placeholders in {sql:?}"
    );

    if sql.is_empty() {
        return;
    }
    let pumped = sql.repeat(PUMPED_BYTES.div_ceil(sql.len()));
    // Twice before failing: once may be the machine, not the scanner.
    let slow = (0..2).all(|_| {
        let start = Instant::now();
        placeholder_count(&pumped);
        start.elapsed() > PUMPED_LIMIT
    });
    assert!(
        !slow,
        "scanning {sql:?} repeated to {} bytes took over {PUMPED_LIMIT:?}",
        pumped.len()
    );
});

/// The highest `$n` anywhere in `sql` (a number too large for `usize` is `usize::MAX`).
fn highest_written(sql: &str) -> usize {
    sql.split('$')
        .skip(1)
        .map(|after| {
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            match digits.is_empty() {
                true => 0,
                false => digits.parse().unwrap_or(usize::MAX),
            }
        })
        .max()
        .unwrap_or(0)
}
