//! The boot script both binaries run: arguments, logging, contract, wiring, serving,
//! shutdown, exit status.

use std::ffi::OsString;
use std::process::ExitCode;

use crate::cli::{self, Command, Options};
use crate::contract::RuntimeHostContract;
use crate::envelope::Stamp;
use crate::error::{ErrorKind, RuntimeHostError};
use crate::wiring::{self, Profile};

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
                "{binary}: refusing to start with ENVIRONMENT={environment}; run omnibase-runtime-host in production"
            );
            return ExitCode::FAILURE;
        }
    }
    init_logging(&options);
    match smol::block_on(run(profile, &options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            match error.kind() {
                ErrorKind::Contract(contract) => eprintln!("{contract}"),
                _ => eprintln!("{binary}: {}", error.message_chain()),
            }
            ExitCode::FAILURE
        }
    }
}

/// Loads, wires and serves the contract `options` names.
async fn run(profile: Profile, options: &Options) -> Result<(), RuntimeHostError> {
    log::info!("Runtime host initializing...");
    log::info!("Loading contract: {}", options.contract.display());
    let contract = RuntimeHostContract::load(&options.contract)?;
    for warning in &contract.warnings {
        log::warn!("{}", warning.one_line());
    }
    let host = wiring::build_host(&contract, profile, Stamp::system())?;
    if options.dry_run {
        print!("{}", host.wiring_summary());
        return Ok(());
    }
    let served = match host.start().await {
        Ok(inputs) => {
            let stdin = futures_lite::io::BufReader::with_capacity(
                64 * 1024,
                smol::Unblock::new(std::io::stdin()),
            );
            let stdout = futures_lite::io::BufWriter::with_capacity(
                64 * 1024,
                smol::Unblock::new(std::io::stdout()),
            );
            crate::stdio::serve(&host, inputs, stdin, stdout).await
        }
        Err(error) => Err(error),
    };
    host.shutdown().await;
    let answered = served?;
    log::info!("answered {answered} envelopes");
    Ok(())
}

/// The value of `ENVIRONMENT` if it names production.
fn production_environment() -> Option<String> {
    let environment = std::env::var("ENVIRONMENT").ok()?;
    matches!(
        environment.to_ascii_lowercase().as_str(),
        "prod" | "production"
    )
    .then_some(environment)
}

fn init_logging(options: &Options) {
    let config = simplelog::ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_target_level(log::LevelFilter::Off)
        .set_thread_level(log::LevelFilter::Off)
        .build();
    // Standard output carries response envelopes; every log line goes to standard error.
    let _ = simplelog::WriteLogger::init(options.log_level, config, std::io::stderr());
}
