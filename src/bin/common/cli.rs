//! The command line both binaries share (docs/INTERFACE.md), parsed from an explicit list.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use log::LevelFilter;

use onex_host::api::DEFAULT_REQUEST_TIMEOUT;
use onex_host::bus::BusKind;
use onex_host::busy_poll::MAX_WINDOW_MICROS;
use onex_host::logging::LogFormat;

mod modes;
mod usage;
pub use modes::{DEFAULT_HEALTH_URL, MAX_SLEEP_SECS};
pub use usage::usage;

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Load a contract and serve (or only validate) it.
    Run(Options),
    /// Print the usage text.
    Help,
    /// Print the version.
    Version,
    /// Probe a running host's liveness (for container health checks): exit 0 if `url`
    /// answers 200.
    Healthcheck {
        /// The URL to probe.
        url: String,
    },
    /// Wait this long, then exit 0 (a `preStop` hook in an image without `sleep`).
    Sleep(Duration),
}

/// The most requests `--max-in-flight` lets the host handle at once. Memory is bounded by
/// the host's byte budget whatever the number, but every slot is a task and a place in
/// the drain's bookkeeping: past a few thousand, a host on a quarter of a CPU only queues.
pub const MAX_IN_FLIGHT: u64 = 4096;

/// `--memory-budget` unless told otherwise, in MiB.
const DEFAULT_MEMORY_BUDGET_MIB: u64 = onex_host::host::DEFAULT_MEMORY_BUDGET / (1024 * 1024);
/// The largest `--memory-budget`, in MiB.
const MAX_MEMORY_BUDGET_MIB: u64 = 64 * 1024;

/// The options of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The runtime-host contract.
    pub contract: PathBuf,
    /// Serve request lines from standard input.
    pub stdin: bool,
    /// Serve the HTTP API on this address.
    pub listen: Option<SocketAddr>,
    /// Validate and print the wiring, then exit.
    pub dry_run: bool,
    /// Unknown contract fields warn instead of failing (`--lenient`).
    pub lenient: bool,
    /// How many requests may be handled at once.
    pub max_in_flight: usize,
    /// How long requests in flight may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// How long an API client may take to send a whole request.
    pub request_timeout: Duration,
    /// How many bytes of requests and responses the host may hold at once.
    pub memory_budget: u64,
    /// How long the host's thread keeps polling for I/O after it runs out of work, before
    /// it sleeps (zero: it sleeps at once).
    pub busy_poll: Duration,
    /// The most detailed log level written to standard error.
    pub log_level: LevelFilter,
    /// How log lines are written.
    pub log_format: LogFormat,
}

/// A command line that cannot be run (exit status 2).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// No contract path was given.
    #[error("missing CONTRACT_PATH")]
    MissingContract,
    /// `sleep` without its duration.
    #[error("missing SECONDS: sleep waits that many seconds, e.g. sleep 5")]
    MissingSeconds,
    /// An option's value is not one of the accepted ones.
    #[error("invalid value '{value}' for {option}: expected {expected}")]
    InvalidValue {
        /// The option.
        option: &'static str,
        /// What was given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// Something pico-args could not read (a missing value, a value that is not UTF-8).
    #[error("{0}")]
    Malformed(String),
    /// An option or argument this program does not know.
    #[error("unexpected argument '{0}'")]
    Unexpected(String),
    /// No way to receive envelopes was chosen.
    #[error(
        "nothing to serve: pass --stdin to answer request lines from standard input, or --dry-run to validate the contract"
    )]
    NoInput,
    /// `--stdin` with a contract whose bus is not in-process.
    #[error(
        "--stdin feeds the in-memory bus, and this contract's event bus is kafka: run without --stdin to consume its input topic"
    )]
    StdinOnKafka,
}

