#!/usr/bin/env bash
# Builds the raw wfhost guest plugin (wasm32-wasip1) with Debian's toolchain.
# Output: $GUEST_TARGET_DIR/wasm32-wasip1/release/wfhost_guest.wasm (printed on stdout).
# Pre-initialisation (Wizer) and wasm-opt are done by `wfhost guest-build` (see justfile).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
source "$here/env.sh"
export CARGO_TARGET_DIR=${GUEST_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wfhost-guest-target}
# Paths that differ between checkouts must not reach the binary (reproducible builds).
export RUSTFLAGS="$RUSTFLAGS --remap-path-prefix=$root=/wfhost --remap-path-prefix=$CARGO_TARGET_DIR=/wfhost-target"
cd "$here/plugin"
cargo build --locked --release --target wasm32-wasip1 -Zbuild-std=std,panic_abort >&2
echo "$CARGO_TARGET_DIR/wasm32-wasip1/release/wfhost_guest.wasm"
