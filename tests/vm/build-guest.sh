#!/bin/sh
# Build the guest for ferroha's real-DRBD test tier (tests/util/vm.rs): Debian's kernel, which
# ships drbd.ko 8.4.11, and a minbase Debian root with drbd-utils, packed as the initramfs the
# guest runs from (no disk image, nothing mounted on the host). See ../shared/DRBD-VM.md.
#
#   tests/vm/build-guest.sh CACHE_DIR [8.4|9]      (as root; `make test-vm` uses target/vm)
#
# With 9, the guest loads LINBIT's DRBD 9 module instead of the kernel's 8.4 one: built here
# from the vendored source (vendor/drbd/) against the kernel's headers, into the guest's
# /lib/modules/<release>/updates/ (the kernel's own drbd.ko is left out of that guest).
#
# The result goes to CACHE_DIR/guest-<key>/{vmlinuz,rootfs.cpio.zst}, where <key> hashes this
# script, the kernel package version, the DRBD version and its source: a second run with the
# same inputs reuses it. The last line printed is that directory. The kernel .deb is only
# unpacked (dpkg -x), never installed.
#
# Host packages: qemu-system-x86 (to run it), debootstrap cpio zstd kmod (to build it); for 9
# also linux-headers-<release> and coccinelle (scripts/install-deps --vm).
# Environment: MIRROR overrides the Debian mirror (default: the machine's own apt sources);
# KERNEL_PKG pins the kernel package (default: what linux-image-amd64 depends on).
set -eu

[ $# -eq 1 ] || [ $# -eq 2 ] || { echo "usage: $0 CACHE_DIR [8.4|9]" >&2; exit 2; }
DRBD=${2:-8.4}
case $DRBD in 8.4 | 9) ;; *) echo "build-guest: DRBD version $DRBD: only 8.4 or 9" >&2; exit 2 ;; esac
mkdir -p "$1"
cache=$(cd "$1" && pwd)
start=$(date +%s)
script=$(readlink -f "$0")
# The DRBD 9 source (vendor/drbd/README.md says where it comes from and how to replace it).
DRBD9_SOURCE=drbd-9.2.18
drbd9_tarball=$(dirname "$script")/../../vendor/drbd/$DRBD9_SOURCE.tar.xz

# The modules the guest loads (their dependencies are added below), in load order.
MODULES="virtio_pci virtio_blk virtio_net virtio_console 9pnet_virtio 9p ext4 drbd"
# MariaDB's server and client cores only (no mariadb-server: its maintainer scripts would try to
# start a server inside debootstrap's chroot); the mysql account is added below.
PACKAGES="drbd-utils,iproute2,kmod,procps,e2fsprogs,util-linux,iputils-ping,mariadb-server-core,mariadb-client-core"

if [ -z "${KERNEL_PKG:-}" ]; then
    KERNEL_PKG=$(apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1)
