#!/usr/bin/env bash
# Instructions per `local.echo` envelope through `--stdin`, counted by callgrind: the
# deterministic figure behind bench a (docs/PERFORMANCE.md, "What hostile-input
# hardening cost"). Wall time on a shared machine is not; instruction counts are.
#
#   bench/callgrind.sh [BINARY] [COUNT]
#
# BINARY defaults to this build's release dev host (build it first: `cargo build
# --release`), COUNT to 20,000 lines. Runs the host on COUNT lines and on none, under
# callgrind both times, and prints the difference over COUNT for three payloads: bench
# a's `{"n":i,"s":"hello"}`, `{"s":"hello"}` and ten numbers with a string. Needs
# valgrind and python3. `CALLGRIND_KEEP=DIR` keeps the callgrind.out files there
# (`callgrind_annotate` reads them; a profile with names needs a build that keeps its
# symbols: `CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
# cargo build --release --target-dir target/symbols`). `CALLGRIND_CONFIG=defaults` gives
# the local binding an empty `config` (schema 1.1.0): every layer at its defaults around
# the same handler, so the difference from a run without it is what the layers cost.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
binary=$(realpath "${1:-$root/target/release/omninode-runtime-host-dev}")
count=${2:-20000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The contract bench a writes (bench/measure.rs, `contract`).
mkdir -p "$work/runtime" "$work/nodes"
if [ "${CALLGRIND_CONFIG:-}" = defaults ]; then
    schema=1.1.0 config='      config: {}'
else
    schema=1.0.0 config=''
fi
cat >"$work/runtime/r.yaml" <<EOF
schema_version: "$schema"
runtime:
  name: "bench"
  version: "1.0.0"
  event_bus:
    kind: "inmemory"
  handlers:
    - type: "local"
$config
  nodes:
    - slug: "echo_node"
EOF
cat >"$work/nodes/echo_node.yaml" <<'EOF'
schema_version: "1.0.0"
node_version: "1.0.0"
name: "echo_node"
node_type: "EFFECT_GENERIC"
io_operations:
  - type: "local"
    operations: ["local.echo"]
EOF

# Lines as bench a writes them (bench/measure.rs, `requests`), with fixed ids.
lines() {
    python3 - "$count" "$1" >"$work/$1.jsonl" <<'EOF'
import sys
count, kind = int(sys.argv[1]), sys.argv[2]
for i in range(count):
    payload = {
        "a": '{"n":%d,"s":"hello"}' % i,
        "s": '{"s":"hello"}',
        "ten": '{%s,"s":"hello"}' % ",".join('"n%d":%d' % (k, i * 10 + k) for k in range(10)),
    }[kind]
    print('{"envelope_id":"00000000-0000-4000-8000-%012d","target_node":"echo_node",'
          '"operation":"local.echo","payload":%s}' % (i, payload))
EOF
}

# Instructions of one run of the host on `$1`.
instructions() {
    out="$work/callgrind.$2.out"
    # Input from a file and output into a pipe, as bench a runs the host.
    (cd "$work" && valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$binary" --stdin --log-level warn runtime/r.yaml <"$1" 2>"$work/valgrind.log" | cat >/dev/null)
    if [ -n "${CALLGRIND_KEEP:-}" ]; then
        mkdir -p "$CALLGRIND_KEEP" && cp "$out" "$CALLGRIND_KEEP/"
    fi
    sed -n 's/^summary: //p' "$out"
}

: >"$work/empty.jsonl"
empty=$(instructions "$work/empty.jsonl" empty)
for kind in a s ten; do
    lines "$kind"
    total=$(instructions "$work/$kind.jsonl" "$kind")
    python3 -c "import sys; print('%-4s %.2fk instructions per envelope' % (sys.argv[1], (int(sys.argv[2]) - int(sys.argv[3])) / int(sys.argv[4]) / 1000))" \
        "$kind" "$total" "$empty" "$count"
done
