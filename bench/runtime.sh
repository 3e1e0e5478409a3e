#!/usr/bin/env bash
# `just bench-runtime`: what the runtime itself costs. Writes bench/RESULTS-runtime.md.
set -euo pipefail
wfhost=${1:?usage: runtime.sh PATH/TO/wfhost}
here=$(cd "$(dirname "$0")" && pwd)
out=$here/RESULTS-runtime.md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export WFHOST_CACHE_DIR=$tmp/cache
reps=${REPS:-5}

script() { # name body
  printf 'export const meta = { name: "%s", description: "runtime benchmark" };\n%s\n' "$1" "$2" > "$tmp/$1.js"
}
script fanout1000 'const r = await parallel(Array.from({ length: 1000 }, (_, i) => () => agent(`a${i}`))); return r.length;'
script empty 'return 0;'
script wave16 'const r = await parallel(Array.from({ length: 16 }, (_, i) => () => agent(`w${i} [delay=100]`))); return r.length;'
script pipe50 'const r = await pipeline(Array.from({ length: 50 }, (_, i) => `item${i}`), (x) => agent(`s1 ${x}`), (p, x) => agent(`s2 ${x}`), (p, x) => agent(`s3 ${x}`)); return r.length;'

# median and min of a report field over $reps runs: field script [flags...]
measure() {
  local field=$1 name=$2; shift 2
  for _ in $(seq "$reps"); do
    "$wfhost" run "$tmp/$name.js" --backend mock --yes --json "$@" | python3 -c "import json,sys; r=json.load(sys.stdin); assert r['outcome']=='completed', r; print(r['timings']['$field'])"
  done | sort -g | awk '{a[NR]=$1} END {printf "%.2f %.2f", a[int((NR+1)/2)], a[1]}'
}
"$wfhost" run "$tmp/empty.js" --backend mock --yes --quiet >/dev/null # warm the cache

read -r base _ <<<"$(measure run_ms empty)"
read -r fan fan_min <<<"$(measure run_ms fanout1000)"
read -r wave wave_min <<<"$(measure run_ms wave16 --concurrency 16)"
read -r pipe pipe_min <<<"$(measure run_ms pipe50)"
per_agent=$(python3 -c "print(f'{($fan - $base) * 1000 / 1000:.1f}')")
per_agent_pipe=$(python3 -c "print(f'{($pipe - $base) * 1000 / 150:.1f}')")
eff=$(python3 -c "print(f'{100 / $wave:.3f}')")
rss=$(/usr/bin/time -f %M "$wfhost" run "$tmp/fanout1000.js" --backend mock --yes --quiet 2>&1 >/dev/null | tail -1)

{
  echo "# bench-runtime"
  echo
  echo "Machine: $(nproc) cores, $(uname -m), $(date -u +%Y-%m-%d); $("$wfhost" --version | head -1); mock backend; median (min) of $reps runs of the script's run time (\`timings.run_ms\`). Reproduce: \`just bench-runtime\`."
  echo
  echo "| case | run time | derived |"
  echo "|---|---|---|"
  echo "| empty script | $base ms | baseline |"
  echo "| 1000 instant agents in one \`parallel\` | $fan ms ($fan_min) | **$per_agent µs host overhead per agent** |"
  echo "| 16 × 100 ms agents, \`--concurrency 16\` | $wave ms ($wave_min) | efficiency vs the ideal 100 ms: **$eff** |"
  echo "| \`pipeline\`: 50 items × 3 agent stages | $pipe ms ($pipe_min) | $per_agent_pipe µs per agent |"
  echo
  echo "Peak RSS of the 1000-agent run: $((rss / 1024)) MiB."
} | tee "$out"
