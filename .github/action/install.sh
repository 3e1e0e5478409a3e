#!/usr/bin/env bash
# The action's install step (action.yml): with `version: latest`, `wfhost` from PATH when it is
# there (a self-hosted runner, a previous step); otherwise the release archive of that version
# for this runner, checked against its sha256, and cached (actions/cache keeps the directory).
set -euo pipefail

if [[ "${WFHOST_VERSION:-latest}" == "latest" ]] && command -v wfhost >/dev/null; then
  wfhost --version
  exit 0
fi
dir="$HOME/.local/share/wfhost-action"
if [[ ! -x "$dir/wfhost" ]]; then
  mkdir -p "$dir"
  tag="${WFHOST_VERSION:-latest}"
  repo="${WFHOST_REPOSITORY:-${GITHUB_ACTION_REPOSITORY:-}}"
  if [[ -z "$repo" ]]; then
    echo "::error title=wfhost::cannot tell which repository to download wfhost from: set WFHOST_REPOSITORY" >&2
    exit 1
  fi
  if [[ "$tag" == "latest" ]]; then
    gh release download --repo "$repo" --pattern 'wfhost-*-x86_64-unknown-linux-gnu.tar.gz*' --dir "$dir"
  else
    gh release download "$tag" --repo "$repo" --pattern 'wfhost-*-x86_64-unknown-linux-gnu.tar.gz*' --dir "$dir"
  fi
  (cd "$dir" && sha256sum --check --strict ./*.sha256 && tar -xzf ./*.tar.gz --strip-components=1)
fi
echo "$dir" >> "$GITHUB_PATH"
"$dir/wfhost" --version
