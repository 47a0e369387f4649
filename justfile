# Tasks for the onex runtime host. `just --list` shows them.

# Run every test (what CI runs).
test:
    cargo test

# Format check, lints as errors, then the tests: run before every commit.
check:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings
    cargo test

# Run the dev host on the example contract, answering the example requests.
run:
    cargo run --bin omninode-runtime-host-dev -- contracts/runtime/dev_runtime_host.yaml --stdin < examples/requests.jsonl

# Validate a contract without starting anything.
validate contract="contracts/runtime/infra_runtime_host.yaml":
    cargo run --bin omnibase-runtime-host -- --dry-run {{contract}}
