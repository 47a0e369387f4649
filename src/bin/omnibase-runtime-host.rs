//! `omnibase-runtime-host`: the production runtime host (http and db handlers).

use std::process::ExitCode;

use onex_host::wiring::Profile;

mod common;

fn main() -> ExitCode {
    common::main(Profile::Production)
}
