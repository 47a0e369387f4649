//! A handler binding's `config` (schema 1.1.0): how long a call may take, how it is
//! retried, limited and cut off when its dependency fails, and, for `db`, the pool.
//!
//! This module owns the settings as plain data and their validation; the layers that
//! enforce them live in the host (`onex_host::layers`), and the handlers never see them.
//! Every field is optional, with the default docs/INTERFACE.md gives; every value is
//! range-checked and reported with its line.

use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::error::Problems;
use super::yaml::line_of;
use crate::shared::HandlerType;

/// The settings of one handler binding, defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerConfig {
    /// How long one call may take (`timeout_ms`, default 30000).
    pub timeout: Duration,
    /// How failed calls are tried again.
    pub retry: RetryPolicy,
    /// At most this many calls a second (`rate_limit_per_second`); `None`: no limit.
    pub rate_limit_per_second: Option<u32>,
    /// When to stop calling a failing dependency, and for how long.
    pub circuit_breaker: BreakerPolicy,
    /// The most connections the db handler opens (`pool_size`, db only); `None`: the
    /// handler's default of 5.
    pub pool_size: Option<usize>,
    /// Where the db handler reads its connection string (`dsn_env` or `dsn_file`, db
    /// only); `None`: the default variables, `OMNIBASE_INFRA_DB_URL` then `DATABASE_URL`.
    pub dsn: Option<DsnSource>,
}

/// Where a binding's connection string comes from: never the contract itself, which
/// names only the variable or the file (the Kubernetes secret volume's shape).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DsnSource {
    /// The environment variable of this name (`dsn_env`).
    Env(String),
    /// The file at this path, read once at start-up (`dsn_file`).
    File(std::path::PathBuf),
}

impl std::fmt::Display for DsnSource {
    /// Names the source, never its value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DsnSource::Env(name) => write!(f, "environment variable {name}"),
            DsnSource::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

/// How a failed call is tried again (`retry_policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls after the first (`max_retries`, default 3; 0 turns retries off).
    pub max_retries: u32,
    /// How the wait grows between calls.
    pub backoff: Backoff,
    /// The first wait (`base_delay_ms`, default 100).
    pub base_delay: Duration,
    /// The longest wait (`max_delay_ms`, default 5000).
    pub max_delay: Duration,
}

/// How the wait before a retry grows (`backoff_strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backoff {
    /// Doubles after every retry (`exponential`, the default).
    Exponential,
    /// The same every time (`fixed`).
    Fixed,
}

/// When a dependency counts as down (`circuit_breaker`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failed calls that open the circuit (`failure_threshold`, default 5).
    pub failure_threshold: u32,
    /// How long it stays open before one trial call (`reset_timeout_ms`, default 10000).
    pub reset_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            backoff: Backoff::Exponential,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(5000),
        }
    }
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failure_threshold: 5,
            reset_timeout: Duration::from_millis(10_000),
        }
    }
}