fi
[ -n "$KERNEL_PKG" ] || {
    echo "build-guest: cannot find the kernel package (run apt-get update, or set KERNEL_PKG)" >&2
    exit 1
}
kver=${KERNEL_PKG#linux-image-}
pkgver=$(apt-cache show --no-all-versions "$KERNEL_PKG" 2>/dev/null | sed -n 's/^Version: //p' | head -n1)
key=$( (cat "$script"; echo "$KERNEL_PKG $pkgver DRBD $DRBD"
    [ "$DRBD" = 9 ] && sha256sum <"$drbd9_tarball") | sha256sum | cut -c1-16)
out=$cache/guest-$key

if [ -s "$out/vmlinuz" ] && [ -s "$out/rootfs.cpio.zst" ]; then
    echo "build-guest: cached ($KERNEL_PKG $pkgver), nothing to do ($(($(date +%s) - start)) s)" >&2
    echo "$out"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || { echo "build-guest: needs root (debootstrap)" >&2; exit 1; }
for tool in debootstrap cpio zstd depmod modprobe dpkg apt-get; do
    command -v "$tool" >/dev/null || {
        echo "build-guest: $tool missing: apt-get install qemu-system-x86 debootstrap cpio zstd kmod" >&2
        exit 1
    }
done
if [ "$DRBD" = 9 ]; then
    kheaders=/usr/src/linux-headers-$kver
    [ -d "$kheaders" ] && command -v spatch >/dev/null && command -v make >/dev/null || {
        echo "build-guest: DRBD 9 needs $kheaders, spatch and make: apt-get install linux-headers-$kver coccinelle make" >&2
        exit 1
    }
    [ -s "$drbd9_tarball" ] || { echo "build-guest: $drbd9_tarball missing" >&2; exit 1; }
fi

if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -v '^[[:space:]]*#' | grep -oE 'https?://[^[:space:]]*/debian/?' | grep -v security | head -n1)
fi
MIRROR=${MIRROR:-http://deb.debian.org/debian}

mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
step() { echo "build-guest: $* (+$(($(date +%s) - start)) s)" >&2; }

step "kernel $KERNEL_PKG $pkgver"
(cd "$work" && apt-get download -q "$KERNEL_PKG" >/dev/null 2>&1) || {
    # apt's sandbox user may not write into the work dir: fetch as root then.
    (cd "$work" && apt-get download -q -o APT::Sandbox::User=root "$KERNEL_PKG" >/dev/null)
}
dpkg -x "$work"/linux-image-*.deb "$work/kernel"
kdir=$work/kernel
depmod -b "$kdir" "$kver"

step "debootstrap minbase from $MIRROR"
root=$work/root
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
    tail -n 20 "$work/debootstrap.log" >&2
    exit 1
}

if [ "$DRBD" = 9 ]; then
    step "DRBD 9 module ($DRBD9_SOURCE) for $kver"
    tar -xJf "$drbd9_tarball" -C "$work"
    # SPAAS=false: the compat patch is made here by spatch, never fetched from LINBIT's service.
    make -C "$work/$DRBD9_SOURCE" -j"$(nproc)" module KDIR="$kheaders" SPAAS=false \
        >"$work/drbd9-build.log" 2>&1 || {
        tail -n 30 "$work/drbd9-build.log" >&2
        exit 1
    }
    drbd9_build=$work/$DRBD9_SOURCE/drbd/build-$kver
    # The kernel's own drbd.ko out of the module tree, so that nothing can load 8.4 by mistake.
    find "$kdir/lib/modules/$kver/kernel" -name 'drbd.ko*' -delete
    mkdir -p "$kdir/lib/modules/$kver/updates/drbd"
    cp "$drbd9_build/drbd.ko" "$drbd9_build/drbd_transport_tcp.ko" \
        "$drbd9_build/drbd-kernel-compat/handshake/handshake.ko" "$kdir/lib/modules/$kver/updates/drbd/"
    depmod -b "$kdir" "$kver"
    # DRBD 9 loads its transport on the first connect; loaded at boot, a missing one shows then.
    MODULES="$MODULES drbd_transport_tcp"
fi

step "modules"
mkdir -p "$root/lib/modules/$kver"
for mod in $MODULES; do
    modprobe -d "$kdir" -S "$kver" --show-depends "$mod" | awk '$1 == "insmod" { print $2 }'
