//! `omninode-runtime-host-dev`: the development runtime host (LocalHandler only).

use std::process::ExitCode;

fn main() -> ExitCode {
    onex_host::app::main(onex_host::wiring::Profile::Development)
}
