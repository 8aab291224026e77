#!/usr/bin/env bash
# Builds the Debian bookworm image the VM test rig (tests/vm_hosts.rs) boots:
#   OUT/root.img   raw ext4 root file system (sparse, 4 GiB)
#   OUT/vmlinuz    the image's kernel, booted directly by QEMU
#   OUT/initrd     a small initrd (virtio and ext4 only)
#   OUT/id_ed25519 the ssh key root logs in with (its .pub is in the image)
#
# usage: scripts/vm/build-image.sh OUT
#
# The test keys its cache on a hash of this file, so any change here rebuilds the image.
# Everything is built in OUT.tmp.PID and moved into place at the end: an interrupted build
# leaves no half image behind. Needs root (debootstrap, chroot), debootstrap and e2fsprogs.
set -euo pipefail

out=${1:?usage: build-image.sh OUT}
mirror=${OMTD_VM_MIRROR:-http://deb.debian.org/debian}
work="$out.tmp.$$"
rootfs="$work/rootfs"

# Real Debian packages for everything Debian packages. Mesos, Chronos and Galaxy are not
# packaged: they get stand-in units below. busybox-static is the content of the stand-in
# cAdvisor image (no registry is reachable from here to pull the real one).
packages=(
    systemd-sysv udev dbus kmod procps iproute2 openssh-server
    linux-image-amd64 initramfs-tools
    lvm2 e2fsprogs nfs-kernel-server nfs-common
    apache2 prometheus-node-exporter docker.io busybox-static
    # The registry, monitor and manager front doors of the runbook, as Debian packages
    # them: the registry binary (run in a container of its own, see below), Prometheus 2.42,
    # ZooKeeper 3.8; curl for the tests' requests through Apache.
    docker-registry prometheus zookeeperd curl ca-certificates
    # Debian's kernel enables AppArmor, and dockerd refuses to run a container when it
    # cannot load its profile (a standard Debian install has the package; minbase does not)
    apparmor
)

cleanup() {
    for m in proc sys dev; do umount "$rootfs/$m" 2>/dev/null || true; done
    # Never rm -rf through a bind mount of the host's /dev.
    if grep -q " $rootfs/" /proc/mounts; then
        echo "vm image: $rootfs still has mounts; not removing $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

rm -rf "$work"
mkdir -p "$work"
t0=$(date +%s)
echo "vm image: debootstrap bookworm (${#packages[@]} packages and their dependencies)" >&2
debootstrap --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" \
    bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -30 "$work/debootstrap.log" >&2
    echo "debootstrap failed (log above)" >&2
    exit 1
}
echo "vm image: debootstrap took $(($(date +%s) - t0)) s" >&2

# --- root login by key only ---
ssh-keygen -q -t ed25519 -N '' -C omtd-vm -f "$work/id_ed25519"
install -d -m 0700 "$rootfs/root/.ssh"
install -m 0600 "$work/id_ed25519.pub" "$rootfs/root/.ssh/authorized_keys"
cat >"$rootfs/etc/ssh/sshd_config.d/omtd-vm.conf" <<'EOF'
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
EOF

# --- file systems: the root, and the host folder holding the omtd binary (virtfs) ---
cat >"$rootfs/etc/fstab" <<'EOF'
/dev/vda / ext4 rw,errors=remount-ro 0 1
omtd /mnt/omtd 9p trans=virtio,version=9p2000.L,ro,nofail 0 0
EOF
mkdir -p "$rootfs/mnt/omtd"

# --- network: static, from the kernel command line ---
# NIC 1 (MAC 52:54:00:00:00:02) is QEMU's user network: 10.0.2.15, the host at 10.0.2.2.
# NIC 2 (MAC 52:54:00:00:01:xx) joins the VMs: its address is `omtd.peer=ADDR/LEN`.
# Static addresses cost nothing at boot, where DHCP under emulation costs seconds.
cat >"$rootfs/usr/local/sbin/omtd-vm-net" <<'EOF'
#!/bin/sh
# The NICs appear when udev has loaded virtio_net, which may be after this starts: wait
# for each one (by MAC) rather than configure whatever is there.
set -e
peer=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^omtd\.peer=//p')
nic() {
    for dev in /sys/class/net/*; do
        case "$(cat "$dev/address" 2>/dev/null)" in $1) echo "${dev##*/}"; return 0 ;; esac
    done
    return 1
}
wait_nic() {
    i=0
    until nic "$1"; do
        i=$((i + 1))
        [ $i -gt 600 ] && { echo "omtd-vm-net: no NIC with MAC $1" >&2; return 1; }
        sleep 0.1
    done
}
ip link set lo up
slirp=$(wait_nic 52:54:00:00:00:02)
ip link set "$slirp" up
ip addr add 10.0.2.15/24 dev "$slirp"
ip route add default via 10.0.2.2
if [ -n "$peer" ]; then
    link=$(wait_nic '52:54:00:00:01:*')
    ip link set "$link" up
    ip addr add "$peer" dev "$link"
