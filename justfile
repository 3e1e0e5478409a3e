# wfhost — `just --list` shows every recipe. `just ci` is what CI runs (.ci/run).
set shell := ["bash", "-euo", "pipefail", "-c"]

export CARGO_TARGET_DIR := env_var_or_default("CARGO_TARGET_DIR", env_var("HOME") + "/.cache/wfhost-target")
wfhost := CARGO_TARGET_DIR + "/release/wfhost"

# ---------------------------------------------------------------- build

# Build the wfhost binary (release).
[group('build')]
build:
    cargo build --release --locked --bin wfhost

# Rebuild the guest (QuickJS plugin) from source with the Debian toolchain, pre-initialise it
# (Wizer), optimise it (wasm-opt) and write guest-sdk/dist/ with its sha256.
[group('build')]
guest:
    #!/usr/bin/env bash
    set -euo pipefail
    raw=$(guest-sdk/build.sh)
    cargo build --release --locked --features guest-build --bin wfhost-guest-init
    "$CARGO_TARGET_DIR/release/wfhost-guest-init" "$raw" guest-sdk/dist/wfhost-guest.wasm

# Rebuild the guest from source and fail unless it is byte-identical to the committed one.
[group('check')]
guest-verify:
    #!/usr/bin/env bash
    set -euo pipefail
    raw=$(guest-sdk/build.sh)
    cargo build --release --locked --features guest-build --bin wfhost-guest-init
    out=$(mktemp -d)
    "$CARGO_TARGET_DIR/release/wfhost-guest-init" "$raw" "$out/wfhost-guest.wasm"
    want=$(cut -d' ' -f1 guest-sdk/dist/wfhost-guest.wasm.sha256)
    got=$(cut -d' ' -f1 "$out/wfhost-guest.wasm.sha256")
    if [ "$want" != "$got" ] || ! cmp -s "$out/wfhost-guest.wasm" guest-sdk/dist/wfhost-guest.wasm; then
        echo "guest-verify: FAILED: the guest built from source has sha256 $got, the committed one $want" >&2
        exit 1
    fi
    echo "guest-verify: ok, the committed guest is the source ($got)"

# ---------------------------------------------------------------- test

# Run every test (unit, integration through the real binary, conformance).
[group('test')]
test:
    cargo nextest run --release --locked --workspace --no-fail-fast

# The reference runtime's conformance cases, through the real binary and the mock backend.
[group('test')]
conformance: build
    WFHOST_RUNS_DIR=$(mktemp -d) python3 tests/conformance/check.py --wfhost {{wfhost}} --cases tests/conformance/cases

# ---------------------------------------------------------------- check

# Formatting and lints.
[group('check')]
lint:
    cargo fmt --all -- --check
    cargo clippy --release --locked --workspace --all-targets -- -D warnings

# What CI runs: guest reproducibility, lints, every test.
[group('check')]
ci: guest-verify lint test conformance

# ---------------------------------------------------------------- bench

# Start-up and guest costs: cold and warm `wfhost run` against node.
[group('bench')]
bench-core: build
    bench/core.sh {{wfhost}}

# Host overhead of the runtime: fan-out, scheduling efficiency, pipelines.
[group('bench')]
bench-runtime: build
    bench/runtime.sh {{wfhost}}

# Resume of a fully cached 1000-agent run; the journal's cost per agent.
[group('bench')]
bench-journal: build
    bench/journal.sh {{wfhost}}

# wfhost against node side by side: start-up, fan-out, scheduling, resume, memory, scaling.
# Writes bench/RESULTS.md.
[group('bench')]
bench: build
    bench/bench.sh {{wfhost}}
