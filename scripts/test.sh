#!/usr/bin/env bash
# The whole test suite, from a clean clone on a fresh Debian machine: installs what it needs
# (etcd-server, protoc), checks formatting and lints, then runs every test, including the
# store conformance suite against a real etcd and against SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --test
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