fi
EOF
chmod 0755 "$rootfs/usr/local/sbin/omtd-vm-net"
cat >"$rootfs/etc/systemd/system/omtd-vm-net.service" <<'EOF'
[Unit]
Description=omtd VM test rig: static addresses from the kernel command line
DefaultDependencies=no
After=systemd-udevd.service systemd-udev-settle.service
Before=network.target network-online.target ssh.service
Wants=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/omtd-vm-net

[Install]
WantedBy=multi-user.target network-online.target
EOF
echo "nameserver 10.0.2.3" >"$rootfs/etc/resolv.conf"

# --- stand-ins for what Debian does not package ---
# Same unit names as the real packages', installed where packages put units
# (/lib/systemd/system), so `systemctl mask` works on them as on the real ones. Each just
# runs until stopped: no probe talks to them (the manager, which probes would ask, is a
# record without a VM in the rig).
for unit in mesos-master mesos-slave chronos; do
    cat >"$rootfs/lib/systemd/system/$unit.service" <<EOF
[Unit]
Description=$unit (stand-in for the omtd VM test rig: Debian has no package)
After=network.target

[Service]
ExecStart=/bin/sleep infinity

[Install]
WantedBy=multi-user.target
EOF
done

# Galaxy and Grafana (neither packaged) stand in as busybox's httpd on their ports, so a
# request through Apache reaches something that answers. Galaxy's unit runs `run.sh` in its
# folder, as the real one does (omtd may write its own `galaxy.service` over this one).
for name in galaxy grafana; do
    install -d "$rootfs/usr/local/share/omtd-vm/$name-www"
    echo "$name stand-in" >"$rootfs/usr/local/share/omtd-vm/$name-www/index.html"
done
install -d "$rootfs/usr/local/share/omtd-vm/galaxy-www/galaxy"
echo "galaxy stand-in" >"$rootfs/usr/local/share/omtd-vm/galaxy-www/galaxy/index.html"
cat >"$rootfs/usr/local/sbin/omtd-galaxy-run" <<'EOF'
#!/bin/sh
exec /bin/busybox httpd -f -p 8080 -h /usr/local/share/omtd-vm/galaxy-www
EOF
chmod 0755 "$rootfs/usr/local/sbin/omtd-galaxy-run"
for dir in executor editor; do
    install -d "$rootfs/srv/$dir"
    ln -s /usr/local/sbin/omtd-galaxy-run "$rootfs/srv/$dir/run.sh"
done
cat >"$rootfs/lib/systemd/system/galaxy.service" <<'EOF'
[Unit]
Description=galaxy (stand-in for the omtd VM test rig: Debian has no package)
After=network.target

[Service]
ExecStart=/srv/executor/run.sh

[Install]
WantedBy=multi-user.target
EOF
cat >"$rootfs/lib/systemd/system/grafana-server.service" <<'EOF'
[Unit]
Description=grafana-server (stand-in for the omtd VM test rig: Debian has no package)
After=network.target

