#!/usr/bin/env bash
# The whole test suite on a fresh machine: system packages, venv, quality gates, unit, API integration
# and kernel-guest tests. Usage: bash scripts/test.sh [unit|integration|kernel|lint ...]
#
# Hangs fail fast and say where: every test has a 120 s timeout (pytest-timeout, pyproject.toml), the
# kernel guest is killed when it stops reporting (lvs_guest.pytest_bridge), and each stage has a
# wall-clock cap (LVS_STAGE_CAP_<STAGE> seconds) for anything else, such as an interpreter that never
# exits: at the cap the stage gets SIGINT, so pytest prints where it was, then SIGKILL 60 s later.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(lint unit integration kernel)

step() { printf '\n=== %s ===\n' "$*"; }
suite_start=$SECONDS

step "system packages"
bash scripts/setup-system.sh
step "python venv"
py=$(bash scripts/venv.sh)
bin=$(dirname "$py")
export PATH="$bin:$PATH"

# Normal durations on the 2-core machine: lint ~1-2 min, unit <1 min, integration ~1-3 min, kernel
# ~5-8 min. The caps are several times that and add up to well under CI's limit.
declare -A cap=([lint]=600 [unit]=600 [integration]=900 [kernel]=1800)
failed=()
run() {
  local limit_var="LVS_STAGE_CAP_${stage^^}" code=0
  local limit=${!limit_var:-${cap[$stage]}}
  # --foreground: stay in the terminal's process group, so Ctrl-C still reaches the tests; the cap's
  # SIGINT goes to pytest alone, which stops its servers and guests itself.
  timeout --foreground --signal=INT --kill-after=60 "$limit" "$@" || code=$?
  if [ "$code" -eq 124 ] || [ "$code" -eq 137 ]; then
    echo "test.sh: stage '$stage' hit its ${limit} s cap in: $*" >&2
  fi
  [ "$code" -eq 0 ] || failed+=("$stage")
}
for stage in "${stages[@]}"; do
  stage_start=$SECONDS
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
  echo "test.sh: stage '$stage' took $((SECONDS - stage_start)) s"
done
echo "test.sh: total $((SECONDS - suite_start)) s"
if [ ${#failed[@]} -gt 0 ]; then
  mapfile -t failed < <(printf '%s\n' "${failed[@]}" | uniq)
  step "FAILED: ${failed[*]}"
  exit 1
fi
step "all passed: ${stages[*]}"
