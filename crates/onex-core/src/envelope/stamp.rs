//! Where new envelopes get their ids and timestamps.
//!
//! Production uses random v4 UUIDs and the system clock; tests inject
//! [`SequentialIds`] and [`ManualClock`] so that every id and time in a response is
//! known in advance.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// A source of new envelope ids.
pub trait IdGenerator: Send + Sync {
    /// The next id; never the same twice from one generator.
    fn next_id(&self) -> Uuid;
}

/// A source of the current time, in UTC.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> OffsetDateTime;
}

/// Random (v4) UUIDs.
#[derive(Clone, Copy, Debug, Default)]
pub struct RandomIds;

impl IdGenerator for RandomIds {
    fn next_id(&self) -> Uuid {
        Uuid::new_v4()
    }
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// Predictable ids for tests: `seed + 1`, `seed + 2`, … as UUIDs.
#[derive(Debug)]
pub struct SequentialIds {
    counter: AtomicU64,
}

impl SequentialIds {
    /// Ids that start after `seed`.
    pub fn new(seed: u64) -> Self {
        SequentialIds {
            counter: AtomicU64::new(seed),
        }
    }
}

impl IdGenerator for SequentialIds {
    fn next_id(&self) -> Uuid {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        Uuid::from_u128(u128::from(n))
    }
}

/// A clock that only moves when told to, for tests.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance(&self, seconds: i64) {
        let mut now = self.now.lock().unwrap_or_else(|poison| poison.into_inner());
        *now += Duration::seconds(seconds);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

/// An id generator and a clock: everything needed to stamp a new envelope.
#[derive(Clone)]
pub struct Stamp {
    ids: Arc<dyn IdGenerator>,
    clock: Arc<dyn Clock>,
}

impl Stamp {
    /// Stamps from `ids` and `clock`.
    pub fn new(ids: Arc<dyn IdGenerator>, clock: Arc<dyn Clock>) -> Self {
        Stamp { ids, clock }
    }

    /// Random ids and the system clock: what the host uses in production.
    pub fn system() -> Self {
        Self::new(Arc::new(RandomIds), Arc::new(SystemClock))
    }

    /// Sequential ids after `seed`, and a clock fixed at 2024-01-01T00:00:00Z.
    pub fn deterministic(seed: u64) -> Self {
        Self::new(
            Arc::new(SequentialIds::new(seed)),
            Arc::new(ManualClock::new(
                time::macros::datetime!(2024-01-01 0:00 UTC),
            )),
        )
    }

    /// A new envelope id.
    pub fn next_id(&self) -> Uuid {
        self.ids.next_id()
    }

    /// The current time.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}

impl fmt::Debug for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stamp").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_count_up_from_the_seed() {
        let ids = SequentialIds::new(42);
        assert_eq!(ids.next_id(), Uuid::from_u128(43));
        assert_eq!(ids.next_id(), Uuid::from_u128(44));
    }

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new(time::macros::datetime!(2024-01-01 0:00 UTC));
        assert_eq!(clock.now(), clock.now());
        clock.advance(90);
        assert_eq!(clock.now(), time::macros::datetime!(2024-01-01 0:01:30 UTC));
    }
}
