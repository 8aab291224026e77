#!/usr/bin/env bash
# Builds the VM test rig's image into its cache when it is missing, exactly where and as
# test-support/src/vm/image.rs would (the same cache dir, recipe hash and lock file), so that
# scripts/test.sh can start the build (about 4 minutes, mostly downloading and unpacking
# packages) while cargo compiles and runs the other tests. The VM test then finds the
# image, or waits on the lock for this build to finish. A failure here only costs time:
# the test tries again and fails with a clear message if it cannot build either.
set -euo pipefail
cd "$(dirname "$0")/../.."

root=${OMTD_VM_CACHE:-/var/cache/omtd-vm}
hash=$(sha256sum scripts/vm/build-image.sh | cut -c1-16)
image="$root/bookworm-$hash"
mkdir -p "$root"
complete() {
    for f in root.img vmlinuz initrd id_ed25519; do [ -f "$image/$f" ] || return 1; done
}
if complete; then
    echo "vm image: cached at $image" >&2
    exit 0
fi
# flock(1) and the test's flock(2) take the same lock.
exec 9>"$root/.lock"
flock 9
if complete; then
    echo "vm image: built meanwhile at $image" >&2
    exit 0
fi
bash scripts/vm/build-image.sh "$image"
for old in "$root"/bookworm-*; do
    case "$old" in "$image" | *.tmp.*) ;; *) [ -d "$old" ] && rm -rf "$old" ;; esac
done
echo "vm image: built at $image" >&2
