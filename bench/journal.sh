#!/usr/bin/env bash
# `just bench-journal`: resuming a fully cached 1000-agent run, and the journal's cost per
# agent. Writes bench/RESULTS-journal.md.
set -euo pipefail
wfhost=${1:?usage: journal.sh PATH/TO/wfhost}
here=$(cd "$(dirname "$0")" && pwd)
out=$here/RESULTS-journal.md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export WFHOST_CACHE_DIR=$tmp/cache WFHOST_RUNS_DIR=$tmp/runs
reps=${REPS:-10}
cat > "$tmp/fan.js" <<'JS'
export const meta = { name: "fan1000", description: "journal benchmark" };
const r = await parallel(Array.from({ length: 1000 }, (_, i) => () => agent(`agent ${i}: summarise part ${i}`)));
return r.length;
JS
field() { python3 -c "import json,sys; r=json.load(sys.stdin); assert r['outcome']=='completed', r; print($1)"; }
stats() { sort -g | awk '{a[NR]=$1} END {printf "%.2f %.2f", a[int((NR+1)/2)], a[1]}'; }
run() { "$wfhost" run "$tmp/fan.js" --backend mock --yes --json "$@"; }

id=$(run | field "r['run_id']")
# A fully cached resume: every answer from the journal.
read -r resume resume_min <<<"$(for _ in $(seq "$reps"); do run --resume "$id" | field "r['timings']['run_ms']"; done | stats)"
cached=$(run --resume "$id" | field "r['usage']['agents_cached']")
# The same 1000 agents live, with and without the journal: the difference is the journal.
read -r live live_min <<<"$(for _ in $(seq "$reps"); do run | field "r['timings']['run_ms']"; done | stats)"
read -r bare bare_min <<<"$(for _ in $(seq "$reps"); do run --no-journal | field "r['timings']['run_ms']"; done | stats)"
per=$(python3 -c "print(f'{($live - $bare) * 1000 / 1000:.1f}')")
total=$(hyperfine --style none --warmup 2 --runs "$reps" --export-json "$tmp/h.json" "$wfhost run $tmp/fan.js --backend mock --yes --quiet --resume $id" >/dev/null && python3 -c "import json; r=json.load(open('$tmp/h.json'))['results'][0]; print(f\"{r['median']*1000:.1f} ms (min {r['min']*1000:.1f})\")")
lines=$(wc -l < "$WFHOST_RUNS_DIR/$id/journal.jsonl")

{
  echo "# bench-journal"
  echo
  echo "Machine: $(nproc) cores, $(uname -m), $(date -u +%Y-%m-%d); $("$wfhost" --version | head -1); mock backend; median (min) of $reps runs. Reproduce: \`just bench-journal\`."
  echo
  echo "| case | time |"
  echo "|---|---|"
  echo "| resume of a fully cached 1000-agent run: script run time ($cached answers from the journal) | **$resume ms** ($resume_min) |"
  echo "| the same resume, whole process (start-up, journal load, run, report) | $total |"
  echo "| 1000 live agents with the journal | $live ms ($live_min) |"
  echo "| 1000 live agents with \`--no-journal\` | $bare ms ($bare_min) |"
  echo "| journal cost per agent (append before delivery, transcript, batched fdatasync) | **$per µs** |"
  echo
  echo "The journal of that run has $lines lines after $((reps * 2 + 2)) attempts."
} | tee "$out"