impl Default for HandlerConfig {
    fn default() -> Self {
        HandlerConfig {
            timeout: Duration::from_millis(30_000),
            retry: RetryPolicy::default(),
            rate_limit_per_second: None,
            circuit_breaker: BreakerPolicy::default(),
            pool_size: None,
            dsn: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    timeout_ms: Option<Spanned<u64>>,
    retry_policy: Option<Spanned<RawRetry>>,
    rate_limit_per_second: Option<Spanned<u64>>,
    circuit_breaker: Option<Spanned<RawBreaker>>,
    pool_size: Option<Spanned<u64>>,
    dsn_env: Option<Spanned<String>>,
    dsn_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    max_retries: Option<Spanned<u64>>,
    backoff_strategy: Option<Spanned<String>>,
    base_delay_ms: Option<Spanned<u64>>,
    max_delay_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBreaker {
    failure_threshold: Option<Spanned<u64>>,
    reset_timeout_ms: Option<Spanned<u64>>,
}

/// The checked settings of a `handler_type` binding; `None` once a problem is recorded.
pub(super) fn handler_config(
    raw: &RawConfig,
    handler_type: HandlerType,
    problems: &mut Problems,
) -> Option<HandlerConfig> {
    let before = problems.len();
    let defaults = HandlerConfig::default();
    let mut config = HandlerConfig {
        timeout: millis(
            "timeout_ms",
            raw.timeout_ms.as_ref(),
            1..=600_000,
            defaults.timeout,
            problems,
        ),
        rate_limit_per_second: raw
            .rate_limit_per_second
            .as_ref()
            .map(|rate| ranged("rate_limit_per_second", rate, 1..=1_000_000, problems)),
        ..defaults
    };
    if let Some(retry) = &raw.retry_policy {
        config.retry = retry_policy(retry, problems);
    }
    if let Some(breaker) = &raw.circuit_breaker {
        let raw = &breaker.value;
        config.circuit_breaker = BreakerPolicy {
            failure_threshold: raw
                .failure_threshold
                .as_ref()
                .map_or(defaults.circuit_breaker.failure_threshold, |n| {
                    ranged("circuit_breaker.failure_threshold", n, 1..=1000, problems)
                }),
            reset_timeout: millis(
                "circuit_breaker.reset_timeout_ms",
                raw.reset_timeout_ms.as_ref(),
                1..=3_600_000,
                defaults.circuit_breaker.reset_timeout,
                problems,
            ),
        };
    }
    if let Some(size) = &raw.pool_size {
        if handler_type == HandlerType::Db {
            config.pool_size = Some(ranged("pool_size", size, 1..=100, problems) as usize);
        } else {
            problems.add(
                line_of(&size.referenced),
                format!("pool_size is a db setting, not one of the {handler_type} handler"),
                "only the db handler keeps a pool of connections",
                "remove pool_size from this handler's config",
            );
        }
    }
    config.dsn = dsn_source(raw, handler_type, problems);
    (problems.len() == before).then_some(config)
}

/// The checked `dsn_env` or `dsn_file`: db only, one of the two, a variable name in the
/// shell's form, a non-empty path.
fn dsn_source(
    raw: &RawConfig,
    handler_type: HandlerType,
    problems: &mut Problems,
) -> Option<DsnSource> {
    let (env, file) = (raw.dsn_env.as_ref(), raw.dsn_file.as_ref());
    let first = env.or(file)?;
    if handler_type != HandlerType::Db {
        problems.add(
            line_of(&first.referenced),
            format!("dsn_env and dsn_file are db settings, not ones of the {handler_type} handler"),
            "only the db handler reads a connection string",
            "remove dsn_env and dsn_file from this handler's config",
        );
        return None;
    }
    match (env, file) {
        (Some(_), Some(file)) => {
            problems.add(
                line_of(&file.referenced),
                "config sets both dsn_env and dsn_file",
                "a binding reads its connection string from one place",
                "keep dsn_env or dsn_file, not both",
            );
            None
        }
        (Some(env), None) => {
            let name = env.value.as_str();
            let shell_name = name.chars().next().is_some_and(|c| !c.is_ascii_digit())
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if shell_name {
                return Some(DsnSource::Env(name.to_owned()));
            }
            problems.add(
                line_of(&env.referenced),
                format!("config.dsn_env '{name}' is not an environment variable's name"),
                "dsn_env names the variable holding the connection string, e.g. ORDERS_DB_URL; the string itself never goes in a contract",
                "set dsn_env to a name of capital letters, digits and '_'",
            );
            None
        }
        (None, Some(file)) if file.value.trim().is_empty() => {
            problems.add(
                line_of(&file.referenced),
                "config.dsn_file is empty",
                "dsn_file is the path of a file holding the connection string, e.g. /run/secrets/orders_db",
                "set dsn_file to the secret file's path",
            );
            None
        }
        (None, Some(file)) => Some(DsnSource::File(file.value.clone().into())),
        (None, None) => None,
    }
}

fn retry_policy(retry: &Spanned<RawRetry>, problems: &mut Problems) -> RetryPolicy {
    let (raw, defaults) = (&retry.value, RetryPolicy::default());
    let backoff = match raw.backoff_strategy.as_ref() {
        None => defaults.backoff,
        Some(strategy) => match strategy.value.as_str() {
            "exponential" => Backoff::Exponential,
            "fixed" => Backoff::Fixed,
            other => {
                problems.add(
                    line_of(&strategy.referenced),
                    format!("retry_policy.backoff_strategy '{other}' is not a strategy"),
                    "the strategies are: exponential (the wait doubles), fixed",
                    "set backoff_strategy: exponential or fixed",
                );
                defaults.backoff
            }
        },
    };
    let policy = RetryPolicy {
        max_retries: raw.max_retries.as_ref().map_or(defaults.max_retries, |n| {
            ranged("retry_policy.max_retries", n, 0..=10, problems)
        }),
        backoff,
        base_delay: millis(
            "retry_policy.base_delay_ms",
            raw.base_delay_ms.as_ref(),
            1..=60_000,
            defaults.base_delay,
            problems,
        ),
        max_delay: millis(
            "retry_policy.max_delay_ms",
            raw.max_delay_ms.as_ref(),
            1..=600_000,
            defaults.max_delay,
            problems,
        ),
    };
    if policy.max_delay < policy.base_delay {
        let at = raw.max_delay_ms.as_ref().or(raw.base_delay_ms.as_ref());
        problems.add(
            at.and_then(|value| line_of(&value.referenced))
                .or(line_of(&retry.referenced)),
            format!(
                "retry_policy.max_delay_ms ({}) is below base_delay_ms ({})",
                policy.max_delay.as_millis(),
                policy.base_delay.as_millis()
            ),
            "the wait starts at base_delay_ms and grows up to max_delay_ms",
            "raise max_delay_ms, or lower base_delay_ms",
        );
    }
    policy
}

/// The value of `field`, recorded as a problem unless it lies in `range`.
fn ranged(
    field: &str,
    value: &Spanned<u64>,
    range: std::ops::RangeInclusive<u32>,
    problems: &mut Problems,
) -> u32 {
    let within = u32::try_from(value.value)
        .ok()
        .filter(|value| range.contains(value));
    within.unwrap_or_else(|| {
        problems.add(
            line_of(&value.referenced),
            format!("config.{field} {} is out of range", value.value),
            format!("from {} to {}", range.start(), range.end()),
            format!("set {field} within that range, or remove it for its default"),
        );
        *range.start()
    })
}

/// The duration in milliseconds `field` holds, else `default`.
fn millis(
    field: &str,
    value: Option<&Spanned<u64>>,
    range: std::ops::RangeInclusive<u32>,
    default: Duration,
    problems: &mut Problems,
) -> Duration {
    value.map_or(default, |ms| {
        Duration::from_millis(u64::from(ranged(field, ms, range, problems)))
    })
}
