#!/usr/bin/env bash
# Installs what building and testing omtd needs on a fresh Debian machine, and nothing when
# it is already there. Needs root (or sudo).
#   protoc + well-known protos: the etcd client's build generates code from etcd's protos
#   etcd-server:                the tests run the conformance suite against a real etcd
set -euo pipefail

missing=()
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/timestamp.proto ] || missing+=(libprotobuf-dev)
if [ "${1:-}" = "--test" ]; then
    command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
    # tests/probes_zookeeper.rs: a real ZooKeeper (run with java, no systemd)
    [ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
    # tests/agent_systemd_signals.rs: a private dbus-daemon carrying a fake systemd
    command -v dbus-daemon >/dev/null 2>&1 || missing+=(dbus)
    # tests/deploy_files.rs: promtool runs the alert rules' unit tests
    command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
    # tests/lvm_loop.rs: real lvm2, mke2fs, blkid/wipefs and losetup on loop devices
    for t in pvcreate:lvm2 mke2fs:e2fsprogs wipefs:util-linux losetup:mount; do
        PATH="$PATH:/sbin:/usr/sbin" command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t#*:}")
    done
fi

if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
