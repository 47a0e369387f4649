# Tasks for the onex runtime host. `just --list` shows them.

# Run every test, installing what they need when it is missing (cargo xtask test, as CI).
test:
    cargo xtask test

# Format check, lints as errors, then the tests: run before every commit.
check:
    cargo fmt --all -- --check
    cargo fmt --manifest-path crates/fuzz/Cargo.toml -- --check
    cargo clippy --all-targets --workspace -- -D warnings
    cargo xtask test

# Fuzz one target or all for SECONDS each on stable (docs/DEVELOPMENT.md: Fuzzing).
fuzz target="all" seconds="60":
    .ci/fuzz {{target}} {{seconds}}

# Line coverage per file of the tests, spawned binaries included (cargo-llvm-cov).
coverage *args:
    .ci/coverage {{args}}

# Run the dev host on the example contract, answering the example requests.
run:
    cargo run --bin omninode-runtime-host-dev -- contracts/runtime/dev_runtime_host.yaml --stdin < examples/requests.jsonl

# Validate a contract without starting anything.
validate contract="contracts/runtime/infra_runtime_host.yaml":
    cargo run --bin omnibase-runtime-host -- --dry-run {{contract}}

# Build the fully static musl binary (needs: apt-get install musl-tools cmake g++
# libcurl4-openssl-dev; rustup target add x86_64-unknown-linux-musl).
build-static:
    . .ci/musl-env && cargo build --release --target x86_64-unknown-linux-musl --bin omnibase-runtime-host

# Build the static binary and the image localhost/omnibase-runtime-host:0.1.0 (podman).
image:
    .ci/build-image

# Build the container image and prove it under 128 MB and a quarter CPU (root, podman).
image-test:
    .ci/image-test

# The benchmark suite on the glibc build: figures beside their baselines (bench/suite.rs).
bench *scenarios:
    cargo bench --bench suite -- {{scenarios}}

# The same on the static musl build users get in the image.
bench-static *scenarios:
    . .ci/musl-env && cargo bench --bench suite --target x86_64-unknown-linux-musl -- {{scenarios}}

# The soak (not in CI): SECONDS of 1 MiB payloads through the API, 1 in 10 failing; the
# host's RSS sampled, flat and under 128 MiB (bench/soak.rs).
soak seconds="600":
    SOAK_SECONDS={{seconds}} cargo bench --bench suite -- s

# Instructions per local.echo envelope through --stdin, under callgrind (bench/callgrind.sh).
callgrind:
    cargo build --release --bin omninode-runtime-host-dev
    bench/callgrind.sh
