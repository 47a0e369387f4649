//! The kafka event bus (schema 1.1.0): the host is one member of its contract's consumer
//! group, takes request records from the input topic and publishes each response to the
//! output topic, keyed as its request.
//!
//! At least once: a record's offset is committed only once its response has been
//! acknowledged by the brokers (`acks=all`, idempotent producer), or the record set aside
//! on the dead-letter topic; with several in flight, only up to the lowest offset not yet
//! answered in its partition (the `offsets` module). A host that stops, or loses a partition, with
//! records unanswered leaves them to be delivered again: duplicates are possible, losses
//! are not.
//!
//! Nothing connects before the host starts (so `--dry-run` never does). The consumer
//! fetches ahead of the host at most a few MiB (the `settings` module): a backlog waits in Kafka,
//! and the host takes a record only when it has a slot and room in its memory budget.

mod context;
mod figures;
mod offsets;
mod reading;
mod runtime;
mod settings;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_lite::future::{self, Boxed};
use futures_lite::stream;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::bus::{BusError, BusKind, EventBus, Message, Receipt, Subscription, Topic};
use crate::contract::KafkaConfig;
use crate::envelope::Envelope;
use crate::health::HealthReport;
use crate::latch::Latch;
use context::{HostContext, Membership};
use figures::Figures;
pub use figures::KafkaMetrics;
use reading::Reading;
use runtime::SmolRuntime;
/// The librdkafka settings a host's consumer and producer run with (for a baseline that
/// wants the same: the benchmark's raw loop).
pub use settings::{consumer as consumer_settings, producer as producer_settings};

type Consumer = StreamConsumer<HostContext, SmolRuntime>;
type Producer = FutureProducer<Logged, SmolRuntime>;

/// How long a health check waits for the brokers to answer.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// How long publishing waits for room in the producer's queue before it fails.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the host waits before it asks again after the consumer reported an error.
const ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A Kafka event bus.
pub struct KafkaEventBus {
    config: KafkaConfig,
    client_id: String,
    clients: OnceLock<Result<Clients, String>>,
    membership: Arc<Membership>,
    /// Set when the host stops taking input: the input stream ends.
    stopped: Latch,
}

struct Clients {
    consumer: Arc<Consumer>,
    producer: Producer,
}

impl KafkaEventBus {
    /// The bus `config` describes, for the host named `client_id`; connects nothing yet.
    pub fn new(config: KafkaConfig, client_id: &str) -> Self {
        KafkaEventBus {
            config,
            client_id: client_id.to_owned(),
            clients: OnceLock::new(),
            membership: Arc::new(Membership::default()),
            stopped: Latch::new(),
        }
    }

    /// The settings it runs with.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// Its figures, as a collector for the host's `/metrics`.
    pub fn metrics(&self) -> KafkaMetrics {
        KafkaMetrics {
            figures: Arc::clone(&self.membership.figures),
            topic: self.config.input.to_string(),
        }
    }

    fn clients(&self) -> Result<&Clients, BusError> {
        self.clients
            .get_or_init(|| {
                let context = HostContext {
                    membership: Arc::clone(&self.membership),
                };
                let consumer: Consumer = settings::consumer(&self.config, &self.client_id)
                    .create_with_context(context)
                    .map_err(|error| format!("creating the kafka consumer: {error}"))?;
                let producer: Producer = settings::producer(&self.config, &self.client_id)
                    .create_with_context(Logged)
                    .map_err(|error| format!("creating the kafka producer: {error}"))?;
                Ok(Clients {
                    consumer: Arc::new(consumer),
                    producer,
                })
            })
            .as_ref()
            .map_err(|error| BusError::Transport(error.clone()))
    }

    fn send(
        &self,
        topic: &Topic,
        message: Message,
        key: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
    ) -> Boxed<Result<(), BusError>> {
        let producer = match self.clients() {
            Ok(clients) => clients.producer.clone(),
            Err(error) => return Box::pin(future::ready(Err(error))),
        };
        let (topic, key) = (topic.clone(), key.map(<[u8]>::to_vec));
        let figures = Arc::clone(&self.membership.figures);
        Box::pin(async move {
            let mut record = FutureRecord::to(topic.as_str()).payload(&message);
            if let Some(key) = &key {
                record = record.key(key);
            }
            if let Some(headers) = headers {
                record = record.headers(headers);
            }
            producer
                .send(record, QUEUE_TIMEOUT)
                .await
                .map(|_| Figures::count(&figures.produced))
                .map_err(|(error, _)| {
                    BusError::Transport(format!("publishing to {topic}: {error}"))
                })
        })
    }
}

impl EventBus for KafkaEventBus {
    fn kind(&self) -> BusKind {
        BusKind::Kafka
    }

