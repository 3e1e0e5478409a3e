#!/usr/bin/env bash
# `just bench`: wfhost against what a user would run instead (node over bench/node-shim.mjs),
# side by side on this machine. Writes bench/RESULTS.md (min / median over repetitions).
set -euo pipefail
wfhost=${1:?usage: bench.sh PATH/TO/wfhost}
here=$(cd "$(dirname "$0")" && pwd)
out=$here/RESULTS.md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export WFHOST_CACHE_DIR=$tmp/cache WFHOST_RUNS_DIR=$tmp/runs
runs=${RUNS:-10}
for tool in hyperfine node python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench needs $tool (apt-get install hyperfine time; node from the machine)" >&2; exit 1; }
done

script() { # name body — the same file runs under wfhost and under node + shim
  printf 'export const meta = { name: "%s", description: "benchmark" };\n%s\n' "$1" "$2" > "$tmp/$1.js"
}
script trivial 'log("hello"); return { ok: true };'
script fan1000 'const r = await parallel(Array.from({ length: 1000 }, (_, i) => () => agent(`a${i}`))); return r.length;'
script pipe50 'const r = await pipeline(Array.from({ length: 50 }, (_, i) => `item${i}`), (x) => agent(`s1 ${x}`), (p, x) => agent(`s2 ${x}`), (p, x) => agent(`s3 ${x}`)); return r.length;'
script wave16 'const r = await parallel(Array.from({ length: 16 }, (_, i) => () => agent(`w${i} [delay=100]`))); return r.length;'
script wave1000 'const r = await parallel(Array.from({ length: 1000 }, (_, i) => () => agent(`w${i} [delay=100]`))); return r.length;'
scale() { # n — n instant agents, in parallel() batches of at most 4000
  script "scale$1" "const n = $1, out = []; for (let b = 0; b < n; b += 4000) out.push(...await parallel(Array.from({ length: Math.min(4000, n - b) }, (_, i) => () => agent(\`s\${b + i}\`)))); return out.length;"
}

W="$wfhost run --backend mock --yes --quiet --no-journal"
N="node $here/node-shim.mjs"
"$wfhost" run "$tmp/trivial.js" --backend mock --yes --quiet >/dev/null # warm the compile cache

# hyperfine → "min median" in ms for one command
hf() { # name cmd [prepare]
  local json=$tmp/$1.json
  hyperfine --style none --warmup 2 --runs "$runs" ${3:+--prepare "$3"} --export-json "$json" "$2" >/dev/null
  python3 -c "import json; r=json.load(open('$json'))['results'][0]; print(f\"{min(r['times'])*1000:.1f} {r['median']*1000:.1f}\")"
}
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1 | awk '{printf "%.1f", $1/1024}'; }

read -r w_warm_min w_warm_med <<<"$(hf w_warm "$W $tmp/trivial.js")"
read -r w_cold_min w_cold_med <<<"$(hf w_cold "$W $tmp/trivial.js" "rm -rf $tmp/cache")"
"$wfhost" run "$tmp/trivial.js" --backend mock --yes --quiet >/dev/null
read -r n_triv_min n_triv_med <<<"$(hf n_triv "$N $tmp/trivial.js")"
read -r w_fan_min w_fan_med <<<"$(hf w_fan "$W $tmp/fan1000.js")"
read -r n_fan_min n_fan_med <<<"$(hf n_fan "$N $tmp/fan1000.js")"
read -r w_pipe_min w_pipe_med <<<"$(hf w_pipe "$W $tmp/pipe50.js")"
read -r n_pipe_min n_pipe_med <<<"$(hf n_pipe "$N $tmp/pipe50.js")"
read -r w_w16_min w_w16_med <<<"$(hf w_w16 "$W --concurrency 16 $tmp/wave16.js")"
runs_save=$runs; runs=3
read -r w_w1k_min w_w1k_med <<<"$(hf w_w1k "$W --concurrency 16 $tmp/wave1000.js")"
runs=$runs_save
# Resume of a fully cached 1000-agent run.
id=$("$wfhost" run "$tmp/fan1000.js" --backend mock --yes --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["run_id"])')
read -r w_res_min w_res_med <<<"$(hf w_res "$wfhost run --backend mock --yes --quiet --resume $id $tmp/fan1000.js")"

per() { python3 -c "print(f'{($1 - $2) * 1000 / $3:.1f}')"; } # (total - baseline) ms → µs per agent
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }

