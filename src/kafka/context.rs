//! What the consumer learns from librdkafka: partitions assigned and revoked, commits,
//! statistics, errors. Rebalances and commits are reported inside the host's poll of the
//! input topic, on its thread (log lines may come from librdkafka's own threads), so each
//! callback only updates shared state and returns.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;

use super::figures::Figures;
use super::offsets::Offsets;

/// The consumer's state, shared with the bus and its receipts.
#[derive(Debug, Default)]
pub(super) struct Membership {
    pub(super) figures: Arc<Figures>,
    offsets: Mutex<Offsets>,
    /// Set once the group has given this host an assignment (possibly empty).
    joined: AtomicBool,
}

impl Membership {
    pub(super) fn offsets(&self) -> MutexGuard<'_, Offsets> {
        self.offsets
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    pub(super) fn joined(&self) -> bool {
        self.joined.load(Ordering::Acquire)
    }
}

/// The consumer's context: keeps [`Membership`] current.
pub(super) struct HostContext {
    pub(super) membership: Arc<Membership>,
}

impl ClientContext for HostContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_librdkafka(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log::warn!("kafka: {error}: {reason}");
    }

    fn stats(&self, statistics: Statistics) {
        let owned = self.membership.offsets().owned();
        let lag = statistics
            .topics
            .values()
            .flat_map(|topic| topic.partitions.values())
            .filter(|p| owned.contains(&p.partition) && p.consumer_lag >= 0)
            .map(|p| (p.partition, p.consumer_lag))
            .collect();
        self.membership.figures.set_lag(lag);
    }
}

impl ConsumerContext for HostContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            let revoked = numbers(partitions);
            let mut offsets = self.membership.offsets();
            for partition in &revoked {
                offsets.revoke(*partition);
            }
            log::info!(
                "kafka: partitions revoked: {revoked:?}; now owns {:?}",
                offsets.owned()
            );
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                let assigned = numbers(partitions);
                let mut offsets = self.membership.offsets();
                for partition in &assigned {
                    offsets.assign(*partition);
                }
                self.membership.joined.store(true, Ordering::Release);
                log::info!(
                    "kafka: partitions assigned: {assigned:?}; now owns {:?}",
                    offsets.owned()
                );
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => log::warn!("kafka: rebalance failed: {error}"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => log::debug!("kafka: committed {:?}", committed(offsets)),
            // Nothing to commit since the last time: not a failure.
            Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => {
                Figures::count(&self.membership.figures.commit_failures);
                log::warn!("kafka: commit failed: {error}");
            }
        }
    }
}

fn numbers(partitions: &TopicPartitionList) -> Vec<i32> {
    partitions
        .elements()
        .iter()
        .map(|p| p.partition())
        .collect()
}

fn committed(partitions: &TopicPartitionList) -> Vec<(i32, Option<i64>)> {
    partitions
        .elements()
        .iter()
        .map(|p| (p.partition(), p.offset().to_raw()))
        .collect()
}

/// librdkafka's own log line, at the matching level of the host's log.
pub(super) fn log_librdkafka(level: RDKafkaLogLevel, facility: &str, message: &str) {
    let level = match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => log::Level::Error,
        RDKafkaLogLevel::Warning => log::Level::Warn,
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => log::Level::Info,
        RDKafkaLogLevel::Debug => log::Level::Debug,
    };
    log::log!(level, "librdkafka {facility}: {message}");
}
