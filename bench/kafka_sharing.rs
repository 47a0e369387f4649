//! l. Kafka work sharing: three hosts of one group on a six-partition input topic beside
//! one host alone, each handler call waiting 5 ms for a loopback upstream (`http.get`)
//! at one in flight, so that a host's rate is bound by its waits, not by its CPU, and
//! three hosts should answer three times as much.
//!
//! Each run starts a broker, lets the group settle (every host its share of the
//! partitions), then produces the requests evenly over the partitions and times from the
//! first answer to the last.

use std::thread;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseRecord, Producer as _};

use crate::Row;
use crate::http_server::{Reply, TestServer, response};
use crate::kafka_broker::{Broker, Topics};
use crate::kafka_host::{KafkaHost, Setup, answer_rate, write_contract};
use crate::measure::{PRODUCTION, Ratio, median};

const INPUT: &str = "onex.bench.sharing.cmd.v1";
const OUTPUT: &str = "onex.bench.sharing.evt.v1";
const PARTITIONS: usize = 6;
/// How long the upstream takes to answer each request.
const UPSTREAM_WAIT: Duration = Duration::from_millis(5);
/// About 8 s of work for one host.
const RECORDS: usize = 1_200;

/// l. Envelopes/s of three hosts beside one, run by run.
pub fn sharing(reps: usize) -> Vec<Row> {
    let upstream = TestServer::start(|_| {
        thread::sleep(UPSTREAM_WAIT);
        Reply::Send(response("200 OK", &[("Content-Type", "text/plain")], b"ok"))
    });
    let (mut one, mut three) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        one.push(group_rate(&upstream, 1));
        three.push(group_rate(&upstream, 3));
    }
    let ratio = Ratio::of_pairs(&three, &one);
    vec![Row {
        scenario: "l. kafka work sharing, http.get 5 ms, 1 in flight: 3 hosts, 6 partitions",
        figure: format!("{:.0} env/s", median(&mut three)),
        baseline: format!("one host: {:.0} env/s", median(&mut one)),
        met: Some(ratio.median >= 2.7),
        ratio: Some(ratio),
        target: ">= 270% of one host",
    }]
}

/// Envelopes/s `hosts` production hosts answer together.
fn group_rate(upstream: &TestServer, hosts: usize) -> f64 {
    let broker = Broker::start();
    broker.create_topic(INPUT, PARTITIONS as i32);
    broker.create_topic(OUTPUT, 1);
    let bootstrap = broker.bootstrap();
    let dir = write_contract(&Setup {
        bootstrap: &bootstrap,
        group: "bench-sharing",
        input: INPUT,
        output: OUTPUT,
        handler: "http",
        operation: "http.get",
        // The test broker completes a join about half a session after it opens.
        session_timeout_ms: 6000,
    });
    let group: Vec<KafkaHost> = (0..hosts)
        .map(|_| KafkaHost::start(PRODUCTION, dir.path(), 1))
        .collect();
    // Settled: every host owns its share, so every partition has one owner.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !group.iter().all(|host| host.owned() == PARTITIONS / hosts) {
        assert!(Instant::now() < deadline, "the group did not settle");
        thread::sleep(Duration::from_millis(20));
    }
    produce_evenly(&broker, &upstream.url("/item"));
    answer_rate(&group, RECORDS, Duration::from_secs(180)).rate
}

/// [`RECORDS`] requests to GET `url`, partition by partition in turn, so that each host
/// has the same share.
fn produce_evenly(broker: &Broker, url: &str) {
    let producer = broker.producer();
    for i in 0..RECORDS {
        let line = format!(
            "{{\"envelope_id\":\"{}\",\"target_node\":\"bench_node\",\"operation\":\"http.get\",\"payload\":{{\"url\":\"{url}/{i}\"}}}}",
            uuid::Uuid::new_v4()
        );
        let record = BaseRecord::<(), _>::to(INPUT)
            .partition((i % PARTITIONS) as i32)
            .payload(&line);
        producer
            .send(record)
            .unwrap_or_else(|(error, _)| panic!("producing request {i}: {error}"));
    }
    producer.flush(Duration::from_secs(60)).expect("flushes");
}