/// Parses the arguments after the program name.
pub fn parse(args: Vec<OsString>) -> Result<Command, UsageError> {
    if let Some(mode) = modes::parse(&args) {
        return mode;
    }
    let mut args = pico_args::Arguments::from_vec(args);
    if args.contains(["-h", "--help"]) {
        return Ok(Command::Help);
    }
    if args.contains(["-V", "--version"]) {
        return Ok(Command::Version);
    }
    let stdin = args.contains("--stdin");
    let dry_run = args.contains("--dry-run");
    let lenient = args.contains("--lenient");
    let log_level = match args
        .opt_value_from_str::<_, String>("--log-level")
        .map_err(malformed)?
    {
        None => LevelFilter::Info,
        Some(level) => level.parse().map_err(|_| UsageError::InvalidValue {
            option: "--log-level",
            value: level,
            expected: "error, warn, info, debug, trace or off",
        })?,
    };
    let log_format = match args
        .opt_value_from_str::<_, String>("--log-format")
        .map_err(malformed)?
        .as_deref()
    {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(UsageError::InvalidValue {
                option: "--log-format",
                value: other.to_owned(),
                expected: "text or json",
            });
        }
    };
    let listen = match args
        .opt_value_from_str::<_, String>("--listen")
        .map_err(malformed)?
    {
        None => None,
        Some(addr) => Some(addr.parse().map_err(|_| UsageError::InvalidValue {
            option: "--listen",
            value: addr,
            expected: "an IP address and port, e.g. 127.0.0.1:8085",
        })?),
    };
    let max_in_flight = number(&mut args, "--max-in-flight", 1)?;
    if !(1..=MAX_IN_FLIGHT).contains(&max_in_flight) {
        return Err(UsageError::InvalidValue {
            option: "--max-in-flight",
            value: max_in_flight.to_string(),
            expected: "a whole number from 1 to 4096",
        });
    }
    let shutdown_grace = Duration::from_secs(number(&mut args, "--shutdown-grace", 30)?);
    let request_timeout = number(
        &mut args,
        "--request-timeout",
        DEFAULT_REQUEST_TIMEOUT.as_secs(),
    )?;
    if request_timeout == 0 {
        return Err(UsageError::InvalidValue {
            option: "--request-timeout",
            value: "0".into(),
            expected: "a whole number of seconds, at least 1",
        });
    }
    let memory_budget = number(&mut args, "--memory-budget", DEFAULT_MEMORY_BUDGET_MIB)?;
    if !(1..=MAX_MEMORY_BUDGET_MIB).contains(&memory_budget) {
        return Err(UsageError::InvalidValue {
            option: "--memory-budget",
            value: memory_budget.to_string(),
            expected: "mebibytes, from 1 to 65536",
        });
    }
    let busy_poll = number(&mut args, "--busy-poll", 0)?;
    if busy_poll > MAX_WINDOW_MICROS {
        return Err(UsageError::InvalidValue {
            option: "--busy-poll",
            value: busy_poll.to_string(),
            expected: "microseconds, at most 1000000",
        });
    }
    let contract: Option<PathBuf> = args
        .opt_free_from_os_str(|s| Ok::<_, String>(PathBuf::from(s)))
        .map_err(malformed)?;
    if let Some(extra) = args.finish().into_iter().next() {
        return Err(UsageError::Unexpected(extra.to_string_lossy().into_owned()));
    }
    let contract = contract.ok_or(UsageError::MissingContract)?;
    Ok(Command::Run(Options {
        contract,
        stdin,
        listen,
        dry_run,
        lenient,
        max_in_flight: usize::try_from(max_in_flight).unwrap_or(usize::MAX),
        shutdown_grace,
        request_timeout: Duration::from_secs(request_timeout),
        memory_budget: memory_budget * 1024 * 1024,
        busy_poll: Duration::from_micros(busy_poll),
        log_level,
        log_format,
    }))
}

/// Checks that `options` give a host on `bus` a way to receive envelopes: the kafka bus
/// brings its own (its input topic); the in-memory bus needs `--stdin` or `--listen`,
/// unless the run only validates.
pub fn check_input(options: &Options, bus: BusKind) -> Result<(), UsageError> {
    match bus {
        BusKind::Kafka if options.stdin => Err(UsageError::StdinOnKafka),
        BusKind::Kafka => Ok(()),
        BusKind::InMemory if !options.stdin && options.listen.is_none() && !options.dry_run => {
            Err(UsageError::NoInput)
        }
        BusKind::InMemory => Ok(()),
    }
}

