//! The librdkafka settings of a host's consumer and producer, from its contract.

use rdkafka::ClientConfig;

use crate::contract::KafkaConfig;
use crate::envelope::MAX_ENVELOPE_BYTES;

/// The most of its input topic the consumer fetches ahead of the host, in KiB: records
/// wait there, not in the host, so this bounds what a backlog costs in memory. Fetching
/// pauses while it is full, and resumes as the host takes records.
const PREFETCH_KIB: usize = 4 * 1024;
/// The largest record either side moves: an envelope at its limit, and room for headers.
const MAX_RECORD_BYTES: usize = MAX_ENVELOPE_BYTES + 64 * 1024;

/// The consumer's settings: a member of the contract's group that stores an offset only
/// once everything before it has been answered (see `offsets`), and commits what is
/// stored every second, on a rebalance and when it leaves.
pub fn consumer(kafka: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut config = common(kafka, client_id);
    config
        .set("group.id", &kafka.consumer_group)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set(
            "session.timeout.ms",
            kafka.session_timeout.as_millis().to_string(),
        )
        // A third of the session, as Kafka recommends.
        .set(
            "heartbeat.interval.ms",
            (kafka.session_timeout.as_millis() / 3).max(100).to_string(),
        )
        .set("enable.auto.offset.store", "false")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        // A new group starts at the oldest record: nothing published before the first
        // host joined is skipped.
        .set("auto.offset.reset", "earliest")
        .set("queued.max.messages.kbytes", PREFETCH_KIB.to_string())
        .set("fetch.max.bytes", MAX_RECORD_BYTES.to_string())
        .set(
            "receive.message.max.bytes",
            (MAX_RECORD_BYTES + 1024).to_string(),
        )
        // Consumer lag for `/metrics`.
        .set("statistics.interval.ms", "5000");
    config
}

/// The producer's settings: idempotent (so retries never duplicate or reorder a
/// partition's records), every response acknowledged by all in-sync replicas.
pub fn producer(kafka: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut config = common(kafka, client_id);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.max.bytes", MAX_RECORD_BYTES.to_string())
        // Responses computed within 0.2 ms of each other share a request: the host hands
        // each to the producer as its request finishes, and with no linger each went out
        // alone, at 4x the CPU per record for the same rate (docs/PERFORMANCE.md, bench k).
        .set("linger.ms", "0.2");
    config
}

fn common(kafka: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("client.id", client_id)
        // librdkafka's own log lines go through the host's logger.
        .set("log_level", "6");
    config
}
