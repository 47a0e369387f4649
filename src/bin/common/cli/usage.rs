//! The usage text `--help` prints: every option, what it does, its default and limits
//! (the limits and defaults the parser enforces are filled in from its constants).

use super::{DEFAULT_HEALTH_URL, DEFAULT_MEMORY_BUDGET_MIB, MAX_IN_FLIGHT, MAX_SLEEP_SECS};
use onex_host::api::DEFAULT_REQUEST_TIMEOUT;
use onex_host::busy_poll::MAX_WINDOW_MICROS;

/// The usage text of `binary`.
pub fn usage(binary: &str) -> String {
    format!(
        "\
{binary} {version}
Hosts ONEX nodes: loads a runtime-host contract and answers request envelopes.

Usage: {binary} [OPTIONS] CONTRACT_PATH
       {binary} healthcheck [URL]   (exit 0 if URL, default {health}, answers 200)
       {binary} sleep SECONDS       (wait, at most {sleep_max} s, then exit 0: a preStop hook)

Options:
  --stdin               read request envelopes from standard input, one JSON object
                        a line; write one response line for every input line, in order
  --listen ADDR         serve the HTTP API on ADDR (e.g. 127.0.0.1:8085): POST
                        /v1/envelopes, GET /health/live, /health/ready,
                        /health/handlers, /metrics
  --dry-run             load and validate the contract and every node contract it
                        names, print what would be wired, and exit
  --lenient             unknown contract fields warn (and are ignored) instead of
                        failing; every other rule stays strict
  --max-in-flight N     handle up to N requests at once (default 1: one at a time, in
                        order; at most {max_in_flight}); input waits while N are in flight
  --shutdown-grace SECS after SIGTERM/SIGINT, how long requests in flight may take to
                        finish (default 30); later, they are answered with a failure
  --request-timeout SECS
                        how long an API client may take to send a whole request,
                        headers and body (default {request_timeout})
  --memory-budget MIB   how much request and response data the host holds at once
                        (default {memory_budget}); past it, input waits and API requests get 503
  --busy-poll MICROS    after running out of work, keep checking for requests and
                        replies for up to MICROS µs (at most {busy_poll_max}) before sleeping
                        (default 0: sleep at once). Answers one-at-a-time clients
                        sooner where waking a process is slow (virtual machines);
                        costs up to that much CPU each time the host falls idle, and
                        needs a CPU to spare
  --log-level LEVEL     error, warn, info (default), debug, trace or off; logs go to
                        standard error
  --log-format FORMAT   text (default) or json (one object a line)
  -h, --help            print this help
  -V, --version         print the version

Exit status: 0 clean run, 1 contract, configuration or start-up failure,
2 command-line usage error.
",
        version = env!("CARGO_PKG_VERSION"),
        health = DEFAULT_HEALTH_URL,
        sleep_max = MAX_SLEEP_SECS,
        max_in_flight = MAX_IN_FLIGHT,
        request_timeout = DEFAULT_REQUEST_TIMEOUT.as_secs(),
        memory_budget = DEFAULT_MEMORY_BUDGET_MIB,
        busy_poll_max = MAX_WINDOW_MICROS,
    )
}
