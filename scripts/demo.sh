#!/usr/bin/env bash
# The README's demo on a fresh machine: system packages, the venv, then `lvs-operator demo`, which boots the
# kernel guest and runs the product end to end inside it (embedded API server, controller, two director
# agents, real servers in network namespaces, kubectl apply of deploy/examples, traffic, failover).
# Exits non-zero if any step fails. Usage: bash scripts/demo.sh [--timeout SECONDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup-system.sh
py=$(bash scripts/venv.sh)
exec "$py" -m lvs_cli demo "$@"
