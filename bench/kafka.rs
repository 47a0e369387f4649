//! k. Kafka: one host's envelopes/s through a real broker (tansu, the test broker) beside
//! a raw rdkafka consume -> produce -> store-offset loop with the host's own settings and
//! the same number in flight.
//!
//! Each run pre-produces the records, lets the consumer join, and times from its first
//! answer to its last, so neither producing nor joining the group is counted.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::io::Read;

use onex_host::bus::Topic;
use onex_host::contract::{DEFAULT_SESSION_TIMEOUT, KafkaConfig};
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::Row;
use crate::kafka_broker::{Broker, Topics};
use crate::measure::Ratio;
use crate::measure::{DEVELOPMENT, median};

const INPUT: &str = "onex.bench.orders.cmd.v1";
const OUTPUT: &str = "onex.bench.orders.evt.v1";
const RECORDS: usize = 20_000;
const IN_FLIGHT: usize = 8;

/// k. Envelopes/s of one kafka host beside the raw loop, run by run.
pub fn kafka(reps: usize) -> Vec<Row> {
    let (mut host, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        host.push(host_rate());
        raw.push(raw_rate());
    }
    let ratio = Ratio::of_pairs(&host, &raw);
    vec![Row {
        scenario: "k. kafka envelopes/s, one host, 8 in flight, local.echo",
        figure: format!("{:.0} env/s", median(&mut host)),
        baseline: format!("raw rdkafka loop: {:.0} rec/s", median(&mut raw)),
        met: Some(ratio.median >= 0.8),
        ratio: Some(ratio),
        target: ">= 80% of the raw loop",
    }]
}

fn broker_with_backlog(group: &str) -> (Broker, KafkaConfig) {
    let broker = Broker::start();
    broker.create_topic(INPUT, 6);
    broker.create_topic(OUTPUT, 1);
    broker.produce_only(
        INPUT,
        (0..RECORDS).map(|i| {
            let line = format!(
                "{{\"envelope_id\":\"{}\",\"target_node\":\"echo_node\",\"operation\":\"local.echo\",\"payload\":{{\"n\":{i},\"s\":\"hello\"}}}}",
                uuid::Uuid::new_v4()
            );
            (format!("key-{}", i % 64), line.into_bytes())
        }),
    );
    let config = KafkaConfig {
        bootstrap_servers: broker.bootstrap(),
        consumer_group: group.to_owned(),
        input: Topic::new(INPUT),
        output: Topic::new(OUTPUT),
        dead_letter: None,
        session_timeout: DEFAULT_SESSION_TIMEOUT,
    };
    (broker, config)
}