[Service]
ExecStart=/bin/busybox httpd -f -p 127.0.0.1:3000 -h /usr/local/share/omtd-vm/grafana-www

[Install]
WantedBy=multi-user.target
EOF

# The registry runs as the container `registry` (DOMAIN.md: `registry:2`), and no image
# registry is reachable from here: the container's file system is Debian's registry binary
# with the libraries it links and the upstream image's config (storage in /var/lib/registry,
# :5000),
# imported by the test under the image name omtd plans. Debian's own unit would take :5000
# from the container: it stays disabled.
reg="$rootfs/usr/local/share/omtd-vm/registry-standin"
install -d "$reg/bin" "$reg/etc/docker/registry" "$reg/var/lib/registry"
cp "$rootfs/usr/bin/docker-registry" "$reg/bin/registry"
cat >"$reg/etc/docker/registry/config.yml" <<'EOF'
version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
EOF
for lib in $(chroot "$rootfs" ldd /usr/bin/docker-registry | grep -o '/[^ ]*'); do
    install -D "$rootfs$lib" "$reg$lib"
done

# Galaxy's files (job_conf.xml, with the Chronos credentials) belong to its user, which
# Galaxy's installation creates.
chroot "$rootfs" useradd --system --home-dir /srv/executor --no-create-home \
    --shell /usr/sbin/nologin galaxy

# The stand-in cAdvisor image's file system: busybox's httpd on 8080.
install -d "$rootfs/usr/local/share/omtd-vm/cadvisor-standin/bin"
cp "$rootfs/bin/busybox" "$rootfs/usr/local/share/omtd-vm/cadvisor-standin/bin/busybox"
install -d "$rootfs/usr/local/share/omtd-vm/cadvisor-standin/www"
echo "cadvisor stand-in" >"$rootfs/usr/local/share/omtd-vm/cadvisor-standin/www/index.html"

# --- services: what the agent must bring up starts stopped; the rig's own ones enabled ---
chroot "$rootfs" systemctl disable apache2 nfs-server prometheus-node-exporter docker \
    containerd prometheus zookeeper docker-registry >/dev/null 2>&1 || true
chroot "$rootfs" systemctl enable omtd-vm-net.service >/dev/null
# Nothing here waits on a network manager, on time, or on a login prompt nobody uses
# (the serial console goes to a file).
chroot "$rootfs" systemctl mask systemd-timesyncd.service apt-daily.timer \
    apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer serial-getty@ttyS0.service \
    modprobe@drm.service modprobe@efi_pstore.service modprobe@fuse.service \
    >/dev/null 2>&1 || true

# --- a small initrd: the drivers for the root disk, the NICs and the share ---
# (loaded early, the NICs are there when the network script runs instead of ~25 s later,
# when udev's coldplug gets to them under emulation)
mount -t proc proc "$rootfs/proc"
mount -t sysfs sys "$rootfs/sys"
mount --bind /dev "$rootfs/dev"
cat >"$rootfs/etc/initramfs-tools/conf.d/omtd-vm" <<'EOF'
MODULES=list
COMPRESS=gzip
EOF
printf '%s\n' virtio_pci virtio_blk virtio_net ext4 9p 9pnet_virtio >"$rootfs/etc/initramfs-tools/modules"
chroot "$rootfs" update-initramfs -u -k all >/dev/null 2>&1
for m in proc sys dev; do umount "$rootfs/$m"; done

cp "$(ls "$rootfs"/boot/vmlinuz-* | sort -V | tail -1)" "$work/vmlinuz"
cp "$(ls "$rootfs"/boot/initrd.img-* | sort -V | tail -1)" "$work/initrd"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

truncate -s 4G "$work/root.img"
mkfs.ext4 -q -F -L omtdroot -d "$rootfs" "$work/root.img"
rm -rf "$rootfs"
rm -f "$work/debootstrap.log"

rm -rf "$out"
mv "$work" "$out"
trap - EXIT
echo "vm image: built in $(($(date +%s) - t0)) s: $out" >&2
