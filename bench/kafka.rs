//! k. Kafka: one host's envelopes/s through a real broker (tansu, the test broker) beside
//! a raw rdkafka consume -> produce -> store-offset loop with the host's own settings and
//! the same number in flight.
//!
//! Each run pre-produces the records, lets the consumer join, and times from its first
//! answer to its last, so neither producing nor joining the group is counted.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use onex_host::bus::Topic;
use onex_host::contract::KafkaConfig;
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::Row;
use crate::kafka_broker::{Broker, Topics};
use crate::kafka_host::{Answered, KafkaHost, Setup, answer_rate, threads, write_contract};
use crate::measure::Ratio;
use crate::measure::{DEVELOPMENT, cpu_of, median};

const INPUT: &str = "onex.bench.orders.cmd.v1";
const OUTPUT: &str = "onex.bench.orders.evt.v1";
const RECORDS: usize = 20_000;
const IN_FLIGHT: usize = 8;

/// k. Envelopes/s of one kafka host beside the raw loop, run by run.
pub fn kafka(reps: usize) -> Vec<Row> {
    let (mut host, mut raw) = (Vec::new(), Vec::new());
    let (mut host_cpu, mut raw_cpu) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let answered = host_rate();
        host.push(answered.rate);
        host_cpu.push(answered.cpu_us);
        let answered = raw_rate();
        raw.push(answered.rate);
        raw_cpu.push(answered.cpu_us);
    }
    let ratio = Ratio::of_pairs(&host, &raw);
    vec![Row {
        scenario: "k. kafka envelopes/s, one host, 8 in flight, local.echo",
        figure: format!(
            "{:.0} env/s, CPU {:.1} µs each",
            median(&mut host),
            median(&mut host_cpu)
        ),
        baseline: format!(
            "raw rdkafka loop: {:.0} rec/s, CPU {:.1} µs each",
            median(&mut raw),
            median(&mut raw_cpu)
        ),
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
                "{{\"envelope_id\":\"{}\",\"target_node\":\"bench_node\",\"operation\":\"local.echo\",\"payload\":{{\"n\":{i},\"s\":\"hello\"}}}}",
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
        // The test broker completes a join about half a session after it opens: with the
        // default 45 s each run waited ~23 s before its first record (not timed, either side).
        session_timeout: Duration::from_secs(6),
    };
    (broker, config)
}

/// The dev host on the kafka bus, timed by its `/metrics` from first to last answer.
fn host_rate() -> Answered {
    let (broker, config) = broker_with_backlog("bench-hosts");
    let bootstrap = broker.bootstrap();
    let dir = write_contract(&Setup {
        bootstrap: &bootstrap,
        group: &config.consumer_group,
        input: INPUT,
        output: OUTPUT,
        handler: "local",
        operation: "local.echo",
        session_timeout_ms: config.session_timeout.as_millis() as u64,
    });
    let host = KafkaHost::start(DEVELOPMENT, dir.path(), IN_FLIGHT);
    answer_rate(&[host], RECORDS, Duration::from_secs(180))
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
fn raw_rate() -> Answered {
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
        first.get_or_insert_with(|| (Instant::now(), cpu_of("self")));
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
    if std::env::var_os("BENCH_KAFKA_THREADS").is_some() {
        eprint!("raw loop:\n{}", threads("self", RECORDS));
    }
    let (start, cpu_at_start) = first.unwrap_or((Instant::now(), Duration::ZERO));
    let elapsed = start.elapsed().as_secs_f64().max(1e-6);
    Answered {
        rate: RECORDS as f64 / elapsed,
        // This process: the loop and librdkafka's threads (the broker is another).
        cpu_us: (cpu_of("self") - cpu_at_start).as_secs_f64() * 1e6 / RECORDS as f64,
    }
}