/// The dev host on the kafka bus, timed by its `/metrics` from first to last answer.
fn host_rate() -> f64 {
    let (broker, _) = broker_with_backlog("bench-hosts");
    let dir = tempfile::tempdir().expect("a directory");
    let write = |path: &str, text: String| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("directories");
        std::fs::write(path, text).expect("a contract");
    };
    write(
        "runtime/k.yaml",
        format!(
            "schema_version: \"1.1.0\"\nruntime:\n  name: \"bench\"\n  version: \"1.0.0\"\n  event_bus:\n    kind: \"kafka\"\n    config:\n      bootstrap_servers: \"{}\"\n      consumer_group: \"bench-hosts\"\n      topics:\n        input: \"{INPUT}\"\n        output: \"{OUTPUT}\"\n  handlers:\n    - type: \"local\"\n  nodes:\n    - slug: \"echo_node\"\n",
            broker.bootstrap()
        ),
    );
    write(
        "nodes/echo_node.yaml",
        "schema_version: \"1.0.0\"\nnode_version: \"1.0.0\"\nname: \"echo_node\"\nnode_type: \"EFFECT_GENERIC\"\nio_operations:\n  - type: \"local\"\n    operations: [\"local.echo\"]\n".to_owned(),
    );
    let in_flight = IN_FLIGHT.to_string();
    let mut child = Command::new(DEVELOPMENT)
        .args([
            "runtime/k.yaml",
            "--listen",
            "127.0.0.1:0",
            "--max-in-flight",
            &in_flight,
        ])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the host starts");
    let stderr = child.stderr.take().expect("stderr");
    let (addr_tx, addr_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("HTTP API listening on http://").nth(1) {
                let _ = addr_tx.send(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
        }
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the API address");
    let produced = || -> usize {
        isahc::get(format!("http://{addr}/metrics"))
            .ok()
            .and_then(|mut r| {
                let mut text = String::new();
                r.body_mut().read_to_string(&mut text).ok().map(|_| text)
            })
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("onex_bus_records_produced_total "))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut first = None;
    let rate = loop {
        assert!(
            Instant::now() < deadline,
            "the host did not answer every record"
        );
        let done = produced();
        let now = Instant::now();
        if done > 0 && first.is_none() {
            first = Some((now, done));
        }
        if done >= RECORDS {
            let (start, at_start) = first.unwrap_or((now, 0));
            let elapsed = now.duration_since(start).as_secs_f64().max(1e-6);
            break (RECORDS - at_start) as f64 / elapsed;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = child.kill();
    let _ = child.wait();
    rate
}

/// Delivery reports, by the record's index.
struct Acks(mpsc::Sender<usize>);

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = Box<usize>;

    fn delivery(&self, result: &DeliveryResult<'_>, index: Box<usize>) {
        if result.is_ok() {
            let _ = self.0.send(*index);
        }
    }
}

/// Consume a record, produce its value keyed as it was, store its offset once the
/// brokers acknowledge it; at most [`IN_FLIGHT`] unacknowledged.
fn raw_rate() -> f64 {
    let (_broker, config) = broker_with_backlog("bench-raw");
    let consumer: BaseConsumer = onex_host::kafka::consumer_settings(&config, "bench-raw")
        .create()
        .expect("a consumer");
    let (acks, acked) = mpsc::channel();
    let producer: ThreadedProducer<Acks> =
        onex_host::kafka::producer_settings(&config, "bench-raw")
            .create_with_context(Acks(acks))
            .expect("a producer");
    consumer.subscribe(&[INPUT]).expect("subscribes");
    let mut waiting: VecDeque<(i32, i64)> = VecDeque::new();
    let (mut sent, mut done) = (0usize, 0usize);
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(180);
    while done < RECORDS {
        assert!(Instant::now() < deadline, "the raw loop did not finish");
        // Full: wait for an acknowledgement; else take what has come.
        let wait = if waiting.len() >= IN_FLIGHT {
            Duration::from_millis(100)
        } else {
            Duration::ZERO
        };
        let mut ack = acked.recv_timeout(wait).ok();
        while let Some(_index) = ack {
            // One output partition: acknowledgements come in the order of sending.
            if let Some((partition, offset)) = waiting.pop_front() {
                let mut offsets = TopicPartitionList::new();
                let _ = offsets.add_partition_offset(INPUT, partition, Offset::Offset(offset + 1));
                let _ = consumer.store_offsets(&offsets);
            }
            done += 1;
            ack = acked.try_recv().ok();
        }
        if waiting.len() >= IN_FLIGHT {
            continue;
        }
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(1)) else {
            continue;
        };
        first.get_or_insert_with(Instant::now);
        let value = message.payload().unwrap_or_default().to_vec();
        let key = message.key().unwrap_or_default().to_vec();
        waiting.push_back((message.partition(), message.offset()));
        let record = BaseRecord::with_opaque_to(OUTPUT, Box::new(sent))
            .payload(&value)
            .key(&key);
        if producer.send(record).is_err() {
            waiting.pop_back();
            continue;
        }
        sent += 1;
    }
    let elapsed = first.map_or(1e-6, |start| start.elapsed().as_secs_f64());
    RECORDS as f64 / elapsed
}
