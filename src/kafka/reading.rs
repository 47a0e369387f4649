//! Taking the input topic's records, and settling each once it is answered: a record of
//! a partition this host owns becomes a [`Delivery`] whose receipt stores the partition's
//! offset, as far as [`super::offsets`] allows, once the host has answered it.

use std::sync::Arc;

use futures_lite::future;
use rdkafka::Message as _;
use rdkafka::consumer::Consumer as _;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use smol::Timer;

use super::context::Membership;
use super::figures::Figures;
use super::{Consumer, ERROR_PAUSE};
use crate::bus::{Delivery, Receipt, Settle, Topic};
use crate::latch::Latch;

/// The input topic's records, as the host takes them.
pub(super) struct Reading {
    pub(super) consumer: Arc<Consumer>,
    pub(super) membership: Arc<Membership>,
    pub(super) topic: Topic,
    pub(super) stopped: Latch,
}

impl Reading {
    /// The next record of a partition this host owns, or `None` once input has stopped.
    pub(super) async fn next(&self) -> Option<Delivery> {
        loop {
            let received = future::or(async { Some(self.consumer.recv().await) }, async {
                self.stopped.wait().await;
                None
            })
            .await?;
            let record = match received {
                Ok(record) => record,
                Err(error) => {
                    log::warn!("kafka: reading {}: {error}", self.topic);
                    Timer::after(ERROR_PAUSE).await;
                    continue;
                }
            };
            Figures::count(&self.membership.figures.consumed);
            let (partition, offset) = (record.partition(), record.offset());
            let Some(generation) = self.membership.offsets().handed_out(partition, offset) else {
                // Fetched just before its partition was revoked: its new owner answers it.
                continue;
            };
            let receipt = KafkaReceipt {
                key: record.key().map(<[u8]>::to_vec),
                topic: self.topic.clone(),
                partition,
                offset,
                generation,
                membership: Arc::clone(&self.membership),
                consumer: Arc::clone(&self.consumer),
            };
            return Some(Delivery {
                message: record.payload().unwrap_or_default().to_vec(),
                receipt: Receipt::new(Box::new(receipt)),
            });
        }
    }
}

/// Where a record came from, and how to commit past it once it is answered.
struct KafkaReceipt {
    key: Option<Vec<u8>>,
    topic: Topic,
    partition: i32,
    offset: i64,
    generation: u64,
    membership: Arc<Membership>,
    consumer: Arc<Consumer>,
}

impl Settle for KafkaReceipt {
    fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    fn origin(&self) -> String {
        format!("{}/{}@{}", self.topic, self.partition, self.offset)
    }

    fn settle(self: Box<Self>) {
        let commit =
            self.membership
                .offsets()
                .answered(self.partition, self.offset, self.generation);
        let Some(commit) = commit else { return };
        let mut offsets = TopicPartitionList::new();
        let stored = offsets
            .add_partition_offset(self.topic.as_str(), self.partition, Offset::Offset(commit))
            .and_then(|()| self.consumer.store_offsets(&offsets));
        if let Err(error) = stored {
            // The partition was revoked meanwhile: its new owner reads from the last commit.
            log::debug!(
                "kafka: storing {}/{} offset {commit}: {error}",
                self.topic,
                self.partition
            );
        }
    }
}