/// The whole number given to `option`, or `default`.
fn number(
    args: &mut pico_args::Arguments,
    option: &'static str,
    default: u64,
) -> Result<u64, UsageError> {
    match args
        .opt_value_from_str::<_, String>(option)
        .map_err(malformed)?
    {
        None => Ok(default),
        Some(value) => value.parse().map_err(|_| UsageError::InvalidValue {
            option,
            value,
            expected: "a whole number",
        }),
    }
}

fn malformed(error: pico_args::Error) -> UsageError {
    UsageError::Malformed(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn reads_a_full_command_line() {
        let command = parse_strs(&["--stdin", "--log-level", "debug", "c.yaml"]).unwrap();
        assert_eq!(
            command,
            Command::Run(Options {
                contract: "c.yaml".into(),
                stdin: true,
                listen: None,
                dry_run: false,
                lenient: false,
                max_in_flight: 1,
                shutdown_grace: Duration::from_secs(30),
                request_timeout: Duration::from_secs(30),
                memory_budget: 48 * 1024 * 1024,
                busy_poll: Duration::ZERO,
                log_level: LevelFilter::Debug,
                log_format: LogFormat::Text,
            })
        );
        let Ok(Command::Run(options)) = parse_strs(&[
            "--listen",
            "127.0.0.1:8085",
            "--max-in-flight",
            "8",
            "--shutdown-grace",
            "5",
            "--busy-poll",
            "50",
            "--log-format",
            "json",
            "c.yaml",
        ]) else {
            panic!("a valid command line");
        };
        assert_eq!(options.listen, Some("127.0.0.1:8085".parse().unwrap()));
        assert_eq!(
            (options.max_in_flight, options.shutdown_grace),
            (8, Duration::from_secs(5))
        );
        assert_eq!(options.log_format, LogFormat::Json);
        assert_eq!(options.busy_poll, Duration::from_micros(50));
    }

    #[test]
    fn help_and_version_win() {
        assert_eq!(parse_strs(&["c.yaml", "--help"]), Ok(Command::Help));
        assert_eq!(parse_strs(&["-V"]), Ok(Command::Version));
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        assert_eq!(parse_strs(&["--stdin"]), Err(UsageError::MissingContract));
        let Ok(Command::Run(alone)) = parse_strs(&["c.yaml"]) else {
            panic!("a contract alone parses");
        };
        assert_eq!(
            check_input(&alone, BusKind::InMemory),
            Err(UsageError::NoInput)
        );
        assert_eq!(check_input(&alone, BusKind::Kafka), Ok(()));
        let Ok(Command::Run(stdin)) = parse_strs(&["--stdin", "c.yaml"]) else {
            panic!("parses");
        };
        assert_eq!(check_input(&stdin, BusKind::InMemory), Ok(()));
        assert_eq!(
            check_input(&stdin, BusKind::Kafka),
            Err(UsageError::StdinOnKafka)
        );
        assert_eq!(
            parse_strs(&["--stdin", "c.yaml", "--bogus"]),
            Err(UsageError::Unexpected("--bogus".into()))
        );
        assert_eq!(
            parse_strs(&["--stdin", "a.yaml", "b.yaml"]),
            Err(UsageError::Unexpected("b.yaml".into()))
        );
        assert!(matches!(
            parse_strs(&["--stdin", "--log-level", "loud", "c.yaml"]),
            Err(UsageError::InvalidValue {
                option: "--log-level",
                ..
            })
        ));
        for too_many in ["0", "4097", "100000000000"] {
            assert_eq!(
                parse_strs(&["--stdin", "--max-in-flight", too_many, "c.yaml"]),
                Err(UsageError::InvalidValue {
                    option: "--max-in-flight",
                    value: too_many.into(),
                    expected: "a whole number from 1 to 4096",
                })
            );
        }
        assert!(matches!(
            parse_strs(&["--stdin", "--busy-poll", "1000001", "c.yaml"]),
            Err(UsageError::InvalidValue {
                option: "--busy-poll",
                ..
            })
        ));
        assert!(matches!(
            parse_strs(&["--stdin", "c.yaml", "--log-level"]),
            Err(UsageError::Malformed(_))
        ));
    }
}