    fn publish(&self, topic: &Topic, message: Message) -> Boxed<Result<(), BusError>> {
        self.send(topic, message, None, None)
    }

    fn publish_reply(
        &self,
        response: &Envelope,
        topic: &Topic,
        receipt: &Receipt,
    ) -> Boxed<Result<(), BusError>> {
        self.send(topic, response.to_json_bytes(), receipt.key(), None)
    }

    fn dead_letter(
        &self,
        message: &[u8],
        receipt: &Receipt,
        reason: &str,
    ) -> Boxed<Result<(), BusError>> {
        let Some(topic) = &self.config.dead_letter else {
            return Box::pin(future::ready(Err(BusError::NoDeadLetterTopic)));
        };
        let origin = receipt.origin().unwrap_or_default();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "onex-dead-letter-reason",
                value: Some(reason),
            })
            .insert(Header {
                key: "onex-dead-letter-origin",
                value: Some(origin.as_str()),
            });
        let sending = self.send(topic, message.to_vec(), receipt.key(), Some(headers));
        let figures = Arc::clone(&self.membership.figures);
        Box::pin(async move {
            sending.await?;
            Figures::count(&figures.dead_lettered);
            Ok(())
        })
    }

    fn subscribe(&self, topic: &Topic) -> Result<Subscription, BusError> {
        if *topic != self.config.input {
            return Err(BusError::Transport(format!(
                "the kafka bus delivers only its input topic {}, not {topic}",
                self.config.input
            )));
        }
        let consumer = Arc::clone(&self.clients()?.consumer);
        let reading = Reading {
            consumer,
            membership: Arc::clone(&self.membership),
            topic: topic.clone(),
            stopped: self.stopped.clone(),
        };
        Ok(Box::pin(stream::unfold(reading, |reading| async move {
            let delivery = reading.next().await?;
            Some((delivery, reading))
        })))
    }

    fn start_consuming(&self) -> Boxed<Result<(), BusError>> {
        let joined = self.clients().and_then(|clients| {
            clients
                .consumer
                .subscribe(&[self.config.input.as_str()])
                .map_err(|error| {
                    BusError::Transport(format!(
                        "joining group {}: {error}",
                        self.config.consumer_group
                    ))
                })
        });
        if joined.is_ok() {
            log::info!(
                "kafka: joining group {} on {}, input {}, output {}",
                self.config.consumer_group,
                self.config.bootstrap_servers,
                self.config.input,
                self.config.output
            );
        }
        Box::pin(future::ready(joined))
    }

    fn health_check(&self) -> Boxed<HealthReport> {
        let consumer = self
            .clients()
            .ok()
            .map(|clients| Arc::clone(&clients.consumer));
        let membership = Arc::clone(&self.membership);
        let (group, input) = (
            self.config.consumer_group.clone(),
            self.config.input.clone(),
        );
        Box::pin(async move {
            let brokers = match consumer {
                None => Err("not started".to_owned()),
                Some(consumer) => {
                    let topic = input.clone();
                    smol::unblock(move || {
                        consumer
                            .fetch_metadata(Some(topic.as_str()), HEALTH_TIMEOUT)
                            .map(|_| ())
                            .map_err(|error| error.to_string())
                    })
                    .await
                }
            };
            let joined = membership.joined();
            let owned = membership.offsets().owned();
            HealthReport::new(brokers.is_ok() && joined)
                .with("kind", BusKind::Kafka.as_str())
                .with(
                    "brokers",
                    match &brokers {
                        Ok(()) => "reachable".to_owned(),
                        Err(error) => format!("unreachable: {error}"),
                    },
                )
                .with("group", group)
                .with("joined", joined)
                .with("partitions", owned)
        })
    }

    fn close_topic(&self, topic: &Topic) {
        if *topic == self.config.input {
            self.stopped.set();
        }
    }

    fn depth(&self, _: &Topic) -> Option<usize> {
        None
    }

    fn close(&self) {
        self.stopped.set();
        let Some(Ok(clients)) = self.clients.get() else {
            return;
        };
        // What is stored is committed, then the host leaves the group. Both wait on the
        // brokers (bounded by librdkafka's timeouts); closing is the host's last step, so
        // its thread may wait.
        if let Err(error) = clients.consumer.commit_consumer_state(CommitMode::Sync) {
            log::debug!("kafka: final commit: {error}");
        }
        clients.consumer.unsubscribe();
        log::info!("kafka: left group {}", self.config.consumer_group);
    }
}

/// The producer's context: librdkafka's log lines through the host's logger.
struct Logged;

impl ClientContext for Logged {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        context::log_librdkafka(level, facility, message);
    }
}
