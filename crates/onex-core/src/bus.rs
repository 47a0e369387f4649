//! The event-bus trait: the transport envelopes arrive on and leave by.
//!
//! A bus moves messages (serialised envelopes, as bytes) between named topics, the way
//! Kafka would: the host decodes what it consumes, so a malformed message still gets an
//! error response instead of vanishing inside the transport. This module owns the trait,
//! [`Topic`] and [`BusError`]; implementations live in submodules ([`inmemory`]).

pub mod inmemory;
mod queue;

use std::fmt;
use std::sync::Arc;

use futures_lite::future::Boxed;
use futures_lite::stream;
use serde::{Deserialize, Serialize};

use crate::envelope::Envelope;
use crate::health::HealthReport;

/// One message on a topic: a serialised envelope, or whatever a producer sent.
pub type Message = Vec<u8>;

/// The messages of one topic, in the order the bus delivers them.
pub type Subscription = stream::Boxed<Delivery>;

/// A message taken from a topic, with the receipt its bus settles once it is answered.
#[derive(Debug)]
pub struct Delivery {
    /// The message.
    pub message: Message,
    /// What the bus needs back once the message's response has been published.
    pub receipt: Receipt,
}

impl Delivery {
    /// A message whose bus needs nothing back (an in-process queue).
    pub fn unreceipted(message: Message) -> Self {
        Delivery {
            message,
            receipt: Receipt::none(),
        }
    }
}

/// How a bus that must not lose messages learns that one has been answered.
///
/// A networked bus commits its place in a topic only past messages whose receipts were
/// settled, so a message is settled once its response has been published (or it was set
/// aside on a dead-letter topic), and never before: a host that stops with a message
/// unsettled has it delivered again. Dropping a receipt unsettled abandons the message.
pub struct Receipt(Option<Box<dyn Settle>>);

/// The bus's side of a [`Receipt`].
pub trait Settle: Send {
    /// The key the message was published with: its response is published with the same
    /// key, so that responses to one key stay in order.
    fn key(&self) -> Option<&[u8]>;

    /// Where the message was read, for logs (e.g. `topic/partition@offset`).
    fn origin(&self) -> String;

    /// The message has been answered: the bus may move its committed place past it.
    fn settle(self: Box<Self>);
}

impl Receipt {
    /// A receipt with nothing to settle.
    pub fn none() -> Self {
        Receipt(None)
    }

    /// A receipt settled through `settle`.
    pub fn new(settle: Box<dyn Settle>) -> Self {
        Receipt(Some(settle))
    }

    /// The message's key, if its bus keeps one.
    pub fn key(&self) -> Option<&[u8]> {
        self.0.as_ref().and_then(|settle| settle.key())
    }

    /// Where the message was read, if its bus says.
    pub fn origin(&self) -> Option<String> {
        self.0.as_ref().map(|settle| settle.origin())
    }

    /// Marks the message answered.
    pub fn settle(self) {
        if let Some(settle) = self.0 {
            settle.settle();
        }
    }
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.origin() {
            Some(origin) => write!(f, "Receipt({origin})"),
            None => f.write_str("Receipt(none)"),
        }
    }
}

/// The kinds of event bus: a closed set, chosen by `event_bus.kind` in the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// In-process queues, one bounded FIFO per topic; no network.
    InMemory,
    /// Kafka topics, the host one member of a consumer group (schema 1.1.0).
    Kafka,
}

impl BusKind {
    /// Every bus kind.
    pub const ALL: [BusKind; 2] = [BusKind::InMemory, BusKind::Kafka];

    /// The name used in contracts.
    pub fn as_str(self) -> &'static str {
        match self {
            BusKind::InMemory => "inmemory",
            BusKind::Kafka => "kafka",
        }
    }

    /// The bus kind named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<BusKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for BusKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A topic name, e.g. `onex.my_runtime.cmd.v1`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(Arc<str>);

impl Topic {
    /// The topic named `name`.
    pub fn new(name: &str) -> Self {
        Topic(Arc::from(name))
    }

    /// The topic's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an event bus can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The topic (or the whole bus) was closed; it takes no more messages.
    #[error("topic '{0}' is closed")]
    Closed(Topic),
    /// The bus has no dead-letter topic to set a message aside on.
    #[error("no dead-letter topic is configured")]
    NoDeadLetterTopic,
    /// The bus's brokers or client failed.
    #[error("{0}")]
    Transport(String),
}

/// An event bus: publish messages to topics, subscribe to topics.
///
/// Delivery is FIFO per topic; nothing is promised across topics. Publishing waits while
/// a topic is full (backpressure), so a bus never holds unbounded memory.
pub trait EventBus: Send + Sync {
    /// The bus's kind.
    fn kind(&self) -> BusKind;

    /// Publishes `message` to `topic`, waiting while the topic is full.
    fn publish(&self, topic: &Topic, message: Message) -> Boxed<Result<(), BusError>>;

    /// Publishes `envelope`, serialised as one line of JSON, to `topic`.
    fn publish_envelope(&self, envelope: &Envelope, topic: &Topic) -> Boxed<Result<(), BusError>> {
        self.publish(topic, envelope.to_json_bytes())
    }

    /// Publishes `response`, the answer to the message `receipt` came with, to `topic`:
    /// with the request's key where the bus keeps keys. Completes once the bus holds it
    /// durably (a networked bus: acknowledged by its brokers).
    fn publish_reply(
        &self,
        response: &Envelope,
        topic: &Topic,
        receipt: &Receipt,
    ) -> Boxed<Result<(), BusError>> {
        let _ = receipt;
        self.publish_envelope(response, topic)
    }

    /// Sets `message` aside on the bus's dead-letter topic, with `reason`, when its
    /// response could not be published. Fails where the bus has no such topic.
    fn dead_letter(
        &self,
        message: &[u8],
        receipt: &Receipt,
        reason: &str,
    ) -> Boxed<Result<(), BusError>> {
        let _ = (message, receipt, reason);
        Box::pin(futures_lite::future::ready(Err(
            BusError::NoDeadLetterTopic,
        )))
    }

    /// The stream of messages published to `topic`; several subscribers share them.
    fn subscribe(&self, topic: &Topic) -> Result<Subscription, BusError>;

    /// Starts delivering to subscribers (joining a consumer group, for a networked bus).
    fn start_consuming(&self) -> Boxed<Result<(), BusError>>;

    /// Reports whether the bus can move messages, with per-topic facts.
    fn health_check(&self) -> Boxed<HealthReport>;

    /// Stops taking messages on `topic`: later publishes to it fail, and its
    /// subscriptions end once they have delivered everything already accepted.
    fn close_topic(&self, topic: &Topic);

    /// How many messages wait on `topic`, where the bus can tell.
    fn depth(&self, topic: &Topic) -> Option<usize>;

    /// Stops taking messages on every topic, as [`EventBus::close_topic`] does for one.
    fn close(&self);
}
