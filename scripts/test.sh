#!/usr/bin/env bash
# The whole test suite on a fresh machine: system packages, venv, quality gates, unit, API integration
# and kernel-guest tests. Usage: bash scripts/test.sh [unit|integration|kernel|lint ...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(lint unit integration kernel)

step() { printf '\n=== %s ===\n' "$*"; }

step "system packages"
bash scripts/setup-system.sh
step "python venv"
py=$(bash scripts/venv.sh)
bin=$(dirname "$py")
export PATH="$bin:$PATH"

failed=()
run() { "$@" || failed+=("$stage"); }
for stage in "${stages[@]}"; do
  case "$stage" in
    lint)
      step "ruff"
      run "$bin/ruff" check .
      step "mypy --strict"
      run "$bin/mypy" -p lvs_api -p lvs_kube -p lvs_controller -p lvs_agent -p lvs_apiserver -p lvs_cli -p lvs_guest
      step "import-linter"
      run "$bin/lint-imports"
      ;;
    unit)
      step "unit tests"
      run "$py" -m pytest -q tests/unit
      ;;
    integration)
      step "API integration tests (embedded API server, real kubectl/kopf/kubernetes client)"
      run "$py" -m pytest -q tests/integration
      ;;
    kernel)
      step "kernel-guest tests (real IPVS in a Debian kernel guest)"
      run "$py" -m pytest -q tests/kernel
      ;;
    *) echo "unknown stage: $stage" >&2; exit 2 ;;
  esac
done
if [ ${#failed[@]} -gt 0 ]; then
  step "FAILED: ${failed[*]}"
  exit 1
fi
step "all passed: ${stages[*]}"
