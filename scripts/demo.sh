#!/usr/bin/env bash
# omtd's main job on a fresh machine, on the embedded store: apply the runbook's cluster
# (deploy/examples/cluster.yaml) to a SQLite file and list what the store now holds.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release --quiet
omtd=target/release/omtd
store_dir=$(mktemp -d)
export OMTD_STORE="sqlite://$store_dir/omtd.db"
echo "== store: $OMTD_STORE"
echo "== omtd apply -f deploy/examples/cluster.yaml"
$omtd apply -f deploy/examples/cluster.yaml
echo "== omtd apply again: nothing changes"
$omtd apply -f deploy/examples/cluster.yaml
echo "== omtd get all"
$omtd get all
echo "== omtd diff -f deploy/examples/cluster.yaml (exit 0: the store matches the file)"
$omtd diff -f deploy/examples/cluster.yaml && echo "no differences"
