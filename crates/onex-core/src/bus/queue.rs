//! One topic's queue: first in, first out, bounded in messages and in bytes, shared by
//! any number of publishers and subscribers.
//!
//! One mutex holds the messages, the bytes they hold and who waits; a publish or a take
//! locks it once, and an event is notified only when someone waits for it: every message
//! is on the envelope path, where a notification costs a fence and a lock round trip
//! (docs/PERFORMANCE.md measures what a general-purpose channel cost here). A waiting
//! publisher is woken once the queue has drained to half its bounds, not at every message
//! taken: a publisher that keeps a topic full (the `--stdin` feed) then refills it in
//! bursts instead of waking once per message.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use event_listener::Event;

use super::Message;

/// A topic's messages, with room for `capacity` of them and `limit` bytes (a message
/// larger than that still enters an empty queue, alone).
#[derive(Debug)]
pub(super) struct Queue {
    state: Mutex<State>,
    capacity: usize,
    limit: u64,
    /// Subscribers waiting for a message: counted under the lock, uncounted when served
    /// or cancelled.
    takers: AtomicUsize,
    /// Publishers waiting for room, the same way.
    publishers: AtomicUsize,
    /// Notified when a message arrives or the queue closes, if a subscriber waits.
    arrived: Event,
    /// Notified when the queue has drained to half or closes, if a publisher waits.
    drained: Event,
}

#[derive(Debug, Default)]
struct State {
    messages: VecDeque<Message>,
    bytes: u64,
    closed: bool,
}

/// Why a message was not queued now.
pub(super) enum Refused {
    /// No room now: the message is given back, to wait with ([`Queue::push`]).
    Full(Message),
    Closed,
}

/// Counts a waiting subscriber or publisher until it is served or cancelled.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Queue {
    pub(super) fn new(capacity: usize, limit: u64) -> Queue {
        Queue {
            state: Mutex::new(State::default()),
            capacity,
            limit,
            takers: AtomicUsize::new(0),
            publishers: AtomicUsize::new(0),
            arrived: Event::new(),
            drained: Event::new(),
        }
    }

    /// Queues `message` if it fits now.
    pub(super) fn try_push(&self, message: Message) -> Result<(), Refused> {
        let state = self.state();
        if state.closed {
            return Err(Refused::Closed);
        }
        if !self.fits(&state, &message) {
            return Err(Refused::Full(message));
        }
        self.enter(state, message);
        Ok(())
    }

    /// Queues `message`, waiting for room; `Err` if the queue is or gets closed.
    pub(super) async fn push(&self, message: Message) -> Result<(), ()> {
        loop {
            let (_waiting, drained) = {
                let state = self.state();
                if state.closed {
                    return Err(());
                }
                if self.fits(&state, &message) {
                    self.enter(state, message);
                    return Ok(());
                }
                // Counted and listening before the lock is released: a subscriber that
                // takes a message after that sees this publisher.
                (Waiting::new(&self.publishers), self.drained.listen())
            };
            drained.await;
        }
    }

    /// The next message, waiting for one; `None` once the queue is closed and empty.
    pub(super) async fn take(&self) -> Option<Message> {
        loop {
            let (_waiting, arrived) = {
                let mut state = self.state();
                if let Some(message) = state.messages.pop_front() {
                    state.bytes -= message.len() as u64;
                    let wake = self.publishers.load(Ordering::Relaxed) > 0
                        && state.messages.len() <= self.capacity / 2
                        && state.bytes <= self.limit / 2;
                    drop(state);
                    if wake {
                        self.drained.notify(usize::MAX);
                    }
                    return Some(message);
                }
                if state.closed {
                    return None;
                }
                (Waiting::new(&self.takers), self.arrived.listen())
            };
            arrived.await;
        }
    }

    /// Refuses new messages from now on; those queued are still taken.
    pub(super) fn close(&self) {
        self.state().closed = true;
        self.arrived.notify(usize::MAX);
        self.drained.notify(usize::MAX);
    }

    /// How many messages are queued.
    pub(super) fn len(&self) -> usize {
        self.state().messages.len()
    }

    fn fits(&self, state: &State, message: &Message) -> bool {
        state.messages.len() < self.capacity
            && (state.bytes == 0 || state.bytes + message.len() as u64 <= self.limit)
    }

    fn enter(&self, mut state: MutexGuard<'_, State>, message: Message) {
        state.bytes += message.len() as u64;
        state.messages.push_back(message);
        let wake = self.takers.load(Ordering::Relaxed) > 0;
        drop(state);
        if wake {
            self.arrived.notify(usize::MAX);
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock, and the state stays consistent if any did.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}
