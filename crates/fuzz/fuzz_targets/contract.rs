//! The contract loader with arbitrary text, read as a node, a handler and a runtime-host
//! contract (strictly, and with `--lenient`).
//!
//! Properties: parsing never panics, never hangs (libFuzzer's `-timeout`), and a contract
//! refused says why: at least one problem, each with a message, a hint and an action.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use onex_host::contract::{ContractError, HandlerContract, NodeContract, RuntimeHostContract};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(NodeContract::parse(text, Path::new("node.yaml")));
    check(HandlerContract::parse(
        text,
        Path::new("handler_contract.yaml"),
    ));
    check(RuntimeHostContract::parse(text, runtime_file()));
    // --lenient re-parses after blanking each unknown field's lines.
    check(RuntimeHostContract::parse_lenient(
        text,
        runtime_file(),
        &|_| None,
        true,
    ));
});

fn check<T>(parsed: Result<T, ContractError>) {
    if let Err(error) = parsed {
        assert!(!error.problems().is_empty(), "an error without a problem");
        for problem in error.problems() {
            assert!(
                !problem.message.is_empty(),
                "a problem without a message: {problem:?}"
            );
            assert!(
                !problem.hint.is_empty(),
                "a problem without a hint: {problem:?}"
            );
            assert!(
                !problem.action.is_empty(),
                "a problem without an action: {problem:?}"
            );
        }
        assert!(!error.to_string().is_empty());
    }
}

/// Where the runtime contract claims to live. Parsing it is pure up to its node references,
/// which it resolves on disk from that file's directory (`nodes/<slug>.yaml`, then
/// `../nodes/<slug>.yaml`, or `contract: PATH`): this directory holds two node contracts,
/// so that resolution and the nodes' validation run for real too.
fn runtime_file() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::temp_dir().join("onex-host-fuzz-contract");
        let nodes = dir.join("nodes");
        std::fs::create_dir_all(&nodes).expect("a temporary directory");
        for (name, text) in [
            (
                "echo_node.yaml",
                include_str!("../../../contracts/nodes/echo_node.yaml"),
            ),
            (
                "example_node.yaml",
                include_str!("../../../contracts/nodes/example_node.yaml"),
            ),
        ] {
            std::fs::write(nodes.join(name), text).expect("a node contract written");
        }
        dir.join("runtime.yaml")
    })
}
