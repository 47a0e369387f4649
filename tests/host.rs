//! The host process: the specification's end-to-end flow (4.3) on the in-memory bus, and
//! the handler lifecycle (initialised once, shut down exactly once, whatever happens).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_lite::StreamExt;
use futures_lite::future::{self, Boxed};
use onex_host::bus::inmemory::{DEFAULT_CAPACITY, InMemoryEventBus};
use onex_host::bus::{EventBus, Topic};
use onex_host::envelope::{Envelope, Payload, Stamp};
use onex_host::handler::{Description, Handler, HandlerError, HandlerRequest, HandlerType};
use onex_host::health::HealthReport;
use onex_host::host::RuntimeHost;
use onex_host::latch::Latch;
use onex_host::runtime::NodeRuntime;
use onex_host::wiring;
use serde_json::json;
use uuid::Uuid;

use crate::support::fixture::dev_host;
use crate::support::{host, request_line, within};

fn object(value: serde_json::Value) -> Payload {
    value.as_object().cloned().unwrap_or_default()
}

#[test]
fn an_envelope_published_to_the_bus_is_answered_on_the_output_topic() {
    let fixture = dev_host();
    let host = host::build(&fixture, "runtime/dev.yaml", 500);
    let client = Stamp::deterministic(100);
    let request = Envelope::request(
        &client,
        "upper_node",
        "local.transform",
        Some(object(json!({"name": "ada"}))),
    );
    let responses = within(5, host::serve(&host, vec![request.to_json().into_bytes()]));
    within(5, host.shutdown());

    let response: Envelope = serde_json::from_slice(&responses[0]).expect("a response envelope");
    assert_eq!(
        response,
        Envelope {
            envelope_id: Uuid::from_u128(501),
            envelope_version: "1.0.0".into(),
            correlation_id: Uuid::from_u128(102),
            causation_id: Some(Uuid::from_u128(101)),
            source_node: Some("upper_node".into()),
            target_node: None,
            handler_type: Some("local".into()),
            operation: Some("local.transform".into()),
            payload: Some(object(json!({"name": "ADA"}))),
            metadata: object(json!({"original_target_node": "upper_node"})),
            timestamp: time::macros::datetime!(2024-01-01 0:00 UTC),
            is_response: true,
            success: Some(true),
            error: None,
        }
    );
}

#[test]
fn messages_are_answered_in_the_order_they_arrive() {
    let fixture = dev_host();
    let host = host::build(&fixture, "runtime/dev.yaml", 0);
    let messages = (0..2000u32)
        .map(|n| request_line(n, "echo_node", "local.echo", &format!("{{\"n\":{n}}}")).into_bytes())
        .collect();
    let responses = within(10, host::serve(&host, messages));
    within(5, host.shutdown());
    for (n, response) in responses.iter().enumerate() {
        let response: Envelope = serde_json::from_slice(response).expect("JSON");
        assert_eq!(response.payload.expect("a payload")["n"], n);
    }
}

/// A handler that counts its lifecycle calls; it can be told to fail initialisation.
struct Counting {
    handler_type: HandlerType,
    fail_init: bool,
    /// Its health check never answers (a dependency frozen).
    health_hangs: bool,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    initialize: AtomicUsize,
    shutdown: AtomicUsize,
}

impl Handler for Counting {
    fn handler_type(&self) -> HandlerType {
        self.handler_type
    }
    fn initialize(&self) -> Boxed<Result<(), HandlerError>> {
        self.counts.initialize.fetch_add(1, Ordering::SeqCst);
        let result = if self.fail_init {
            Err(HandlerError::execution("cannot reach the server"))
        } else {
            Ok(())
        };
        Box::pin(future::ready(result))
    }
    fn shutdown(&self) -> Boxed<()> {
        self.counts.shutdown.fetch_add(1, Ordering::SeqCst);
        Box::pin(future::ready(()))
    }
    fn execute(&self, request: HandlerRequest) -> Boxed<Result<Option<Payload>, HandlerError>> {
        Box::pin(future::ready(Ok(Some(request.payload))))
    }
    fn health_check(&self) -> Boxed<HealthReport> {
        if self.health_hangs {
            return Box::pin(future::pending());
        }
        Box::pin(future::ready(HealthReport::new(true)))
    }
    fn describe(&self) -> Description {
        Description {
            handler_type: self.handler_type,
            version: "0.0.0".into(),
            supported_operations: vec![],
            required_payload_fields: vec![],
            response_shape: BTreeMap::new(),
            limits: BTreeMap::new(),
        }
    }
}

fn counting_host(fail_second: bool) -> (RuntimeHost, Arc<Counts>, Arc<Counts>) {
    hanging_host(fail_second, false)
}

/// [`counting_host`], whose second handler's health check never answers if `hangs`.
fn hanging_host(fail_second: bool, hangs: bool) -> (RuntimeHost, Arc<Counts>, Arc<Counts>) {
    let (first, second) = (Arc::new(Counts::default()), Arc::new(Counts::default()));
    let mut runtime = NodeRuntime::new(Stamp::deterministic(0));
    for (handler_type, fail_init, counts) in [
        (HandlerType::Http, false, &first),
        (HandlerType::Db, fail_second, &second),
    ] {
        let handler = Counting {
            handler_type,
            fail_init,
            health_hangs: hangs && handler_type == HandlerType::Db,
            counts: Arc::clone(counts),
        };
        runtime
            .register_handler(Box::new(handler))
            .expect("registers");
    }
    let bus: Arc<dyn EventBus> = Arc::new(InMemoryEventBus::new(4));
    let host = RuntimeHost::new(
        "t".into(),
        runtime,
        bus,
        Topic::new("in"),
        Topic::new("out"),
        1,
    );
    (host, first, second)
}

