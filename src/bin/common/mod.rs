//! The boot script both binaries run: arguments, logging, contract, wiring, serving,
//! shutdown, exit status. Each binary compiles it as its own module (`mod common;`): it is
//! how a process starts, not something a program embedding the host would call.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use smol::{Executor, LocalExecutor};

use onex_host::busy_poll::BusyPoll;
use onex_host::contract::RuntimeHostContract;
use onex_host::envelope::Stamp;
use onex_host::error::HostError;
use onex_host::logging;
use onex_host::serve::{self, Edges};
use onex_host::wiring::{self, Profile};

use cli::{Command, Options};

mod cli;

/// Runs the binary of `profile` with the process's arguments and returns its exit status.
pub fn main(profile: Profile) -> ExitCode {
    let binary = profile.binary();
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let options = match cli::parse(args) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            print!("{}", cli::usage(binary));
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("{binary} {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(Command::Healthcheck { url }) => return healthcheck(&url),
        Ok(Command::Sleep(duration)) => {
            // A preStop hook: the pod's endpoints stop sending while this waits, and the
            // host serves on until the kubelet's SIGTERM, which comes when this exits.
            std::thread::sleep(duration);
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("{binary}: {error}\nRun '{binary} --help' for usage.");
            return ExitCode::from(2);
        }
    };
    if profile == Profile::Development {
        eprintln!(
            "WARNING: {binary} is for development and tests only: it registers only the LocalHandler. Run omnibase-runtime-host in production."
        );
        if let Some(environment) = production_environment() {
            eprintln!(
                "{binary}: refusing to start with ENVIRONMENT={environment:?}; run omnibase-runtime-host in production"
            );
            return ExitCode::FAILURE;
        }
    }
    logging::init(options.log_level, options.log_format);
    // One executor, on this thread, for everything the host runs concurrently.
    let executor = Arc::new(Executor::new());
    // The host's own work runs as a task, not as the future `block_on` polls: a task that
    // wakes itself (a reply read while it waits for it) is simply queued again, where
    // `block_on` would first poll the reactor, a round of system calls per wake-up.
    log::info!("Runtime host initializing...");
    log::info!("Loading contract: {}", options.contract.display());
    let contract = match RuntimeHostContract::load_with(&options.contract, options.lenient) {
        Ok(contract) => contract,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = cli::check_input(&options, contract.event_bus.kind()) {
        eprintln!("{binary}: {error}\nRun '{binary} --help' for usage.");
        return ExitCode::from(2);
    }
    let main = LocalExecutor::new();
    let host = main.spawn(run(profile, &options, contract, &executor));
    let everything = BusyPoll::new(executor.run(main.run(host)), options.busy_poll);
    match smol::block_on(everything) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(cut_short) => {
            log::error!("{cut_short} request(s) were cut short by the shutdown deadline");
            ExitCode::FAILURE
        }
        Err(error) => {
            match &error {
                HostError::Contract(contract) => eprintln!("{contract}"),
                _ => eprintln!("{binary}: {}", error.message_chain()),
            }
            ExitCode::FAILURE
        }
    }
}

/// Wires and serves `contract`; returns how many requests the shutdown deadline cut short.
async fn run(
    profile: Profile,
    options: &Options,
    contract: RuntimeHostContract,
    executor: &Arc<Executor<'static>>,
) -> Result<u64, HostError> {
    logging::set_runtime(&contract.name);
    for warning in &contract.warnings {
        log::warn!("{}", warning.one_line());
    }
    let host = wiring::build_host(&contract, profile, Stamp::system(), options.max_in_flight)?
        .with_memory_budget(options.memory_budget);
    if options.dry_run {
        print!("{}", host.wiring_summary());
        return Ok(0);
    }
    let host = Arc::new(host);
    let edges = Edges {
        stdin: options.stdin,
        listen: options.listen,
        grace: options.shutdown_grace,
        request_timeout: options.request_timeout,
    };
    let served = serve::serve(Arc::clone(&host), &edges, executor).await;
    host.shutdown().await;
    served
}

/// The value of `ENVIRONMENT` if it names production (`prod` or `production`, in any
/// case, with any surrounding white space: `' PROD'` is a typo away from production).
fn production_environment() -> Option<String> {
    let environment = std::env::var("ENVIRONMENT").ok()?;
    names_production(&environment).then_some(environment)
}

fn names_production(environment: &str) -> bool {
    let name = environment.trim().to_ascii_lowercase();
    name == "prod" || name == "production"
}

/// `healthcheck URL`: 0 if the URL answers 200 within 3 s, else 1 (and why, on stderr).
/// Images without a shell or curl use it as their HEALTHCHECK.
fn healthcheck(url: &str) -> ExitCode {
    use isahc::config::Configurable;
    // Never through a proxy: the probe is of this machine, and an http_proxy the
    // container or unit inherits would make a live host look dead.
    let request = isahc::Request::get(url)
        .timeout(std::time::Duration::from_secs(3))
        .proxy(None)
        .body(());
    let response = request
        .map_err(|error| error.to_string())
        .and_then(|request| isahc::send(request).map_err(|error| error.to_string()));
    match response {
        Ok(response) if response.status() == 200 => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("healthcheck: {url} answered {}", response.status());
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("healthcheck: {url}: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::names_production;

    #[test]
    fn production_is_recognised_in_any_case_and_padding() {
        for name in [
            "prod",
            "PROD",
            " prod",
            "Prod ",
            "\tproduction\n",
            "PRODUCTION",
        ] {
            assert!(names_production(name), "{name:?}");
        }
        for name in ["", "dev", "staging", "pro d", "preprod", "production-like"] {
            assert!(!names_production(name), "{name:?}");
        }
    }
}
