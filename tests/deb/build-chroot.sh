#!/bin/sh
# Build the clean Debian 12 root that tests/deb.rs installs ferroha's package into: a minbase
# bookworm from debootstrap plus what the test's checks and the shipped example need, packed
# as one tarball that each test run unpacks afresh (the cache itself is never modified).
#
#   tests/deb/build-chroot.sh CACHE_DIR      (as root; the test uses target/chroot-cache)
#
# The result is CACHE_DIR/bookworm-<key>.tar.zst, where <key> hashes this script (and so the
# package list below): a second run reuses it. The last line printed is its path.
#
# Host packages: debootstrap zstd. Environment: MIRROR overrides the Debian mirror (default:
# the machine's own apt sources, as tests/vm/build-guest.sh does).
set -eu

[ $# -eq 1 ] || { echo "usage: $0 CACHE_DIR" >&2; exit 2; }
mkdir -p "$1"
cache=$(cd "$1" && pwd)
script=$(readlink -f "$0")

# What the test needs inside, beyond minbase (which already has libc6 and libgcc-s1, all that
# ferroha depends on):
# - heartbeat: ferroha must install beside Debian's Heartbeat (it pulls resource-agents, whose
#   ra-api-1.dtd and metadata.rng the agents' meta-data is validated against);
# - libxml2-utils (xmllint), man-db (man), systemd (systemd-analyze, systemctl);
# - drbd-utils (ferroha recommends it) and mariadb-server-core: the shipped example's drbd
#   and mysql resources validate with the real drbdadm and server binary. The server core
#   rather than mariadb-server, whose maintainer scripts initialise and start a server.
PACKAGES="heartbeat libxml2-utils man-db systemd drbd-utils mariadb-server-core"

key=$(sha256sum "$script" | cut -c1-16)
out=$cache/bookworm-$key.tar.zst
if [ -s "$out" ]; then
    echo "build-chroot: cached, nothing to do" >&2
    echo "$out"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || { echo "build-chroot: needs root (debootstrap)" >&2; exit 1; }
for tool in debootstrap zstd unshare; do
    command -v "$tool" >/dev/null || {
        echo "build-chroot: $tool missing: apt-get install debootstrap zstd util-linux" >&2
        exit 1
    }
done

# Every mount below (the work tmpfs, the chroot's /proc and /dev) lives in a private mount
# namespace, and every process in a private pid namespace: both vanish when this script
# ends, however it ends, so a maintainer script's daemon cannot outlive the build.
if [ -z "${BUILD_CHROOT_INSIDE:-}" ]; then
    exec unshare --mount --propagation private --pid --fork --kill-child \
        env BUILD_CHROOT_INSIDE=1 "$script" "$cache"
fi

start=$(date +%s)
step() { echo "build-chroot: $* (+$(($(date +%s) - start)) s)" >&2; }
sources() {
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -v '^[[:space:]]*#' | grep -oE "https?://[^[:space:]]*/$1/?" | head -n1
}
if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(sources debian)
fi
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY=$(sources debian-security)

work=$(mktemp -d "$cache/build.XXXXXX")
trap 'umount -R -l "$work" 2>/dev/null; rm -rf "$work"' EXIT
# The tree is built in memory (about 500 MiB) and freed with the namespace.
mount -t tmpfs -o mode=0755 tmpfs "$work"
root=$work/root
mkdir "$root"

step "debootstrap minbase from $MIRROR"
debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
    tail -n 20 "$work/debootstrap.log" >&2
    exit 1
}

step "$PACKAGES"
{
    echo "deb $MIRROR bookworm main"
    echo "deb $MIRROR bookworm-updates main"
    [ -n "$SECURITY" ] && echo "deb $SECURITY bookworm-security main"
} >"$root/etc/apt/sources.list"
# Maintainer scripts start no service while this file exits 101 (invoke-rc.d and
# deb-systemd-invoke ask it first). It stays in the tree: tests/deb.rs relies on it too.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C DEBIAN_FRONTEND=noninteractive "$@"; }
in_root apt-get update -qq >"$work/apt.log" 2>&1 &&
    in_root apt-get install -y -qq --no-install-recommends $PACKAGES >>"$work/apt.log" 2>&1 || {
    tail -n 30 "$work/apt.log" >&2
    exit 1
}
in_root apt-get clean
umount -R "$root/dev"
umount "$root/proc"
# Package lists are large and dated; the test installs only from local files.
rm -rf "$root"/var/lib/apt/lists/* "$root/etc/resolv.conf"
: >"$root/etc/resolv.conf"

step "tarball"
tar -C "$root" --numeric-owner --xattrs -cf - . | zstd -q -T0 -3 -o "$out.tmp"
mv "$out.tmp" "$out"
step "built $out ($(du -h "$out" | cut -f1))"
echo "$out"
