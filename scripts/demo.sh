#!/usr/bin/env bash
# omtd's main job on a fresh machine: `omtd demo` — the operator and one sim agent per node
# of the runbook's cluster (deploy/examples/cluster.yaml) in one process, on a temporary
# SQLite store; convergence, then the runbook's classic failures repaired, with timings.
# Extra arguments go to `omtd demo` (e.g. --keep-running).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
exec cargo run --release --quiet -- demo "$@"