#[test]
fn a_health_check_that_never_answers_makes_readiness_say_so_in_time() {
    let (host, _, _) = hanging_host(false, true);
    within(10, async {
        let _inputs = host.start().await.expect("starts");
        let readiness = host.readiness().await;
        assert!(!readiness.ready);
        assert_eq!(readiness.components["db"], false);
        assert_eq!(readiness.components["http"], true);
        let report = host.handlers_report().await;
        assert_eq!(
            report["handlers"][1]["health"]["error"],
            "the health check did not answer within 2 s"
        );
    });
}

#[test]
fn handlers_are_initialised_once_and_shut_down_exactly_once() {
    let (host, first, second) = counting_host(false);
    let messages = (0..3u8).map(|n| vec![b'0' + n]).collect();
    assert_eq!(within(5, host::serve(&host, messages)).len(), 3);
    within(5, host.shutdown());
    for counts in [&first, &second] {
        assert_eq!(counts.initialize.load(Ordering::SeqCst), 1);
        assert_eq!(counts.shutdown.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn a_failed_initialisation_still_shuts_every_handler_down_once() {
    let (host, first, second) = counting_host(true);
    let error = within(5, host.start()).err().expect("start fails");
    assert_eq!(
        error.code().map(|c| c.as_str()),
        Some("PROTOCOL_CONFIGURATION_ERROR")
    );
    assert_eq!(
        error.to_string(),
        "protocol configuration: db failed to initialise: cannot reach the server"
    );
    within(5, host.shutdown());
    assert_eq!(first.shutdown.load(Ordering::SeqCst), 1);
    assert_eq!(second.shutdown.load(Ordering::SeqCst), 1);
}

#[test]
fn a_closed_output_topic_stops_the_host_with_an_event_bus_error() {
    let (host, _, _) = counting_host(false);
    let error = within(5, async {
        let inputs = host.start().await.expect("starts");
        host.bus()
            .publish(host.input_topic(), b"{}".to_vec())
            .await
            .expect("publishes");
        host.bus().close();
        host.consume(inputs, &Latch::new())
            .await
            .expect_err("the response cannot be published")
    });
    assert_eq!(error.code().map(|c| c.as_str()), Some("EVENT_BUS_ERROR"));
    within(5, host.shutdown());
}

#[test]
fn a_malformed_message_whose_answer_waits_for_room_is_answered_at_the_deadline() {
    let fixture = dev_host();
    let host = host::build(&fixture, "runtime/dev.yaml", 0);
    let last = within(5, async {
        let inputs = host.start().await.expect("starts");
        let bus = host.bus();
        let mut outputs = bus.subscribe(host.output_topic()).expect("subscribes");
        // A full output topic: the answer to the next message waits for room.
        for _ in 0..DEFAULT_CAPACITY {
            bus.publish(host.output_topic(), b"filler".to_vec())
                .await
                .expect("fills");
        }
        bus.publish(host.input_topic(), b"not json".to_vec())
            .await
            .expect("publishes");
        let deadline = Latch::new();
        let draining = async {
            while bus.depth(host.input_topic()) != Some(0) {
                future::yield_now().await;
            }
            deadline.set();
            // The consumer sees the deadline while the answer still waits.
            future::yield_now().await;
            let mut last = Vec::new();
            for _ in 0..=DEFAULT_CAPACITY {
                last = outputs.next().await.expect("a message").message;
            }
            last
        };
        let (answered, last) = future::zip(host.consume(inputs, &deadline), draining).await;
        assert_eq!(answered.expect("consumes"), 1);
        last
    });
    let response: serde_json::Value = serde_json::from_slice(&last).expect("JSON");
    assert_eq!(response["error"]["code"], "ENVELOPE_VALIDATION_ERROR");
    within(5, host.shutdown());
}

#[test]
fn the_runtime_refuses_a_second_handler_of_a_type() {
    let mut runtime = NodeRuntime::new(Stamp::deterministic(0));
    let local = || wiring::build_handler(HandlerType::Local);
    runtime.register_handler(local()).expect("first");
    let error = runtime.register_handler(local()).expect_err("second");
    assert_eq!(
        error.code().map(|c| c.as_str()),
        Some("PROTOCOL_CONFIGURATION_ERROR")
    );
}

#[test]
fn readiness_follows_the_host_from_starting_to_ready_to_draining() {
    let fixture = dev_host();
    let host = host::build(&fixture, "runtime/dev.yaml", 0);
    let before = within(5, host.readiness());
    assert_eq!((before.ready, before.state), (false, "starting"));
    let inputs = within(5, host.start()).expect("starts");
    let ready = within(5, host.readiness());
    assert_eq!((ready.ready, ready.state), (true, "ready"));
    host.begin_drain();
    let draining = within(5, host.readiness());
    assert_eq!((draining.ready, draining.state), (false, "draining"));
    drop(inputs);
    within(5, host.shutdown());
    within(5, host.shutdown());
    let stopped = within(5, host.readiness());
    assert!(
        !stopped.ready,
        "a stopped host is not ready: its bus is closed"
    );
}
