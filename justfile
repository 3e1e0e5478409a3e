# wfhost — `just --list` shows every recipe. `just ci` is what CI runs (.ci/run).
set shell := ["bash", "-euo", "pipefail", "-c"]

export CARGO_TARGET_DIR := env_var_or_default("CARGO_TARGET_DIR", env_var("HOME") + "/.cache/wfhost-target")
wfhost := CARGO_TARGET_DIR + "/release/wfhost"
check-jsonschema := `command -v check-jsonschema || echo "$HOME/.cache/wfhost-venv/bin/check-jsonschema"`

# ---------------------------------------------------------------- build

# Build the wfhost binary (release) and warm its compile cache, so the first run starts warm.
[group('build')]
build:
    cargo build --release --locked --bin wfhost
    {{wfhost}} compile --warm

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
# (`just test` runs them too, as the test `all_conformance_cases_match`.)
[group('test')]
conformance: build
    WFHOST_RUNS_DIR=$(mktemp -d) python3 tests/conformance/check.py --wfhost {{wfhost}} --cases tests/conformance/cases

# ---------------------------------------------------------------- check

# Formatting and lints: the host (with the workspace's curated lints) and the guest plugin.
[group('check')]
lint:
    cargo fmt --all -- --check
    cargo fmt --manifest-path guest-sdk/plugin/Cargo.toml -- --check
    cargo clippy --release --locked --workspace --all-targets -- -D warnings
    # The guest plugin is linted for the host target: clippy for wasm32 needs a wasm32 std that
    # cannot be downloaded here, and the plugin's code has no target-specific branches.
    CARGO_TARGET_DIR="$CARGO_TARGET_DIR/guest-clippy" cargo clippy --locked --manifest-path guest-sdk/plugin/Cargo.toml -- -D warnings
    # The GitHub workflows and the action against GitHub's published schemas (check-jsonschema's
    # built-in copies: offline). .ci/run installs it in a venv.
    {{check-jsonschema}} --builtin-schema vendor.github-workflows .github/workflows/*.yml
    {{check-jsonschema}} --builtin-schema vendor.github-actions action.yml

# The offline RustSec snapshot (../shared/supply-chain), unpacked where deny.toml looks.
[private]
advisory-db:
    #!/usr/bin/env bash
    set -euo pipefail
    db="$CARGO_TARGET_DIR/advisory-dbs/advisory-db-3157b0e258782691"
    bundle=../shared/supply-chain/advisory-db.bundle
    if [ ! -d "$db/.git" ] || [ "$bundle" -nt "$db/.git" ]; then
        rm -rf "$db"
        git -c init.defaultBranch=main clone -q "$bundle" "$db"
    fi

# Supply chain: advisories, licenses, banned and duplicate crates, sources (deny.toml), against
# the offline advisory snapshot; then prove the advisory check can fail.
[group('check')]
deny: advisory-db deny-selftest
    cargo fetch --locked -q
    WFHOST_ADVISORY_DBS="$CARGO_TARGET_DIR/advisory-dbs" cargo deny --offline --locked check
    # The guest's own crates (QuickJS, ICU4X), from its own lockfile, under the same rules.
    cargo fetch --locked -q --manifest-path guest-sdk/plugin/Cargo.toml
    WFHOST_ADVISORY_DBS="$CARGO_TARGET_DIR/advisory-dbs" cargo deny --offline --locked --manifest-path guest-sdk/plugin/Cargo.toml check

# The advisory check must fail on a lockfile that pins a crate with known advisories.
[group('check')]
deny-selftest: advisory-db
    #!/usr/bin/env bash
    set -euo pipefail
    fixture=tests/supply-chain/known-vulnerable/Cargo.toml
    cargo fetch --locked -q --manifest-path "$fixture"
    if WFHOST_ADVISORY_DBS="$CARGO_TARGET_DIR/advisory-dbs" cargo deny --offline --locked \
        --manifest-path "$fixture" --config tests/supply-chain/deny-selftest.toml \
        check advisories >/tmp/wfhost-deny-selftest.log 2>&1; then
        echo "deny-selftest: FAILED: the advisory check passed a lockfile with known advisories" >&2
        exit 1
    fi
    grep -q "RUSTSEC-2026-0149" /tmp/wfhost-deny-selftest.log
    echo "deny-selftest: ok, the advisory check refuses wasmtime-wasi 42.0.2 (RUSTSEC-2026-0149)"

# What CI runs: guest reproducibility, lints, the supply-chain check, every test (the
# conformance cases among them).
[group('check')]
ci: guest-verify lint deny test

# Release archives and the Debian package, with sha256 sums, into dist/ (scripts/dist.sh).
[group('build')]
dist: build
    scripts/dist.sh {{wfhost}} dist

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

# 5,000 instant agents on the openai backend (TLS + HTTP/2, streamed, the fake API) against the
# mock: target openai ÷ mock ≤ 1.5. Prints the `BENCH openai-vs-mock` line.
[group('bench')]
bench-openai: build
    cargo nextest run --release --locked --run-ignored only --no-capture -E 'test(bench_openai_backend_against_mock)' 2>&1 | grep BENCH

# The targets of issue 17, as ratios in one run (interleaved pairs). Writes bench/RESULTS-perf.md.
[group('bench')]
bench-perf: build
    python3 bench/perf.py {{wfhost}}

# What watching and steering a run cost: the dashboard's CPU at 1000 agents, control latency.
# Writes bench/RESULTS-live.md.
[group('bench')]
bench-live: build
    python3 bench/live.py {{wfhost}}

# What a run spends: billed input of a shared-head fan-out with and without the cache stagger;
# a rate-limited 200-agent run, adaptive against fixed concurrency. Writes bench/RESULTS-cost.md.
[group('bench')]
bench-cost:
    cargo nextest run --release --run-ignored only --no-capture -E 'test(=cost::bench_cost)'

# A 200-agent fan-out live and through the Message Batches API (`--batch`): cost, time and the
# host's CPU per agent, against the fake API. Writes bench/RESULTS-batch.md.
[group('bench')]
bench-batch:
    cargo nextest run --release --run-ignored only --no-capture -E 'test(=batch::bench_batch)'

# Agents on NATS JetStream workers: throughput on 1, 2 and 4 workers, the executor's overhead.
# Needs `nats-server` (Debian's package). Writes bench/RESULTS-distributed.md.
[group('bench')]
bench-distributed: build
    python3 bench/distributed.py {{wfhost}}

# Agents' tools: host time per Read and Grep (beside `rg`), a confined Bash call's start, a
# 50-file review against the ideal. Needs Debian's `ripgrep`. Writes bench/RESULTS-tools.md.
[group('bench')]
bench-tools:
    cargo nextest run --release --run-ignored only --no-capture -E 'test(=tools::bench_tools)'

# wfhost against node side by side: start-up, fan-out, scheduling, resume, memory, scaling.
# Writes bench/RESULTS.md.
[group('bench')]
bench: build
    bench/bench.sh {{wfhost}}