{
  echo "# Benchmarks"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m), $(date -u +%Y-%m-%d). $("$wfhost" --version | head -1) (release build), node $(node --version)."
  echo "Every number is a whole process (\`hyperfine\`, $runs runs, 2 warm-ups unless noted): min / median in ms. Agents are answered by"
  echo "wfhost's mock backend; node runs the same script over \`bench/node-shim.mjs\` (the primitives over in-process promises, no"
  echo "sandbox, no journal). wfhost runs use \`--no-journal\` except the resume row. Reproduce: \`just bench\` (see bench/README.md)."
  echo
  echo "Other results, each from its own recipe: [core](RESULTS-core.md), [runtime](RESULTS-runtime.md), [journal](RESULTS-journal.md),"
  echo "[performance targets](RESULTS-perf.md), [live runs](RESULTS-live.md), [cost: cache stagger and rate limits](RESULTS-cost.md),"
  echo "[distributed executor](RESULTS-distributed.md)."
  echo
  echo "## 1. Start-up: a trivial script"
  echo
  echo "| command | min | median | peak RSS |"
  echo "|---|---|---|---|"
  echo "| wfhost run, warm cache | $w_warm_min | **$w_warm_med** | $(rss $W "$tmp/trivial.js") MiB |"
  echo "| wfhost run, cold (no compile cache) | $w_cold_min | $w_cold_med | |"
  echo "| node + shim | $n_triv_min | **$n_triv_med** | $(rss $N "$tmp/trivial.js") MiB |"
  echo
  echo "Warm wfhost vs node: **$(ratio "$n_triv_med" "$w_warm_med")× faster** (median). Cold pays once for Cranelift compiling the guest."
  echo
  echo "## 2. Fan-out overhead (instant agents)"
  echo
  echo "| case | wfhost min / median | node + shim min / median | wfhost per agent | node per agent | peak RSS wfhost / node |"
  echo "|---|---|---|---|---|---|"
  echo "| 1000 agents in one \`parallel\` | $w_fan_min / $w_fan_med | $n_fan_min / $n_fan_med | $(per "$w_fan_med" "$w_warm_med" 1000) µs | $(per "$n_fan_med" "$n_triv_med" 1000) µs | $(rss $W "$tmp/fan1000.js") / $(rss $N "$tmp/fan1000.js") MiB |"
  echo "| \`pipeline\`: 50 items × 3 agent stages | $w_pipe_min / $w_pipe_med | $n_pipe_min / $n_pipe_med | $(per "$w_pipe_med" "$w_warm_med" 150) µs | $(per "$n_pipe_med" "$n_triv_med" 150) µs | $(rss $W "$tmp/pipe50.js") / $(rss $N "$tmp/pipe50.js") MiB |"
  echo
  echo "Per agent = (median − the same tool's trivial-script median) / agents: what each agent costs on top of start-up. wfhost's"
  echo "includes crossing the sandbox twice (spawn, wait-next), the bounded pool, schema-free validation and the report."
  echo
  echo "## 3. Scheduling efficiency (\`--concurrency 16\`)"
  echo
  echo "| case | min | median | ideal | median / ideal |"
  echo "|---|---|---|---|---|"
  echo "| 16 × 100 ms agents | $w_w16_min | $w_w16_med | 100 + start-up $w_warm_med | $(ratio "$w_w16_med" "$(python3 -c "print(100 + $w_warm_med)")") |"
  echo "| 1000 × 100 ms agents (3 runs) | $w_w1k_min | $w_w1k_med | 6250 + start-up $w_warm_med | $(ratio "$w_w1k_med" "$(python3 -c "print(6250 + $w_warm_med)")") |"
  echo
  echo "## 4. Resume: a fully cached 1000-agent run"
  echo
  echo "| case | min | median | peak RSS |"
  echo "|---|---|---|---|"
  echo "| \`wfhost run --resume\` (every answer from the journal) | $w_res_min | **$w_res_med** | $(rss "$wfhost" run --backend mock --yes --quiet --resume "$id" "$tmp/fan1000.js") MiB |"
  echo
  echo "## 5–6. Scaling: instant agents, 10 → 10 000 (\`--max-agents 10000\`, 3 runs each)"
  echo
  echo "| agents | median ms | µs per agent (over start-up) | peak RSS MiB | KiB per agent (over start-up) |"
  echo "|---|---|---|---|---|"
  base_rss=$(/usr/bin/time -f %M $W "$tmp/trivial.js" 2>&1 >/dev/null | tail -1)
  runs_save=$runs; runs=3
  for n in 10 100 1000 10000; do
    scale "$n"
    read -r _ med <<<"$(hf "scale$n" "$W --max-agents 10000 $tmp/scale$n.js")"
    r=$(/usr/bin/time -f %M $W --max-agents 10000 "$tmp/scale$n.js" 2>&1 >/dev/null | tail -1)
    echo "| $n | $med | $(per "$med" "$w_warm_med" "$n") | $(python3 -c "print(f'{$r/1024:.1f}')") | $(python3 -c "print(f'{($r - $base_rss) / $n:.2f}')") |"
  done
  runs=$runs_save
} | tee "$out"
