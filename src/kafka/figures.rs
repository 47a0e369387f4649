//! What a kafka host counts, for `/metrics`: records consumed and produced, dead letters,
//! commit failures, and each owned partition's consumer lag (from librdkafka's
//! statistics, every few seconds).
//!
//! | metric | labels |
//! | --- | --- |
//! | `onex_bus_records_consumed_total` | |
//! | `onex_bus_records_produced_total` | |
//! | `onex_bus_dead_lettered_total` | |
//! | `onex_bus_commit_failures_total` | |
//! | `onex_bus_consumer_lag` | `topic`, `partition` |

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// The counts, shared by the bus, its consumer's context and its receipts.
#[derive(Debug, Default)]
pub(super) struct Figures {
    pub(super) consumed: AtomicU64,
    pub(super) produced: AtomicU64,
    pub(super) dead_lettered: AtomicU64,
    pub(super) commit_failures: AtomicU64,
    /// Records behind the end of each owned partition, as librdkafka last reported.
    lag: Mutex<BTreeMap<i32, i64>>,
}

impl Figures {
    pub(super) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Replaces the lag figures with `lag` (partition, records behind).
    pub(super) fn set_lag(&self, lag: BTreeMap<i32, i64>) {
        *self.lag.lock().unwrap_or_else(|poison| poison.into_inner()) = lag;
    }

    fn lag(&self) -> BTreeMap<i32, i64> {
        self.lag
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }
}

/// The figures as a Prometheus collector, read at each scrape.
#[derive(Debug)]
pub struct KafkaMetrics {
    pub(super) figures: Arc<Figures>,
    pub(super) topic: String,
}

impl Collector for KafkaMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let counters = [
            (
                "bus_records_consumed",
                "Records taken from the input topic",
                &self.figures.consumed,
            ),
            (
                "bus_records_produced",
                "Records published (responses and dead letters)",
                &self.figures.produced,
            ),
            (
                "bus_dead_lettered",
                "Requests set aside on the dead-letter topic",
                &self.figures.dead_lettered,
            ),
            (
                "bus_commit_failures",
                "Offset commits the brokers refused",
                &self.figures.commit_failures,
            ),
        ];
        for (name, help, counter) in counters {
            let counter = ConstCounter::new(counter.load(Ordering::Relaxed));
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        let lag = self.figures.lag();
        let mut family = encoder.encode_descriptor(
            "bus_consumer_lag",
            "Records behind the end of each owned input partition",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for (partition, behind) in lag {
            let labels = [
                ("topic", self.topic.clone()),
                ("partition", partition.to_string()),
            ];
            ConstGauge::new(behind).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
