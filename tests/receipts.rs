//! Receipts: a message is settled with its bus only once its response has been published
//! (or the message set aside on the dead-letter topic), and never otherwise, whatever the
//! number in flight. A networked bus commits only past settled messages, so this is what
//! "nothing lost" rests on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_lite::StreamExt;
use futures_lite::future::{self, Boxed};
use onex_host::bus::inmemory::InMemoryEventBus;
use onex_host::bus::{
    BusError, BusKind, Delivery, EventBus, Message, Receipt, Settle, Subscription, Topic,
};
use onex_host::contract::RuntimeHostContract;
use onex_host::envelope::{Envelope, Stamp};
use onex_host::handler::HandlerType;
use onex_host::health::HealthReport;
use onex_host::host::RuntimeHost;
use onex_host::latch::Latch;
use onex_host::runtime::{NodeInstance, NodeRuntime};
use onex_host::wiring;

use crate::support::fixture::dev_host;
use crate::support::{request_line, within};

/// An in-memory bus that hands out receipts, and whose replies and dead letters fail on
/// demand.
struct Receipted {
    inner: InMemoryEventBus,
    input: Topic,
    settled: Arc<AtomicUsize>,
    replies_fail: bool,
    dead_letter_works: bool,
    dead_letters: Mutex<Vec<(Message, String)>>,
    reply_keys: Mutex<Vec<Option<Vec<u8>>>>,
}

struct Counted {
    key: Vec<u8>,
    settled: Arc<AtomicUsize>,
}

impl Settle for Counted {
    fn key(&self) -> Option<&[u8]> {
        Some(&self.key)
    }
    fn origin(&self) -> String {
        format!("test@{}", String::from_utf8_lossy(&self.key))
    }
    fn settle(self: Box<Self>) {
        self.settled.fetch_add(1, Ordering::SeqCst);
    }
}

impl EventBus for Receipted {
    fn kind(&self) -> BusKind {
        BusKind::InMemory
    }
    fn publish(&self, topic: &Topic, message: Message) -> Boxed<Result<(), BusError>> {
        self.inner.publish(topic, message)
    }
    fn publish_reply(
        &self,
        response: &Envelope,
        topic: &Topic,
        receipt: &Receipt,
    ) -> Boxed<Result<(), BusError>> {
        self.reply_keys
            .lock()
            .unwrap()
            .push(receipt.key().map(<[u8]>::to_vec));
        if self.replies_fail {
            return Box::pin(future::ready(Err(BusError::Transport(
                "brokers down".into(),
            ))));
        }
        self.inner.publish_envelope(response, topic)
    }
    fn dead_letter(
        &self,
        message: &[u8],
        _receipt: &Receipt,
        reason: &str,
    ) -> Boxed<Result<(), BusError>> {
        if !self.dead_letter_works {
            return Box::pin(future::ready(Err(BusError::NoDeadLetterTopic)));
        }
        self.dead_letters
            .lock()
            .unwrap()
            .push((message.to_vec(), reason.to_owned()));
        Box::pin(future::ready(Ok(())))
    }
    fn subscribe(&self, topic: &Topic) -> Result<Subscription, BusError> {
        let deliveries = self.inner.subscribe(topic)?;
        if *topic != self.input {
            return Ok(deliveries);
        }
        let settled = Arc::clone(&self.settled);
        let mut count = 0u32;
        Ok(Box::pin(deliveries.map(move |delivery| {
            count += 1;
            let receipt = Receipt::new(Box::new(Counted {
                key: format!("k{count}").into_bytes(),
                settled: Arc::clone(&settled),
            }));
            Delivery {
                message: delivery.message,
                receipt,
            }
        })))
    }
    fn start_consuming(&self) -> Boxed<Result<(), BusError>> {
        self.inner.start_consuming()
    }
    fn health_check(&self) -> Boxed<HealthReport> {
        self.inner.health_check()
    }
    fn close_topic(&self, topic: &Topic) {
        self.inner.close_topic(topic)
    }
    fn depth(&self, topic: &Topic) -> Option<usize> {
        self.inner.depth(topic)
    }
    fn close(&self) {
        self.inner.close()
    }
}

