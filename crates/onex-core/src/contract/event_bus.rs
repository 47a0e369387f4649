//! The runtime contract's `event_bus`: which bus the host runs on, and for Kafka (schema
//! 1.1.0) where the brokers are, which group the host joins and which topics it uses.
//!
//! `${VAR}` in a string of the bus's `config` is replaced from the environment, so the
//! same contract serves every deployment; an unset variable is a contract error naming it.

use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::SchemaVersion;
use super::error::Problems;
use super::names::check_required;
use super::topic_name::{self, Direction};
use super::yaml::line_of;
use crate::bus::{BusKind, Topic};

/// How long a Kafka group member may go unheard before the group gives its partitions to
/// another, unless the contract says otherwise (librdkafka's own default).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(45);

/// The bus a runtime contract chooses, with its settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventBusConfig {
    /// In-process queues.
    InMemory,
    /// Kafka, as one member of a consumer group.
    Kafka(KafkaConfig),
}

impl EventBusConfig {
    /// The bus's kind.
    pub fn kind(&self) -> BusKind {
        match self {
            EventBusConfig::InMemory => BusKind::InMemory,
            EventBusConfig::Kafka(_) => BusKind::Kafka,
        }
    }
}

/// Where a Kafka host reads and writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaConfig {
    /// The brokers to start from, `host:port[,host:port…]`.
    pub bootstrap_servers: String,
    /// The consumer group every host of this contract joins.
    pub consumer_group: String,
    /// Where requests arrive (`…cmd.vN`).
    pub input: Topic,
    /// Where responses go (`…evt.vN`).
    pub output: Topic,
    /// Where records go whose response could not be published (`…dlq.vN`), if anywhere.
    pub dead_letter: Option<Topic>,
    /// How long the group waits for a silent member before it reassigns its partitions.
    pub session_timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEventBus {
    kind: Option<Spanned<String>>,
    config: Option<Spanned<RawKafka>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKafka {
    bootstrap_servers: Option<Spanned<String>>,
    consumer_group: Option<Spanned<String>>,
    topics: Option<Spanned<RawTopics>>,
    session_timeout_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopics {
    input: Option<Spanned<String>>,
    output: Option<Spanned<String>>,
    dead_letter: Option<Spanned<String>>,
}

/// The bus `bus` describes, in a contract of `version`, with `${VAR}` read through `env`;
/// `None` once a problem is recorded.
pub(super) fn event_bus(
    bus: &Spanned<RawEventBus>,
    version: SchemaVersion,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<EventBusConfig> {
    let Some(kind) = &bus.value.kind else {
        check_required(
            "event_bus",
            line_of(&bus.referenced),
            &[("kind", false)],
            problems,
        );
        return None;
    };
    let line = line_of(&kind.referenced);
    match BusKind::from_name(&kind.value) {
        Some(BusKind::InMemory) => {
            if let Some(config) = &bus.value.config {
                problems.add(
                    line_of(&config.referenced),
                    "the inmemory event bus takes no config",
                    "only the kafka bus has settings",
                    "remove event_bus.config",
                );
                return None;
            }
            Some(EventBusConfig::InMemory)
        }
        Some(BusKind::Kafka) if version == SchemaVersion::V1_0 => {
            problems.add(
                line,
                "the kafka event bus is a schema 1.1.0 feature, and this contract is 1.0.0",
                "schema 1.0.0 runs on the inmemory bus only",
                "set schema_version: \"1.1.0\"",
            );
            None
        }
        Some(BusKind::Kafka) => {
            let Some(config) = &bus.value.config else {
                check_required("event_bus", line, &[("config", false)], problems);
                return None;
            };
            kafka(config, env, problems).map(EventBusConfig::Kafka)
        }
        None => {
            problems.add(
                line,
                format!("unknown event bus kind '{}'", kind.value),
                "Valid event bus kinds are: inmemory, kafka (schema 1.1.0)",
                "set event_bus.kind: inmemory",
            );
            None
        }
    }
}

fn kafka(
    config: &Spanned<RawKafka>,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<KafkaConfig> {
    let raw = &config.value;
    check_required(
        "event_bus.config",
        line_of(&config.referenced),
        &[
            ("bootstrap_servers", raw.bootstrap_servers.is_some()),
            ("consumer_group", raw.consumer_group.is_some()),
            ("topics", raw.topics.is_some()),
        ],
        problems,
    );
    let servers = raw.bootstrap_servers.as_ref();
    let servers = servers.and_then(|servers| bootstrap_servers(servers, env, problems));
    let group = raw.consumer_group.as_ref();
    let group = group.and_then(|group| consumer_group(group, env, problems));
    let session_timeout = session_timeout(raw.session_timeout_ms.as_ref(), problems);
    let topics = raw.topics.as_ref().and_then(|topics| {
        let line = line_of(&topics.referenced);
        let topics = &topics.value;
        check_required(
            "event_bus.config.topics",
            line,
            &[
                ("input", topics.input.is_some()),
                ("output", topics.output.is_some()),
            ],
            problems,
        );
        let mut named = |field, name: Option<&Spanned<String>>, direction| {
            name.map(|name| topic(field, name, direction, env, problems))
        };
        let input = named("input", topics.input.as_ref(), Direction::Command);
        let output = named("output", topics.output.as_ref(), Direction::Event);
        let dead_letter = named(
            "dead_letter",
            topics.dead_letter.as_ref(),
            Direction::DeadLetter,
        );
        let dead_letter = match dead_letter {
            None => None,
            Some(topic) => Some(topic?),
        };
        Some((input??, output??, dead_letter))
    });
    let (input, output, dead_letter) = topics?;
    Some(KafkaConfig {
        bootstrap_servers: servers?,
        consumer_group: group?,
        input,
        output,
        dead_letter,
        session_timeout: session_timeout?,
    })
}

/// The string `value` of `event_bus.config.<field>`, its variables replaced.
fn setting(
    field: &str,
    value: &Spanned<String>,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<String> {
    expand(&value.value, env)
        .map_err(|why| {
            problems.add(
                line_of(&value.referenced),
                format!("event_bus.config.{field}: {why}"),
                "${NAME} is replaced by the value of the environment variable NAME",
                "set the variable, or write the value itself",
            );
        })
        .ok()
}

fn bootstrap_servers(
    value: &Spanned<String>,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<String> {
    let servers = setting("bootstrap_servers", value, env, problems)?;
    if let Err(why) = check_servers(&servers) {
        problems.add(
            line_of(&value.referenced),
            format!("event_bus.config.bootstrap_servers '{servers}': {why}"),
            "a comma-separated list of host:port, e.g. kafka-1:9092,kafka-2:9092",
            "list the brokers the host starts from",
        );
        return None;
    }
    Some(servers)
}

fn consumer_group(
    value: &Spanned<String>,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<String> {
    let group = setting("consumer_group", value, env, problems)?;
    if group.trim().is_empty() {
        problems.add(
            line_of(&value.referenced),
            "event_bus.config.consumer_group is empty",
            "every host of this contract joins the group it names, and they share the work",
            "name the group, e.g. orders-hosts",
        );
        return None;
    }
    Some(group)
}

fn session_timeout(value: Option<&Spanned<u64>>, problems: &mut Problems) -> Option<Duration> {
    let Some(ms) = value else {
        return Some(DEFAULT_SESSION_TIMEOUT);
    };
    if !(1_000..=3_600_000).contains(&ms.value) {
        problems.add(
            line_of(&ms.referenced),
            format!(
                "event_bus.config.session_timeout_ms {} is out of range",
                ms.value
            ),
            "from 1000 (1 s) to 3600000 (1 h); the broker may narrow it further",
            "set a value in range, or remove it for the default of 45000",
        );
        return None;
    }
    Some(Duration::from_millis(ms.value))
}

/// The topic `value` names for `topics.<field>`, checked against the rule for `direction`.
fn topic(
    field: &str,
    value: &Spanned<String>,
    direction: Direction,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<Topic> {
    let name = setting(&format!("topics.{field}"), value, env, problems)?;
    if let Err(why) = topic_name::check(&name, direction) {
        problems.add(
            line_of(&value.referenced),
            format!("event_bus.config.topics.{field} '{name}': {why}"),
            format!(
                "topic names are onex.<tenant>.<domain>.<direction>.v<N>; the {field} topic's \
                 direction is {}",
                direction.segment()
            ),
            "rename the topic",
        );
        return None;
    }
    Some(Topic::new(&name))
}

/// `text` with every `${NAME}` replaced by the variable's value from `env`.
fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("'${{' without its closing '}}' in '{text}'"));
        };
        let name = &after[..end];
        let valid = name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(format!("'${{{name}}}' is not a variable name"));
        }
        match env(name) {
            Some(value) => out.push_str(&value),
            None => return Err(format!("the environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks a `host:port[,host:port…]` list.
fn check_servers(servers: &str) -> Result<(), String> {
    for server in servers.split(',').map(str::trim) {
        let Some((host, port)) = server.rsplit_once(':') else {
            return Err(format!("'{server}' has no port"));
        };
        if host.is_empty() {
            return Err(format!("'{server}' has no host"));
        }
        if !port.parse::<u16>().is_ok_and(|port| port > 0) {
            return Err(format!("'{server}' has no valid port (1 to 65535)"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KAFKA_BOOTSTRAP_SERVERS" => Some("127.0.0.1:9092".into()),
            "TENANT" => Some("acme".into()),
            _ => None,
        }
    }

    #[test]
    fn variables_are_replaced_and_an_unset_one_is_named() {
        assert_eq!(
            expand("${KAFKA_BOOTSTRAP_SERVERS}", &env).as_deref(),
            Ok("127.0.0.1:9092")
        );
        assert_eq!(
            expand("onex.${TENANT}.orders.cmd.v1", &env).as_deref(),
            Ok("onex.acme.orders.cmd.v1")
        );
        assert_eq!(expand("no variables", &env).as_deref(), Ok("no variables"));
        assert_eq!(
            expand("${MISSING}", &env),
            Err("the environment variable MISSING is not set".into())
        );
        assert!(expand("${TENANT", &env).is_err());
        assert!(expand("${1X}", &env).is_err());
    }

    #[test]
    fn servers_are_host_port_lists() {
        assert_eq!(check_servers("a:9092"), Ok(()));
        assert_eq!(check_servers("a:9092, b:9093"), Ok(()));
        assert_eq!(check_servers("[::1]:9092"), Ok(()));
        assert!(check_servers("a").is_err());
        assert!(check_servers(":9092").is_err());
        assert!(check_servers("a:0").is_err());
        assert!(check_servers("a:99999").is_err());
        assert!(check_servers("a:9092,").is_err());
    }
}
