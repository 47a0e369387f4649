//! The memory budget: how many bytes of requests and responses the host holds at once.
//!
//! A message size limit alone bounds one request, not the host: 64 requests of 8 MiB each
//! are half a gigabyte. So everything that holds request or response data in memory
//! (a body being read, a parsed request, a handler's reply) first takes a [`Charge`]
//! against one [`Budget`] shared by the whole host, and gives it back once the response
//! has left. A charge can grow while a request runs (a response body arriving), and then
//! never waits: it either fits now or the work fails with a clear error, since a request
//! that waits for more while holding some could wait for a request that waits for it.
//! Only a charge taken whole, before anything is held, may wait ([`Budget::take`]).
//!
//! No runtime is involved: waiting is an `event_listener` event, so the core can use it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use event_listener::Event;

/// A number of bytes the host may hold at once, shared by everything that holds some.
#[derive(Debug)]
pub struct Budget {
    total: u64,
    state: Mutex<State>,
    /// Notified whenever bytes are given back.
    freed: Event,
}

#[derive(Debug)]
struct State {
    available: u64,
    /// Charges waiting to be taken whole: while one waits, nothing else is granted, so
    /// a large request is not starved by a stream of small ones.
    waiting: usize,
}

impl Budget {
    /// A budget of `total` bytes.
    pub fn new(total: u64) -> Arc<Budget> {
        Arc::new(Budget {
            total,
            state: Mutex::new(State {
                available: total,
                waiting: 0,
            }),
            freed: Event::new(),
        })
    }

    /// The budget's size in bytes.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// How many bytes are charged now.
    pub fn held(&self) -> u64 {
        self.total - self.state().available
    }

    /// A charge of `bytes`, now, or `None` if they do not fit (or a charge is waiting).
    pub fn try_take(self: &Arc<Self>, bytes: u64) -> Option<Charge> {
        self.try_reserve(bytes, false).then(|| self.charge(bytes))
    }

    /// A charge of `bytes`, waiting until they fit; `None` at once if they never could
    /// (more than the whole budget).
    pub async fn take(self: &Arc<Self>, bytes: u64) -> Option<Charge> {
        if bytes > self.total {
            return None;
        }
        if self.try_reserve(bytes, false) {
            return Some(self.charge(bytes));
        }
        self.state().waiting += 1;
        let waiter = Waiter(self);
        loop {
            let freed = self.freed.listen();
            if self.try_reserve(bytes, true) {
                drop(waiter);
                return Some(self.charge(bytes));
            }
            freed.await;
        }
    }

    /// Takes `bytes` if they fit and nobody waits ahead (`as_waiter`: unless the caller
    /// is itself one of those waiting).
    fn try_reserve(&self, bytes: u64, as_waiter: bool) -> bool {
        let mut state = self.state();
        let others_wait = state.waiting > usize::from(as_waiter);
        if bytes > state.available || (others_wait && !as_waiter) {
            return false;
        }
        state.available -= bytes;
        true
    }

    fn charge(self: &Arc<Self>, bytes: u64) -> Charge {
        Charge(Some(Arc::new(Held {
            budget: Arc::clone(self),
            bytes: AtomicU64::new(bytes),
        })))
    }

    fn give_back(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let someone_waits = {
            let mut state = self.state();
            state.available += bytes;
            state.waiting > 0
        };
        // Only a waiting `take` listens; notifying takes the event's lock, so only then.
        if someone_waits {
            self.freed.notify(usize::MAX);
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock, and the state stays consistent if any did.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Counts a waiting [`Budget::take`] until it is served or cancelled.
struct Waiter<'a>(&'a Budget);

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.0.state().waiting -= 1;
        // The next waiter, or a `try_take` that stood back for this one, may fit now.
        self.0.freed.notify(usize::MAX);
    }
}

/// Bytes charged to a budget for one request; given back when the last clone drops.
///
/// Clones share the charge: the host keeps one until the response has left, the handler
/// one while it works, and either may grow it.
#[derive(Clone, Debug, Default)]
pub struct Charge(Option<Arc<Held>>);

#[derive(Debug)]
struct Held {
    budget: Arc<Budget>,
    bytes: AtomicU64,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.give_back(*self.bytes.get_mut());
    }
}

impl Charge {
    /// A charge against no budget: every growth fits. For callers that bound memory
    /// some other way (tests, a library user routing one envelope).
    pub fn unlimited() -> Charge {
        Charge(None)
    }

    /// How many bytes this charge holds.
    pub fn bytes(&self) -> u64 {
        self.0
            .as_ref()
            .map_or(0, |held| held.bytes.load(Ordering::Acquire))
    }

    /// Adds `bytes` to the charge if they fit now; `false` if they do not.
    #[must_use]
    pub fn try_grow(&self, bytes: u64) -> bool {
        let Some(held) = &self.0 else {
            return true;
        };
        if !held.budget.try_reserve(bytes, false) {
            return false;
        }
        held.bytes.fetch_add(bytes, Ordering::AcqRel);
        true
    }

    /// Gives back all but `bytes` of the charge (an estimate turned out too high).
    pub fn shrink_to(&self, bytes: u64) {
        let Some(held) = &self.0 else {
            return;
        };
        let before = held.bytes.fetch_min(bytes, Ordering::AcqRel);
        held.budget.give_back(before.saturating_sub(bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future;

    #[test]
    fn charges_are_given_back_when_their_last_clone_drops() {
        let budget = Budget::new(100);
        let charge = budget.try_take(60).unwrap();
        assert!(budget.try_take(50).is_none());
        let clone = charge.clone();
        assert!(clone.try_grow(30));
        assert!(!charge.try_grow(20));
        assert_eq!((charge.bytes(), budget.held()), (90, 90));
        charge.shrink_to(40);
        assert_eq!(budget.held(), 40);
        drop(charge);
        assert_eq!(budget.held(), 40);
        drop(clone);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn a_waiting_take_is_served_before_later_try_takes() {
        future::block_on(async {
            let budget = Budget::new(100);
            let first = budget.try_take(80).unwrap();
            let mut waiting = Box::pin(budget.take(50));
            assert!(future::poll_once(&mut waiting).await.is_none());
            // Room for a small one, but the waiter comes first.
            assert!(budget.try_take(10).is_none());
            drop(first);
            let served = waiting.await.unwrap();
            assert_eq!(served.bytes(), 50);
            assert!(budget.try_take(10).is_some());
        });
    }

    #[test]
    fn a_cancelled_wait_stops_holding_others_back() {
        future::block_on(async {
            let budget = Budget::new(100);
            let _first = budget.try_take(80).unwrap();
            let mut waiting = Box::pin(budget.take(50));
            assert!(future::poll_once(&mut waiting).await.is_none());
            drop(waiting);
            assert!(budget.try_take(10).is_some());
        });
    }

    #[test]
    fn more_than_the_whole_budget_is_refused_at_once() {
        future::block_on(async {
            let budget = Budget::new(100);
            assert!(budget.take(101).await.is_none());
            assert!(Charge::unlimited().try_grow(u64::MAX));
        });
    }
}
