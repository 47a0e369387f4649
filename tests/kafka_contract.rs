//! Schema 1.1.0's kafka event bus in the runtime contract: the cross-version rules, `${VAR}`
//! from the environment, and the topic-name rule with a reason for every refusal.

use std::path::Path;
use std::time::Duration;

use onex_host::bus::BusKind;
use onex_host::contract::{
    ContractError, DEFAULT_SESSION_TIMEOUT, EventBusConfig, RuntimeHostContract, SchemaVersion,
};

/// A runtime contract of `version` whose event bus is `bus` (YAML lines, indented under
/// `event_bus:`), hosting nothing.
fn contract(version: &str, bus: &str) -> String {
    format!(
        "schema_version: \"{version}\"\nruntime:\n  name: \"orders_host\"\n  version: \"1.0.0\"\n  event_bus:\n{bus}  handlers: []\n  nodes: []\n"
    )
}

/// Kafka settings with `input` as the input topic.
fn kafka(input: &str) -> String {
    format!(
        "    kind: \"kafka\"\n    config:\n      bootstrap_servers: \"${{KAFKA_BOOTSTRAP_SERVERS}}\"\n      consumer_group: \"orders-hosts\"\n      topics:\n        input: \"{input}\"\n        output: \"onex.acme.orders.evt.v1\"\n        dead_letter: \"onex.acme.orders.dlq.v1\"\n"
    )
}

fn env(name: &str) -> Option<String> {
    (name == "KAFKA_BOOTSTRAP_SERVERS").then(|| "127.0.0.1:9092,127.0.0.1:9093".to_owned())
}

fn parse(text: &str) -> Result<RuntimeHostContract, ContractError> {
    RuntimeHostContract::parse_with_env(text, Path::new("runtime/orders.yaml"), &env)
}

/// The problems `text` is refused with, as (line, message).
fn refused(text: &str) -> Vec<(Option<u64>, String)> {
    let error = parse(text).expect_err("the contract must be refused");
    error
        .problems()
        .iter()
        .map(|p| (p.line, p.message.clone()))
        .collect()
}

#[test]
fn a_kafka_contract_reads_its_settings_with_variables_from_the_environment() {
    let contract = parse(&contract("1.1.0", &kafka("onex.acme.orders.cmd.v1"))).expect("loads");
    assert_eq!(contract.schema_version, SchemaVersion::V1_1);
    assert_eq!(contract.event_bus.kind(), BusKind::Kafka);
    let EventBusConfig::Kafka(kafka) = &contract.event_bus else {
        panic!("not kafka: {:?}", contract.event_bus);
    };
    assert_eq!(kafka.bootstrap_servers, "127.0.0.1:9092,127.0.0.1:9093");
    assert_eq!(kafka.consumer_group, "orders-hosts");
    assert_eq!(kafka.input.as_str(), "onex.acme.orders.cmd.v1");
    assert_eq!(kafka.output.as_str(), "onex.acme.orders.evt.v1");
    assert_eq!(
        kafka.dead_letter.as_ref().map(|t| t.as_str()),
        Some("onex.acme.orders.dlq.v1")
    );
    assert_eq!(kafka.session_timeout, DEFAULT_SESSION_TIMEOUT);
    assert_eq!(contract.input_topic(), kafka.input);
    assert_eq!(contract.output_topic(), kafka.output);
}

#[test]
fn a_session_timeout_and_no_dead_letter_topic_are_accepted() {
    let bus = kafka("onex.acme.orders.cmd.v1")
        .replace("        dead_letter: \"onex.acme.orders.dlq.v1\"\n", "")
        + "      session_timeout_ms: 6000\n";
    let contract = parse(&contract("1.1.0", &bus)).expect("loads");
    let EventBusConfig::Kafka(kafka) = &contract.event_bus else {
        panic!("not kafka");
    };
    assert_eq!(kafka.dead_letter, None);
    assert_eq!(kafka.session_timeout, Duration::from_secs(6));
}

