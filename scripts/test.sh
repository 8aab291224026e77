#!/usr/bin/env bash
# The whole test suite, from a clean clone on a fresh Debian machine: installs what it needs
# (etcd-server, protoc, debootstrap, QEMU), checks formatting and lints, then runs every
# test, including the store conformance suite against a real etcd and against SQLite, and
# last the real-host suite on two Debian VMs (tests/vm_hosts.rs, docs/testing.md), with its
# output shown so its step table and timings are in the log.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --test
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace -- --skip debian_vms_
cargo test --test vm_hosts -- --nocapture
