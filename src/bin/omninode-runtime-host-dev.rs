//! `omninode-runtime-host-dev`: the development runtime host (LocalHandler only).

use std::process::ExitCode;

use onex_host::wiring::Profile;

mod common;

fn main() -> ExitCode {
    common::main(Profile::Development)
}