done | sort -u | while read -r file; do
    rel=${file#"$kdir"/}
    mkdir -p "$root/$(dirname "$rel")"
    cp "$file" "$root/$rel"
done
for f in modules.order modules.builtin modules.builtin.modinfo; do
    cp "$kdir/lib/modules/$kver/$f" "$root/lib/modules/$kver/" 2>/dev/null || true
done
depmod -b "$root" "$kver"

step "init and trimming"
# DRBD's usage counter would try to reach LINBIT over the network: off.
cat >"$root/etc/drbd.d/global_common.conf" <<'EOF'
global { usage-count no; }
common { }
EOF
# The account MariaDB runs as (mariadb-server's postinst would have made it); tests that
# prepare a datadir on the host give its files these ids (tests/stack_vm.rs, MYSQL_IDS).
grep -q '^mysql:' "$root/etc/group" || echo 'mysql:x:120:' >>"$root/etc/group"
grep -q '^mysql:' "$root/etc/passwd" ||
    echo 'mysql:x:120:120:MariaDB:/nonexistent:/usr/sbin/nologin' >>"$root/etc/passwd"
cat >"$root/init" <<EOF
#!/bin/sh
# ferroha test guest: PID 1. Sets the machine up, then serves the control channel.
MODULES="$MODULES"
EOF
cat >>"$root/init" <<'EOF'
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /run/lock /run/drbd /var/lib/drbd /share /mnt
exec >/dev/console 2>&1
for m in $MODULES; do modprobe "$m" || echo "init: modprobe $m failed"; done
for word in $(cat /proc/cmdline); do
    case $word in
        node=*) node=${word#node=} ;;
        ipaddr=*) ipaddr=${word#ipaddr=} ;;
    esac
done
echo "${node:-guest}" >/proc/sys/kernel/hostname
ip link set lo up
ip link set eth0 up
[ -n "${ipaddr:-}" ] && ip addr add "$ipaddr" dev eth0
mount -t 9p -o trans=virtio,version=9p2000.L,ro share /share || echo "init: no 9p share"
# Resource files come from the share (the host writes them before boot).
for res in /share/*.res; do [ -e "$res" ] && ln -sf "$res" /etc/drbd.d/; done

# The control channel: a virtio-serial port named "ctl". One request per line:
#   NONCE SECONDS BASE64(script)
# runs the script with sh (stdin /dev/null, killed after SECONDS) and answers one line:
#   NONCE EXITCODE BASE64(stdout) BASE64(stderr)
port=
while [ -z "$port" ]; do
    for f in /sys/class/virtio-ports/*/name; do
        [ "$(cat "$f" 2>/dev/null)" = ctl ] && port=/dev/${f#/sys/class/virtio-ports/} && port=${port%/name}
    done
    [ -n "$port" ] || sleep 0.1
done
# Every virtio-serial port by name, as udev would link it: /dev/virtio-ports/NAME.
mkdir -p /dev/virtio-ports
for f in /sys/class/virtio-ports/*/name; do
    [ -e "$f" ] || continue
    d=${f%/name}
    ln -sf "/dev/${d##*/}" "/dev/virtio-ports/$(cat "$f")"
done
echo "init: ${node:-guest} ready, control channel $port"
serve() {
    exec 3<>"$port"
    while :; do
        # read fails at EOF, i.e. while no host end is connected: wait and read again.
        while IFS=' ' read -r nonce secs b64 <&3; do
            printf '%s' "$b64" | base64 -d >/tmp/.ctl-cmd 2>/dev/null
            timeout -s KILL "$secs" sh /tmp/.ctl-cmd </dev/null >/tmp/.ctl-out 2>/tmp/.ctl-err
            rc=$?
            printf '%s %s %s %s\n' "$nonce" "$rc" "$(base64 -w0 </tmp/.ctl-out)" "$(base64 -w0 </tmp/.ctl-err)" >&3
        done
        sleep 0.2
    done
}
# PID 1 reaps orphans, as any init does: daemons started detached (a server an agent
# launched, say) are re-parented here, and their zombies would otherwise stay until the
# control channel happened to run a command (an agent's stop waits for its server's pid to
# be gone). So the channel is served in the background and PID 1 waits, which reaps every
# child that exits.
serve &
while :; do
    wait
    sleep 1
done
EOF
chmod 0755 "$root/init"
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/locale/* "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

step "initramfs"
mkdir -p "$out.tmp"
cp "$kdir/boot/vmlinuz-$kver" "$out.tmp/vmlinuz"
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet | zstd -q -9 -T0 -o "$out.tmp/rootfs.cpio.zst")
rm -rf "$out"
mv "$out.tmp" "$out"
step "built $out ($(du -sh "$out" | cut -f1)) in $(($(date +%s) - start)) s"
echo "$out"
