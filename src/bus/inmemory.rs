//! The in-memory event bus: one bounded FIFO queue per topic, inside the process.
//!
//! It is the MVP's bus and the embedded default. Each topic is an `async-channel` queue
//! created on first use; publishing into a full queue waits until a subscriber makes room,
//! so memory stays bounded by `capacity` messages per topic. Several subscribers of one
//! topic compete for its messages (each message goes to one of them).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_channel::{Receiver, Sender, TrySendError};
use futures_lite::future::{self, Boxed};

use super::{BusError, BusKind, EventBus, Message, Subscription, Topic};
use crate::health::HealthReport;

/// How many messages a topic holds before publishers wait, unless told otherwise.
pub const DEFAULT_CAPACITY: usize = 1024;

/// An in-process event bus with bounded per-topic queues.
#[derive(Debug)]
pub struct InMemoryEventBus {
    capacity: usize,
    state: Mutex<State>,
}

/// One topic's queue: both ends, so that it outlives its publishers and subscribers.
type Queue = (Sender<Message>, Receiver<Message>);

#[derive(Debug, Default)]
struct State {
    /// A handful of topics: ordered lookups beat hashing each publish.
    topics: BTreeMap<Topic, Queue>,
    closed: bool,
}

impl InMemoryEventBus {
    /// A bus whose topics each hold up to `capacity` messages (at least one).
    pub fn new(capacity: usize) -> Self {
        InMemoryEventBus {
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the map half-updated.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// `f` applied to the queue of `topic`, created on first use; `None` once the bus is
    /// closed. `f` runs under the bus's lock, so it must not wait.
    fn with_queue<T>(&self, topic: &Topic, f: impl FnOnce(&Queue) -> T) -> Option<T> {
        let mut state = self.lock();
        if state.closed {
            return None;
        }
        if let Some(queue) = state.topics.get(topic) {
            return Some(f(queue));
        }
        let queue = state
            .topics
            .entry(topic.clone())
            .or_insert_with(|| async_channel::bounded(self.capacity));
        Some(f(queue))
    }
}

impl Default for InMemoryEventBus {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl EventBus for InMemoryEventBus {
    fn kind(&self) -> BusKind {
        BusKind::InMemory
    }

    fn publish(&self, topic: &Topic, message: Message) -> Boxed<Result<(), BusError>> {
        let closed = || BusError::Closed(topic.clone());
        // Most publishes find room: they are done before this returns, with no waiting
        // machinery. Only a full queue needs the sender outside the lock.
        let sent = self.with_queue(topic, |(tx, _)| match tx.try_send(message) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(message)) => Err(Some((tx.clone(), message))),
            Err(TrySendError::Closed(_)) => Err(None),
        });
        match sent {
            Some(Ok(())) => Box::pin(future::ready(Ok(()))),
            Some(Err(Some((tx, message)))) => {
                let topic = topic.clone();
                Box::pin(async move { tx.send(message).await.map_err(|_| BusError::Closed(topic)) })
            }
            Some(Err(None)) | None => Box::pin(future::ready(Err(closed()))),
        }
    }

    fn subscribe(&self, topic: &Topic) -> Result<Subscription, BusError> {
        let rx = self
            .with_queue(topic, |(_, rx)| rx.clone())
            .ok_or_else(|| BusError::Closed(topic.clone()))?;
        Ok(Box::pin(rx))
    }

    fn start_consuming(&self) -> Boxed<Result<(), BusError>> {
        // Queues deliver as soon as they exist; there is nothing to join.
        Box::pin(async { Ok(()) })
    }

    fn health_check(&self) -> Boxed<HealthReport> {
        let state = self.lock();
        let depths: serde_json::Map<String, serde_json::Value> = state
            .topics
            .iter()
            .map(|(topic, (tx, _))| (topic.to_string(), tx.len().into()))
            .collect();
        let report = HealthReport::new(!state.closed)
            .with("kind", BusKind::InMemory.as_str())
            .with("capacity", self.capacity)
            .with("queue_depths", depths);
        Box::pin(async move { report })
    }

    fn close_topic(&self, topic: &Topic) {
        self.with_queue(topic, |(tx, _)| tx.close());
    }

    fn depth(&self, topic: &Topic) -> Option<usize> {
        Some(self.lock().topics.get(topic).map_or(0, |(tx, _)| tx.len()))
    }

    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        for (tx, _) in state.topics.values() {
            tx.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{StreamExt, future};

    #[test]
    fn delivers_in_order_per_topic() {
        future::block_on(async {
            let bus = InMemoryEventBus::new(8);
            let (a, b) = (Topic::new("a"), Topic::new("b"));
            let mut sub_a = bus.subscribe(&a).unwrap();
            let mut sub_b = bus.subscribe(&b).unwrap();
            for i in 0..5u8 {
                bus.publish(&a, vec![i]).await.unwrap();
                bus.publish(&b, vec![100 + i]).await.unwrap();
            }
            for i in 0..5u8 {
                assert_eq!(sub_a.next().await, Some(vec![i]));
                assert_eq!(sub_b.next().await, Some(vec![100 + i]));
            }
        });
    }

    #[test]
    fn a_full_topic_makes_publishers_wait() {
        future::block_on(async {
            let bus = InMemoryEventBus::new(2);
            let topic = Topic::new("t");
            let mut sub = bus.subscribe(&topic).unwrap();
            bus.publish(&topic, vec![1]).await.unwrap();
            bus.publish(&topic, vec![2]).await.unwrap();
            assert_eq!(bus.depth(&topic), Some(2));

            let mut third = bus.publish(&topic, vec![3]);
            assert!(
                future::poll_once(&mut third).await.is_none(),
                "must wait while full"
            );
            assert_eq!(sub.next().await, Some(vec![1]));
            third.await.unwrap();
            assert_eq!(sub.next().await, Some(vec![2]));
            assert_eq!(sub.next().await, Some(vec![3]));
        });
    }

    #[test]
    fn close_drains_then_ends_subscriptions_and_refuses_publishes() {
        future::block_on(async {
            let bus = InMemoryEventBus::new(4);
            let topic = Topic::new("t");
            let mut sub = bus.subscribe(&topic).unwrap();
            bus.publish(&topic, vec![1]).await.unwrap();
            bus.close();
            assert_eq!(sub.next().await, Some(vec![1]));
            assert_eq!(sub.next().await, None);
            let error = bus.publish(&topic, vec![2]).await.unwrap_err();
            assert_eq!(error.to_string(), "topic 't' is closed");
            assert!(!bus.health_check().await.healthy);
        });
    }

    #[test]
    fn closing_one_topic_leaves_the_others_open() {
        future::block_on(async {
            let bus = InMemoryEventBus::new(4);
            let (a, b) = (Topic::new("a"), Topic::new("b"));
            let mut sub_a = bus.subscribe(&a).unwrap();
            bus.publish(&a, vec![1]).await.unwrap();
            bus.close_topic(&a);
            assert!(bus.publish(&a, vec![2]).await.is_err());
            bus.publish(&b, vec![3]).await.unwrap();
            assert_eq!(sub_a.next().await, Some(vec![1]));
            assert_eq!(sub_a.next().await, None);
        });
    }

    #[test]
    fn health_reports_queue_depths() {
        future::block_on(async {
            let bus = InMemoryEventBus::new(4);
            let topic = Topic::new("t");
            bus.publish(&topic, vec![1]).await.unwrap();
            let report = bus.health_check().await;
            assert!(report.healthy);
            assert_eq!(report.details["queue_depths"]["t"], 1);
        });
    }
}