/// The dev host's nodes on a `Receipted` bus.
fn host_on(bus: Arc<Receipted>, max_in_flight: usize) -> RuntimeHost {
    let fixture = dev_host();
    let contract = RuntimeHostContract::load(&fixture.path("runtime/dev.yaml")).expect("loads");
    let mut runtime = NodeRuntime::new(Stamp::deterministic(0));
    runtime
        .register_handler(wiring::build_handler(HandlerType::Local))
        .expect("registers");
    for node in &contract.nodes {
        runtime
            .register_node(NodeInstance::new(node.contract.clone()))
            .expect("registers");
    }
    RuntimeHost::new(
        "receipts".into(),
        runtime,
        bus,
        contract.input_topic(),
        contract.output_topic(),
        max_in_flight,
    )
}

fn bus(replies_fail: bool, dead_letter_works: bool) -> Arc<Receipted> {
    let input = Topic::new("onex.dev_host.cmd.v1");
    Arc::new(Receipted {
        inner: InMemoryEventBus::default(),
        input,
        settled: Arc::new(AtomicUsize::new(0)),
        replies_fail,
        dead_letter_works,
        dead_letters: Mutex::new(Vec::new()),
        reply_keys: Mutex::new(Vec::new()),
    })
}

/// Publishes `count` requests (every third one malformed) and consumes until the input
/// ends; returns what `consume` returned.
fn consume(host: &RuntimeHost, count: usize) -> Result<u64, onex_host::HostError> {
    within(10, async {
        let inputs = host.start().await.expect("starts");
        let _outputs = host
            .bus()
            .subscribe(host.output_topic())
            .expect("subscribes");
        for n in 0..count {
            let message = if n % 3 == 2 {
                b"not json".to_vec()
            } else {
                request_line(n as u32, "echo_node", "local.echo", "{}").into_bytes()
            };
            host.bus()
                .publish(host.input_topic(), message)
                .await
                .expect("publishes");
        }
        host.bus().close_topic(host.input_topic());
        host.consume(inputs, &Latch::new()).await
    })
}

#[test]
fn every_message_is_settled_once_its_response_is_published_with_its_key() {
    for max_in_flight in [1, 4] {
        let bus = bus(false, false);
        let host = host_on(Arc::clone(&bus), max_in_flight);
        assert_eq!(consume(&host, 9).expect("consumes"), 9);
        assert_eq!(
            bus.settled.load(Ordering::SeqCst),
            9,
            "{max_in_flight} in flight"
        );
        let mut keys: Vec<String> = bus
            .reply_keys
            .lock()
            .unwrap()
            .iter()
            .map(|key| String::from_utf8_lossy(key.as_deref().unwrap_or_default()).into_owned())
            .collect();
        keys.sort();
        let mut expected: Vec<String> = (1..=9).map(|n| format!("k{n}")).collect();
        expected.sort();
        assert_eq!(keys, expected);
        within(5, host.shutdown());
    }
}

#[test]
fn a_response_that_cannot_be_published_sets_its_request_aside_then_settles() {
    for max_in_flight in [1, 4] {
        let bus = bus(true, true);
        let host = host_on(Arc::clone(&bus), max_in_flight);
        assert_eq!(consume(&host, 6).expect("consumes"), 6);
        assert_eq!(bus.settled.load(Ordering::SeqCst), 6);
        let dead = bus.dead_letters.lock().unwrap();
        assert_eq!(dead.len(), 6);
        assert!(dead.iter().any(|(message, _)| message == b"not json"));
        assert!(
            dead[0].1.contains("could not be published: brokers down"),
            "{}",
            dead[0].1
        );
        drop(dead);
        within(5, host.shutdown());
    }
}

#[test]
fn without_a_dead_letter_topic_an_unpublished_response_stops_the_host_unsettled() {
    for max_in_flight in [1, 4] {
        let bus = bus(true, false);
        let host = host_on(Arc::clone(&bus), max_in_flight);
        let error = consume(&host, 3).expect_err("the host stops");
        assert_eq!(error.code().map(|c| c.as_str()), Some("EVENT_BUS_ERROR"));
        assert_eq!(bus.settled.load(Ordering::SeqCst), 0);
        within(5, host.shutdown());
    }
}
