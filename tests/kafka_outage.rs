//! The kafka bus when its brokers go away under a running host (librdkafka's mock cluster,
//! in the test's process, reached by the host over loopback TCP): the host stays up,
//! readiness turns 503 and says the brokers are unreachable, and once they are back the
//! host recovers by itself and answers every record, those produced during the outage
//! included.

use std::time::Duration;

use rdkafka::producer::Producer as _;
use serde_json::Value;

use crate::kafka::{
    DEAD_LETTER, GROUP, INPUT, OUTPUT, PARTITIONS, kafka_host, read_until_answered, readiness,
    start_host_at,
};
use crate::support::daemon::Daemon;
use crate::support::kafka::{Topics, enqueue};
use crate::support::kafka_mock::MockBroker;
use crate::support::request_line;

/// Requests `range`, keyed `key-N` over 16 keys.
fn requests(range: std::ops::Range<u32>) -> Vec<(String, Vec<u8>)> {
    range
        .map(|n| {
            let line = request_line(n, "echo_node", "local.echo", &format!(r#"{{"n":{n}}}"#));
            (format!("key-{}", n % 16), line.into_bytes())
        })
        .collect()
}

/// The bus's part of `/health/handlers`.
fn bus_report(host: &Daemon) -> Value {
    let (_, _, body) = crate::api::http("GET", &host.url("/health/handlers"), vec![]);
    serde_json::from_str::<Value>(&body).unwrap_or(Value::Null)["bus"].clone()
}

#[test]
fn a_host_whose_brokers_go_away_mid_stream_stays_up_and_answers_every_record_once_back() {
    let broker = MockBroker::start();
    broker.create_topic(INPUT, PARTITIONS);
    broker.create_topic(OUTPUT, 1);
    broker.create_topic(DEAD_LETTER, 1);
    let fixture = kafka_host();
    let mut host = start_host_at(
        &fixture,
        &broker.bootstrap(),
        &["--listen", "127.0.0.1:0", "--max-in-flight", "8"],
    );
    host.wait_for(|host| readiness(host).0 == 200, "readiness");

    // A first batch, and the brokers go away once a quarter of it is answered: the rest
    // is in the host's prefetch, in flight, or still in Kafka.
    let (before, during) = (4000u32, 1000u32);
    broker.produce_only(INPUT, requests(0..before));
    read_until_answered(&broker, before as usize / 4, Duration::from_secs(60));
    broker.down();

    host.wait_for(|host| readiness(host).0 == 503, "readiness to turn 503");
    let (status, body) = readiness(&host);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["components"]["bus"], false, "{body}");
    let bus = bus_report(&host);
    assert!(
        bus["brokers"]
            .as_str()
            .is_some_and(|brokers| brokers.starts_with("unreachable")),
        "{bus}"
    );
    // Requests published while the brokers are away wait in their producer.
    let producer = broker.producer();
    enqueue(&producer, INPUT, requests(before..before + during));
    let (live, _, _) = crate::api::http("GET", &host.url("/health/live"), vec![]);
    assert_eq!(live, 200);
    assert!(!host.has_exited(), "the host stays up without its brokers");

    broker.up();
    producer.flush(Duration::from_secs(60)).expect("flushes");
    host.wait_for(
        |host| readiness(host).0 == 200,
        "readiness once the brokers are back",
    );
    let total = (before + during) as usize;
    let records = read_until_answered(&broker, total, Duration::from_secs(120));
    eprintln!(
        "brokers away mid-stream: {total} requests, {} responses, {} duplicates",
        records.len(),
        records.len() - total
    );

    host.signal("TERM");
    let (status, _, stderr) = host.exit();
    assert_eq!(status, Some(0), "{stderr}");
    // Stopping committed past everything answered: nothing is left for the group.
    let committed: i64 = broker.committed(GROUP, INPUT, PARTITIONS).values().sum();
    assert_eq!(committed, i64::from(before + during), "{stderr}");
}
