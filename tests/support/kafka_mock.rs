//! librdkafka's mock cluster, in the test's own process, as a broker a host process can
//! reach over loopback TCP: what a test needs to take the brokers away from a running host
//! and give them back. Its state (topics, records, the group's offsets) lives as long as
//! the cluster, through any number of downs and ups.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use super::kafka::Topics;

/// A mock cluster of one broker; gone when dropped.
pub struct MockBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

/// The mock broker's id: the only one in the cluster.
const BROKER: i32 = 1;

impl MockBroker {
    /// Starts a cluster of one broker listening on a free loopback port.
    pub fn start() -> MockBroker {
        MockBroker {
            cluster: MockCluster::new(1).expect("a mock cluster"),
        }
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        self.cluster
            .create_topic(topic, partitions, 1)
            .unwrap_or_else(|error| panic!("creating {topic}: {error}"));
    }

    /// Closes every connection to the broker and refuses new ones (its port stays
    /// reserved): to its clients it is unreachable.
    pub fn down(&self) {
        self.cluster
            .broker_down(BROKER)
            .expect("the broker goes down");
    }

    /// Accepts connections again, on the same port.
    pub fn up(&self) {
        self.cluster.broker_up(BROKER).expect("the broker comes up");
    }
}

impl Topics for MockBroker {
    fn bootstrap(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}
