#!/usr/bin/env bash
# Creates .venv (once) and installs the project with its dev extras; prints the venv's python.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
if [ ! -x "$root/.venv/bin/python" ]; then
  "$py" -m venv "$root/.venv" >&2
fi
stamp="$root/.venv/.installed"
# pip retries each request itself; a whole install that still fails (registry hiccup) is tried again.
pip_install() {
  local attempt
  for attempt in 1 2 3; do
    "$root/.venv/bin/pip" install -q --retries 5 --timeout 60 "$@" >&2 && return 0
    [ "$attempt" -lt 3 ] || break
    echo "venv: pip install $* failed (attempt $attempt of 3), retrying in $((attempt * 10)) s" >&2
    sleep $((attempt * 10))
  done
  return 1
}
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  pip_install --upgrade pip
  pip_install -e "$root[dev]"
  touch "$stamp"
fi
echo "$root/.venv/bin/python"