#[test]
fn a_1_0_0_contract_using_kafka_is_told_to_set_1_1_0() {
    let problems = refused(&contract("1.0.0", &kafka("onex.acme.orders.cmd.v1")));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, Some(6));
    assert!(problems[0].1.contains("schema 1.1.0"), "{problems:?}");
    let error = parse(&contract("1.0.0", &kafka("onex.acme.orders.cmd.v1"))).unwrap_err();
    assert!(
        error.to_string().contains("set schema_version: \"1.1.0\""),
        "{error}"
    );
}

#[test]
fn a_1_1_0_contract_on_the_inmemory_bus_loads_and_takes_no_config() {
    let plain = contract("1.1.0", "    kind: \"inmemory\"\n");
    let loaded = parse(&plain).expect("loads");
    assert_eq!(loaded.event_bus, EventBusConfig::InMemory);
    assert_eq!(loaded.input_topic().as_str(), "onex.orders_host.cmd.v1");
    let with_config = contract(
        "1.1.0",
        "    kind: \"inmemory\"\n    config:\n      consumer_group: \"g\"\n",
    );
    assert_eq!(
        refused(&with_config),
        [(Some(8), "the inmemory event bus takes no config".to_owned())]
    );
}

#[test]
fn an_unset_variable_is_named() {
    let bus = kafka("onex.acme.orders.cmd.v1").replace("orders-hosts", "${ORDERS_GROUP}");
    assert_eq!(
        refused(&contract("1.1.0", &bus)),
        [(
            Some(9),
            "event_bus.config.consumer_group: the environment variable ORDERS_GROUP is not set"
                .to_owned()
        )]
    );
}

#[test]
fn every_invalid_topic_name_is_refused_with_its_reason_and_line() {
    let cases = [
        (
            "onex.ACME.orders.cmd.v1",
            "the tenant 'ACME' may hold only lowercase letters",
        ),
        (
            "onex.acme.orders.command.v1",
            "the direction is 'command', but an input topic has 'cmd'",
        ),
        (
            "onex.acme.orders.cmd.1",
            "the version is '1', not 'v' and a number such as v1",
        ),
        (
            "onex.acme.orders.cmd",
            "it has 4 dot-separated parts, not 5",
        ),
        ("acme.orders.cmd.v1", "it must start with 'onex.'"),
        ("onex..orders.cmd.v1", "the tenant is empty"),
        (
            "onex.acme.orders.query.v1",
            "the direction is 'query', but an input topic has 'cmd'",
        ),
        (
            "onex.internal.debug.cmd.v1",
            "the tenant 'internal' is reserved for the platform",
        ),
    ];
    for (topic, reason) in cases {
        let problems = refused(&contract("1.1.0", &kafka(topic)));
        assert_eq!(problems.len(), 1, "{topic}: {problems:?}");
        let (line, message) = &problems[0];
        assert_eq!(*line, Some(11), "{topic}");
        let expected = format!("event_bus.config.topics.input '{topic}': {reason}");
        assert!(message.starts_with(&expected), "{topic}: {message}");
    }
    // The output topic's rule is its own: `evt`, and reserved tenants too.
    let bus = kafka("onex.acme.orders.cmd.v1")
        .replace("onex.acme.orders.evt.v1", "onex.internal.debug.evt.v1");
    let problems = refused(&contract("1.1.0", &bus));
    assert!(
        problems[0].1.contains("the tenant 'internal' is reserved"),
        "{problems:?}"
    );
}

#[test]
fn missing_kafka_settings_and_bad_servers_are_each_reported() {
    let bus = "    kind: \"kafka\"\n    config:\n      bootstrap_servers: \"broker\"\n      topics:\n        output: \"onex.acme.orders.evt.v1\"\n      session_timeout_ms: 10\n";
    let messages: Vec<String> = refused(&contract("1.1.0", bus))
        .into_iter()
        .map(|(_, message)| message)
        .collect();
    assert_eq!(
        messages,
        [
            "missing required fields in event_bus.config: consumer_group",
            "event_bus.config.bootstrap_servers 'broker': 'broker' has no port",
            "event_bus.config.session_timeout_ms 10 is out of range",
            "missing required fields in event_bus.config.topics: input",
        ],
    );
}
