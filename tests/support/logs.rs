//! The warnings and errors the library logs in this test process, kept for the tests that
//! assert what the host said: a logger of its own, installed by the first [`capture`] (the
//! host's own logger writes to standard error, which the test harness does not show to
//! tests). Tests run concurrently and share it: each looks for lines only it can cause
//! (naming its own port, say).

use std::sync::{Condvar, Mutex, Once};
use std::time::{Duration, Instant};

use log::{Level, LevelFilter, Log, Metadata, Record};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static NEW_LINE: Condvar = Condvar::new();

struct Capture;

impl Log for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= Level::Warn
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!("{} {}", record.level(), record.args());
        lines().push(line);
        NEW_LINE.notify_all();
    }

    fn flush(&self) {}
}

fn lines() -> std::sync::MutexGuard<'static, Vec<String>> {
    LINES.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// Starts keeping the warnings and errors logged from now on (once per process).
pub fn capture() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&Capture).expect("no other logger in the test process");
        log::set_max_level(LevelFilter::Warn);
    });
}

/// The first line kept that contains `text`, waiting for it up to `seconds`.
pub fn wait_for(text: &str, seconds: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut kept = lines();
    loop {
        if let Some(line) = kept.iter().find(|line| line.contains(text)) {
            return line.clone();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no log line containing {text:?} within {seconds} s; kept:\n{}",
            kept.join("\n")
        );
        kept = NEW_LINE
            .wait_timeout(kept, left)
            .unwrap_or_else(|poison| poison.into_inner())
            .0;
    }
}
