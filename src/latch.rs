//! `Latch`: a one-shot event many tasks can wait for (a signal arrived, a deadline passed).

use async_channel::{Receiver, Sender};

/// Set once; every waiter, present or future, then proceeds. Clones share the event.
#[derive(Clone, Debug)]
pub struct Latch {
    // Closing the channel is the event: every `recv` then returns at once.
    set: Sender<()>,
    waiting: Receiver<()>,
}

impl Default for Latch {
    fn default() -> Self {
        Self::new()
    }
}

impl Latch {
    /// A latch not yet set.
    pub fn new() -> Self {
        let (set, waiting) = async_channel::bounded(1);
        Latch { set, waiting }
    }

    /// Sets the latch; setting it again changes nothing.
    pub fn set(&self) {
        self.set.close();
    }

    /// Whether the latch is set.
    pub fn is_set(&self) -> bool {
        self.set.is_closed()
    }

    /// Waits until the latch is set.
    pub async fn wait(&self) {
        let _ = self.waiting.recv().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future;

    #[test]
    fn waiters_proceed_once_set() {
        let latch = Latch::new();
        let clone = latch.clone();
        assert!(future::block_on(future::poll_once(clone.wait())).is_none());
        latch.set();
        assert!(clone.is_set());
        future::block_on(clone.wait());
        future::block_on(latch.wait());
    }
}
