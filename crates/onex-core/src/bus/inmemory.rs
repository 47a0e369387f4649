//! The in-memory event bus: one bounded FIFO queue per topic, inside the process.
//!
//! It is the MVP's bus and the embedded default. Each topic is a queue (the `queue` module)
//! created on first use; publishing into a full queue waits until a subscriber makes room,
//! so a topic holds at most `capacity` messages and `capacity_bytes` bytes (a message
//! larger than that still enters an empty topic, alone). Several subscribers of one topic
//! compete for its messages (each message goes to one of them).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_lite::future::{self, Boxed};
use futures_lite::stream;

use super::queue::{Queue, Refused};
use super::{BusError, BusKind, Delivery, EventBus, Message, Subscription, Topic};
use crate::health::HealthReport;

/// How many messages a topic holds before publishers wait, unless told otherwise.
pub const DEFAULT_CAPACITY: usize = 1024;
/// How many bytes a topic holds before publishers wait, unless told otherwise.
pub const DEFAULT_CAPACITY_BYTES: u64 = 4 * 1024 * 1024;

/// An in-process event bus with bounded per-topic queues.
#[derive(Debug)]
pub struct InMemoryEventBus {
    capacity: usize,
    capacity_bytes: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// A handful of topics: ordered lookups beat hashing each publish.
    topics: BTreeMap<Topic, Arc<Queue>>,
    closed: bool,
}

impl InMemoryEventBus {
    /// A bus whose topics each hold up to `capacity` messages (at least one) and
    /// [`DEFAULT_CAPACITY_BYTES`].
    pub fn new(capacity: usize) -> Self {
        Self::with_capacity(capacity, DEFAULT_CAPACITY_BYTES)
    }

    /// A bus whose topics each hold up to `capacity` messages (at least one) and
    /// `capacity_bytes` bytes.
    pub fn with_capacity(capacity: usize, capacity_bytes: u64) -> Self {
        InMemoryEventBus {
            capacity: capacity.max(1),
            capacity_bytes,
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
    fn with_queue<T>(&self, topic: &Topic, f: impl FnOnce(&Arc<Queue>) -> T) -> Option<T> {
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
            .or_insert_with(|| Arc::new(Queue::new(self.capacity, self.capacity_bytes)));
        Some(f(queue))
    }
}

/// The future of a publish that has already happened. It holds nothing, so boxing it
/// allocates nothing: a `future::ready(Ok(()))` in its place cost every envelope two
/// allocations (its request in, its response out).
struct Published;

impl Future for Published {
    type Output = Result<(), BusError>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(()))
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
        // machinery. Only a full queue is waited on, outside the bus's lock.
        let sent = self.with_queue(topic, |queue| match queue.try_push(message) {
            Ok(()) => Ok(()),
            Err(Refused::Full(message)) => Err(Some((Arc::clone(queue), message))),
            Err(Refused::Closed) => Err(None),
        });
        match sent {
            Some(Ok(())) => Box::pin(Published),
            Some(Err(Some((queue, message)))) => {
                let topic = topic.clone();
                Box::pin(async move {
                    queue
                        .push(message)
                        .await
                        .map_err(|()| BusError::Closed(topic))
                })
            }
            Some(Err(None)) | None => Box::pin(future::ready(Err(closed()))),
        }
    }

    fn subscribe(&self, topic: &Topic) -> Result<Subscription, BusError> {
        let queue = self
            .with_queue(topic, Arc::clone)
            .ok_or_else(|| BusError::Closed(topic.clone()))?;
        Ok(Box::pin(stream::unfold(queue, |queue| async move {
            let message = queue.take().await?;
            Some((Delivery::unreceipted(message), queue))
        })))
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
            .map(|(topic, queue)| (topic.to_string(), queue.len().into()))
            .collect();
        let report = HealthReport::new(!state.closed)
            .with("kind", BusKind::InMemory.as_str())
            .with("capacity", self.capacity)
            .with("capacity_bytes", self.capacity_bytes)
            .with("queue_depths", depths);
        Box::pin(async move { report })
    }

    fn close_topic(&self, topic: &Topic) {
        self.with_queue(topic, |queue| queue.close());
    }

    fn depth(&self, topic: &Topic) -> Option<usize> {
        Some(self.lock().topics.get(topic).map_or(0, |queue| queue.len()))
    }

    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        for queue in state.topics.values() {
            queue.close();
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
                assert_eq!(sub_a.next().await.map(|d| d.message), Some(vec![i]));
                assert_eq!(sub_b.next().await.map(|d| d.message), Some(vec![100 + i]));
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
            assert_eq!(sub.next().await.map(|d| d.message), Some(vec![1]));
            third.await.unwrap();
            assert_eq!(sub.next().await.map(|d| d.message), Some(vec![2]));
            assert_eq!(sub.next().await.map(|d| d.message), Some(vec![3]));
        });
    }

    #[test]
    fn a_waiting_publisher_is_let_in_once_the_topic_has_drained_to_half() {
        future::block_on(async {
            let bus = InMemoryEventBus::new(4);
            let topic = Topic::new("t");
            let mut sub = bus.subscribe(&topic).unwrap();
            for i in 0..4u8 {
                bus.publish(&topic, vec![i]).await.unwrap();
            }
            let mut fifth = bus.publish(&topic, vec![4]);
            assert!(future::poll_once(&mut fifth).await.is_none());
            assert_eq!(sub.next().await.map(|d| d.message), Some(vec![0]));
            // Three of four left: not woken yet (a publisher that keeps a topic full
            // refills it in bursts, not one wake-up per message).
            assert!(future::poll_once(&mut fifth).await.is_none());
            assert_eq!(sub.next().await.map(|d| d.message), Some(vec![1]));
            fifth.await.unwrap();
            for i in 2..5u8 {
                assert_eq!(sub.next().await.map(|d| d.message), Some(vec![i]));
            }
        });
    }

    #[test]
    fn a_topic_full_in_bytes_makes_publishers_wait_but_passes_one_large_message() {
        future::block_on(async {
            let bus = InMemoryEventBus::with_capacity(100, 10);
            let topic = Topic::new("t");
            let mut sub = bus.subscribe(&topic).unwrap();
            bus.publish(&topic, vec![1; 6]).await.unwrap();
            let mut second = bus.publish(&topic, vec![2; 6]);
            assert!(
                future::poll_once(&mut second).await.is_none(),
                "must wait while 6 + 6 bytes exceed 10"
            );
            assert_eq!(sub.next().await.map(|d| d.message), Some(vec![1; 6]));
            second.await.unwrap();
            assert_eq!(sub.next().await.map(|d| d.message), Some(vec![2; 6]));
            // Larger than the whole topic: it enters alone.
            bus.publish(&topic, vec![3; 50]).await.unwrap();
            let mut small = bus.publish(&topic, vec![4]);
            assert!(future::poll_once(&mut small).await.is_none());
            assert_eq!(sub.next().await.map(|d| d.message), Some(vec![3; 50]));
            small.await.unwrap();
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
            assert_eq!(sub.next().await.map(|d| d.message), Some(vec![1]));
            assert_eq!(sub.next().await.map(|d| d.message), None);
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
            assert_eq!(sub_a.next().await.map(|d| d.message), Some(vec![1]));
            assert_eq!(sub_a.next().await.map(|d| d.message), None);
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
