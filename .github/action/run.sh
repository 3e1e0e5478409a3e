#!/usr/bin/env bash
# The action's run step (action.yml): the inputs (INPUT_*) as wfhost's flags. wfhost itself
# writes the job summary, the annotations and the step's outputs ($GITHUB_OUTPUT) under
# GITHUB_ACTIONS=true. Runs as is outside GitHub too (the tests do: GITHUB_* at temp files).
set -euo pipefail

flags=(run "$INPUT_SCRIPT" --json)
# Running a model-written script is an explicit decision: only `approve: true` passes --yes.
if [[ "${INPUT_APPROVE:-false}" == "true" ]]; then
  flags+=(--yes)
fi
add() { if [[ -n "${2:-}" ]]; then flags+=("$1" "$2"); fi; }
add --args "${INPUT_ARGS:-}"
add --backend "${INPUT_BACKEND:-}"
add --model "${INPUT_MODEL:-}"
add --max-cost "${INPUT_MAX_COST:-}"
add --budget-tokens "${INPUT_BUDGET_TOKENS:-}"
add --max-agents "${INPUT_MAX_AGENTS:-}"
add --concurrency "${INPUT_CONCURRENCY:-}"
add --tools "${INPUT_TOOLS:-}"
add --timeout "${INPUT_TIMEOUT:-}"
add --junit "${INPUT_JUNIT:-}"

report="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/wfhost-report.json"
set +e
wfhost "${flags[@]}" > "$report"
code=$?
set -e
if [[ "$code" -ne 0 && ! -s "$report" && -n "${GITHUB_OUTPUT:-}" ]]; then
  # Refused before a run existed (no approval, a bad flag): still say how it ended.
  echo "exit-code=$code" >> "$GITHUB_OUTPUT"
fi
if [[ "$code" -eq 77 && "${INPUT_APPROVE:-false}" != "true" ]]; then
  echo "::error title=wfhost::the workflow script was not approved: review it (wfhost audit $INPUT_SCRIPT), then set \`approve: true\`"
fi
exit "$code"
