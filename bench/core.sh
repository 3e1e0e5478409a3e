#!/usr/bin/env bash
# `just bench-core`: start-up and guest costs. Writes bench/RESULTS-core.md.
#   cold  = no compile cache (the guest is compiled by Cranelift)
#   warm  = cached precompiled guest and cached script bytecode
#   node  = node running the same script over bench/node-shim.mjs (no sandbox)
set -euo pipefail
wfhost=${1:?usage: core.sh PATH/TO/wfhost}
here=$(cd "$(dirname "$0")" && pwd)
out=$here/RESULTS-core.md
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
export WFHOST_CACHE_DIR=$cache
run="$wfhost run $here/trivial.js --backend mock --yes --quiet"
command -v hyperfine >/dev/null || { echo "hyperfine is needed: apt-get install hyperfine" >&2; exit 1; }

# One --prepare per command, in order (a single one would apply to all three).
hyperfine --style basic --warmup 3 --min-runs 20 --export-markdown "$cache/startup.md" \
  --prepare true --command-name "wfhost run (warm cache)" "$run" \
  --prepare "rm -rf $cache/v1" --command-name "wfhost run (cold: no cache)" "$run" \
  --prepare true --command-name "node + shim" "node $here/node-shim.mjs $here/trivial.js" >&2

# Guest costs from the run report's timings (median of 20).
timing() { # $1 = prepare command, $2 = field
  for _ in $(seq 20); do eval "$1"; $run --json | python3 -c "import json,sys; print(json.load(sys.stdin)['timings']['$2'])"; done |
    sort -g | awk '{a[NR]=$1} END {printf "%.3f ms (min %.3f)", a[int((NR+1)/2)], a[1]}'
}
deser=$(timing "true" guest_load_ms)
inst=$(timing "true" instantiate_ms)
comp=$(timing "rm -rf $cache/v1/bytecode" compile_ms)
cold=$(timing "rm -rf $cache/v1" guest_load_ms)
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
rss_warm=$(rss $run)
rss_node=$(rss node "$here/node-shim.mjs" "$here/trivial.js")

{
  echo "# bench-core"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m), $(date -u +%Y-%m-%d)."
  echo "$($wfhost --version | head -1), node $(node --version). Reproduce: \`just bench-core\`."
  echo
  echo "## Start-up of a trivial script (hyperfine)"
  echo
  cat "$cache/startup.md"
  echo
  echo "## Guest costs (from the run report, median of 20)"
  echo
  echo "| step | time |"
  echo "|---|---|"
  echo "| compile the guest with Cranelift (cold) | $cold |"
  echo "| deserialize the cached precompiled guest | $deser |"
  echo "| instantiate a fresh guest | $inst |"
  echo "| \`compile-src\` (script → QuickJS bytecode) | $comp |"
  echo
  echo "## Peak RSS"
  echo
  echo "| command | peak RSS |"
  echo "|---|---|"
  echo "| wfhost run (warm) | $((rss_warm / 1024)) MiB |"
  echo "| node + shim | $((rss_node / 1024)) MiB |"
} | tee "$out"
