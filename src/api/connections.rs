//! The API's connections: how many are served, and who gives way when there are too many.
//!
//! Up to [`MAX_CONNECTIONS`] are served in full. Past that, a new connection takes the
//! place of the oldest idle one (open, but with no request in progress: a keep-alive
//! connection waiting, or a client still sending its headers), which is closed. When none
//! is idle, the new connection is served from a reserve of [`RESERVE`], for health probes
//! and metrics only: so that clients holding every connection cannot make the liveness
//! probe fail and the pod restart. Past the reserve too, accepting waits.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use event_listener::Event;

use crate::latch::Latch;

/// Connections served in full at once.
pub const MAX_CONNECTIONS: usize = 512;
/// Connections beyond those, served for health probes and metrics only.
pub const RESERVE: usize = 64;

/// The open connections.
#[derive(Debug, Default)]
pub(super) struct Connections {
    state: Mutex<State>,
    /// Notified whenever a connection closes.
    closed: Event,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    /// Served in full, oldest first.
    open: BTreeMap<u64, Arc<Conn>>,
    /// Served from the reserve.
    reserve: usize,
}

/// One connection, as the registry sees it.
#[derive(Debug, Default)]
pub(super) struct Conn {
    requests: AtomicUsize,
    /// Set when the connection should close once its request in progress is answered.
    pub(super) shed: Latch,
}

impl Conn {
    /// Counts a request in progress on this connection until the guard drops.
    pub(super) fn enter(self: &Arc<Self>) -> InRequest {
        self.requests.fetch_add(1, Ordering::AcqRel);
        InRequest(Arc::clone(self))
    }

    fn is_idle(&self) -> bool {
        self.requests.load(Ordering::Acquire) == 0 && !self.shed.is_set()
    }
}

/// A request in progress on a connection.
#[derive(Debug)]
pub(super) struct InRequest(Arc<Conn>);

impl Drop for InRequest {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection let in, and how it is served; it leaves the registry when dropped.
#[derive(Debug)]
pub(super) struct Admitted {
    pub(super) conn: Arc<Conn>,
    /// Served from the reserve: health probes and metrics only.
    pub(super) reserve: bool,
    id: Option<u64>,
    registry: Arc<Connections>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut state = self.registry.state();
        match self.id {
            Some(id) => {
                state.open.remove(&id);
            }
            None => state.reserve -= 1,
        }
        drop(state);
        self.registry.closed.notify(usize::MAX);
    }
}

impl Connections {
    /// Lets a new connection in, waiting while every place and the reserve are taken.
    pub(super) async fn admit(self: &Arc<Self>) -> Admitted {
        loop {
            let closed = self.closed.listen();
            if let Some(admitted) = self.try_admit() {
                return admitted;
            }
            closed.await;
        }
    }

    fn try_admit(self: &Arc<Self>) -> Option<Admitted> {
        let mut state = self.state();
        let conn = Arc::new(Conn::default());
        let full = state.open.len() < MAX_CONNECTIONS
            || state
                .open
                .values()
                .find(|open| open.is_idle())
                .is_some_and(|oldest| {
                    oldest.shed.set();
                    true
                });
        let id = if full {
            let id = state.next_id;
            state.next_id += 1;
            state.open.insert(id, Arc::clone(&conn));
            Some(id)
        } else if state.reserve < RESERVE {
            state.reserve += 1;
            None
        } else {
            return None;
        };
        Some(Admitted {
            conn,
            reserve: id.is_none(),
            id,
            registry: Arc::clone(self),
        })
    }

    /// How many connections are open, reserve included.
    pub(super) fn open(&self) -> usize {
        let state = self.state();
        state.open.len() + state.reserve
    }

    /// Waits until every connection has closed.
    pub(super) async fn all_closed(&self) {
        loop {
            let closed = self.closed.listen();
            if self.open() == 0 {
                return;
            }
            closed.await;
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_limit_the_oldest_idle_connection_gives_way_then_the_reserve_serves() {
        let registry = Arc::new(Connections::default());
        let mut admitted: Vec<Admitted> = (0..MAX_CONNECTIONS)
            .map(|_| registry.try_admit().unwrap())
            .collect();
        let busy: Vec<InRequest> = admitted[1..].iter().map(|a| a.conn.enter()).collect();
        // The first is idle: it gives way to the newcomer.
        let newcomer = registry.try_admit().unwrap();
        assert!(!newcomer.reserve);
        assert!(admitted[0].conn.shed.is_set());
        let _in_request = newcomer.conn.enter();
        admitted.push(newcomer);
        // Every other is in a request: the reserve serves, until it is full.
        let reserve: Vec<Admitted> = (0..RESERVE)
            .map(|_| registry.try_admit().unwrap())
            .collect();
        assert!(reserve.iter().all(|a| a.reserve));
        assert!(registry.try_admit().is_none());
        drop(reserve);
        drop(busy);
        drop(admitted);
        assert_eq!(registry.open(), 0);
    }
}
