#!/usr/bin/env bash
# Creates .venv (once) and installs the project with its dev extras; prints the venv's python.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
if [ ! -x "$root/.venv/bin/python" ]; then
  "$py" -m venv "$root/.venv" >&2
fi
stamp="$root/.venv/.installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  "$root/.venv/bin/pip" install -q --upgrade pip >&2
  "$root/.venv/bin/pip" install -q -e "$root[dev]" >&2
  touch "$stamp"
fi
echo "$root/.venv/bin/python"
