//! `omnibase-runtime-host`: the production runtime host (http and db handlers).

use std::process::ExitCode;

fn main() -> ExitCode {
    onex_host::app::main(onex_host::wiring::Profile::Production)
}
