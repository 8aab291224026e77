#!/usr/bin/env bash
# The whole test suite, from a clean clone on a fresh Debian machine: installs what it needs
# (etcd-server, protoc, debootstrap, QEMU), checks formatting and lints, then runs every
# test, including the store conformance suite against a real etcd and against SQLite, and
# last the real-host suite on two Debian VMs (tests/vm_hosts.rs, docs/testing.md), with its
# output shown so its step table and timings are in the log.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --test
# The VM image (when not cached) builds in the background while the rest compiles and runs;
# the VM test waits for it on the cache's lock. Its log is printed if it failed.
vm_log=$(mktemp)
scripts/vm/prebuild-image.sh >"$vm_log" 2>&1 &
vm_build=$!
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace -- --skip debian_vms_
if ! wait "$vm_build"; then
    echo "the background VM image build failed (the VM test retries it):" >&2
    cat "$vm_log" >&2
fi
cargo test --test vm_hosts -- --nocapture
