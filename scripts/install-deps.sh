#!/usr/bin/env bash
# Installs what building and testing omtd needs on a fresh Debian machine, and nothing when
# it is already there. Needs root (or sudo).
#   protoc + well-known protos: the etcd client's build generates code from etcd's protos
#   etcd-server:                the tests run the conformance suite against a real etcd
#   debootstrap, qemu-system-x86 (bookworm-backports), openssh-client, binutils:
#                               tests/vm_hosts.rs builds a Debian image and boots two VMs
set -euo pipefail

missing=()
qemu=()
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/timestamp.proto ] || missing+=(libprotobuf-dev)
if [ "${1:-}" = "--test" ]; then
    command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
    # tests/restore_epoch.rs: etcdctl snapshot save/restore, as an operator restores
    command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
    # tests/probes_zookeeper.rs: a real ZooKeeper (run with java, no systemd)
    [ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
    # tests/agent_systemd_signals.rs: a private dbus-daemon carrying a fake systemd
    command -v dbus-daemon >/dev/null 2>&1 || missing+=(dbus)
    # tests/deploy_files.rs: promtool runs the alert rules' unit tests
    command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
    # tests/agent_validate.rs: apache2 -t checks a staged site; a real apache2 serves on
    PATH="$PATH:/sbin:/usr/sbin" command -v apache2 >/dev/null 2>&1 || missing+=(apache2)
    # tests/agent_htpasswd.rs: Apache's own htpasswd -vb checks the lines the agent hashed
    command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
    # tests/lvm_loop.rs: real lvm2, mke2fs, blkid/wipefs and losetup on loop devices
    for t in pvcreate:lvm2 mke2fs:e2fsprogs wipefs:util-linux losetup:mount; do
        PATH="$PATH:/sbin:/usr/sbin" command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t#*:}")
    done
    # tests/vm_hosts.rs: the image is built with debootstrap, booted with QEMU, driven over
    # ssh; the omtd binary goes in stripped of debug info (strip, from binutils)
    for t in debootstrap:debootstrap ssh:openssh-client ssh-keygen:openssh-client \
        strip:binutils; do
        PATH="$PATH:/sbin:/usr/sbin" command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t#*:}")
    done
    qemu=()
    command -v qemu-system-x86_64 >/dev/null 2>&1 || qemu+=(qemu-system-x86)
    command -v qemu-img >/dev/null 2>&1 || qemu+=(qemu-utils)
fi

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive

if [ ${#missing[@]} -gt 0 ]; then
    # One package per line and unique (ssh and ssh-keygen are both openssh-client).
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# QEMU comes from bookworm-backports: bookworm's own qemu-system-x86 conflicts with the
# machine's qemu-utils (a backport), so both come from there. The backports source goes in
# a private sources directory used for this one install: no other apt run sees it.
if [ "${#qemu[@]}" -gt 0 ]; then
    echo "installing: ${qemu[*]} (bookworm-backports)" >&2
    sources=$(mktemp -d)
    trap 'rm -rf "$sources"' EXIT
    cat >"$sources/omtd-vm.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    $sudo apt-get -qq -o Dir::Etc::SourceParts="$sources" update
    $sudo apt-get -qq -o Dir::Etc::SourceParts="$sources" install -y --no-install-recommends \
        -t bookworm-backports "${qemu[@]}"
fi
