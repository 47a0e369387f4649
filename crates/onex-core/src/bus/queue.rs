//! One topic's queue: first in, first out, bounded in messages and in bytes, shared by
//! any number of publishers and subscribers.
//!
//! One mutex holds the messages, the bytes they hold and whether anyone waits; a publish
//! or a take locks it once, and an event is notified only when someone has waited since
//! the last notification: every message is on the envelope path, where a notification
//! costs a fence and a lock round trip (docs/PERFORMANCE.md measures what a
//! general-purpose channel cost here). So a burst of messages into a topic whose
//! subscriber waits wakes it once, not once per message until it runs. A waiting
//! publisher is woken once the queue has drained to half its bounds, not at every message
//! taken: a publisher that keeps a topic full (the `--stdin` feed) then refills it in
//! bursts instead of waking once per message.

use std::collections::VecDeque;
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
    /// A subscriber has started waiting since `arrived` was last notified. Set with the
    /// lock held, by a subscriber that listens before releasing it, so no arrival is
    /// missed; one that gives up waiting leaves it set, which costs one spare wake-up.
    taker_waits: bool,
    /// A publisher has started waiting since `drained` was last notified, the same way.
    publisher_waits: bool,
}

/// Why a message was not queued now.
pub(super) enum Refused {
    /// No room now: the message is given back, to wait with ([`Queue::push`]).
    Full(Message),
    Closed,
}

impl Queue {
    pub(super) fn new(capacity: usize, limit: u64) -> Queue {
        Queue {
            state: Mutex::new(State::default()),
            capacity,
            limit,
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
            let drained = {
                let mut state = self.state();
                if state.closed {
                    return Err(());
                }
                if self.fits(&state, &message) {
                    self.enter(state, message);
                    return Ok(());
                }
                // Marked and listening before the lock is released: a subscriber that
                // takes a message after that sees this publisher.
                state.publisher_waits = true;
                self.drained.listen()
            };
            drained.await;
        }
    }

    /// The next message, waiting for one; `None` once the queue is closed and empty.
    pub(super) async fn take(&self) -> Option<Message> {
        loop {
            let arrived = {
                let mut state = self.state();
                if let Some(message) = state.messages.pop_front() {
                    state.bytes -= message.len() as u64;
                    let wake = state.publisher_waits
                        && state.messages.len() <= self.capacity / 2
                        && state.bytes <= self.limit / 2;
                    if wake {
                        state.publisher_waits = false;
                    }
                    drop(state);
                    if wake {
                        self.drained.notify(usize::MAX);
                    }
                    return Some(message);
                }
                if state.closed {
                    return None;
                }
                state.taker_waits = true;
                self.arrived.listen()
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
        let wake = std::mem::take(&mut state.taker_waits);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A waiting subscriber is notified at most once per wait: the wake-ups must still
    /// come, to a subscriber served a burst and waiting again as to the first.
    #[test]
    fn a_subscriber_is_woken_by_a_burst_and_again_after_waiting_again() {
        let queue = Queue::new(8, 1024);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut context = Context::from_waker(&waker);
        let mut taking = pin!(queue.take());
        assert!(taking.as_mut().poll(&mut context).is_pending());
        for byte in 0..3u8 {
            assert!(queue.try_push(vec![byte]).is_ok());
        }
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(taking.poll(&mut context), Poll::Ready(Some(vec![0])));
        for byte in 1..3u8 {
            let mut taking = pin!(queue.take());
            assert_eq!(
                taking.as_mut().poll(&mut context),
                Poll::Ready(Some(vec![byte]))
            );
        }
        // Waiting again once the queue is empty: the next message wakes it again.
        let mut waiting = pin!(queue.take());
        assert!(waiting.as_mut().poll(&mut context).is_pending());
        assert!(queue.try_push(vec![3]).is_ok());
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert_eq!(waiting.poll(&mut context), Poll::Ready(Some(vec![3])));
    }

    /// Publishers and subscribers on threads of their own, through a queue far smaller
    /// than what passes: a lost wake-up would leave one waiting for good.
    #[test]
    fn threads_publishing_and_taking_through_a_small_queue_lose_nothing() {
        const PUBLISHERS: u32 = 4;
        const EACH: u32 = 5_000;
        let queue = Arc::new(Queue::new(4, 64));
        let (done, finished) = std::sync::mpsc::channel();
        let takers: Vec<_> = (0..3)
            .map(|_| {
                let (queue, done) = (Arc::clone(&queue), done.clone());
                std::thread::spawn(move || {
                    let mut taken = 0u64;
                    while let Some(message) = futures_lite::future::block_on(queue.take()) {
                        taken += u64::from(message[0]);
                    }
                    let _ = done.send(taken);
                })
            })
            .collect();
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|_| {
                let queue = Arc::clone(&queue);
                std::thread::spawn(move || {
                    for n in 0..EACH {
                        let message = vec![(n % 7) as u8 + 1; 1 + (n % 40) as usize];
                        futures_lite::future::block_on(queue.push(message)).unwrap();
                    }
                })
            })
            .collect();
        for publisher in publishers {
            publisher.join().unwrap();
        }
        queue.close();
        let expected: u64 =
            (0..EACH).map(|n| u64::from(n % 7) + 1).sum::<u64>() * u64::from(PUBLISHERS);
        let mut total = 0;
        for _ in &takers {
            total += finished
                .recv_timeout(std::time::Duration::from_secs(30))
                .expect("every subscriber finishes");
        }
        assert_eq!(total, expected);
        for taker in takers {
            taker.join().unwrap();
        }
    }
}
