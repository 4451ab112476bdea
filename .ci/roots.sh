#!/usr/bin/env bash
# Debian roots for CI, one implementation for every root (sid for CPython
# 3.14/3.15, trixie for glibc 2.41, bookworm arm64 for aarch64 for real).
#
#   bash .ci/roots.sh SUITE ARCH [PKG...]
#
# builds /tmp/aioc-roots/SUITE-ARCH with debootstrap (minbase plus PKG...),
# or reuses it when a previous build completed with at least these packages
# (marker file .aioc-root-complete), then makes it usable: proc and sysfs
# mounted, /dev, /dev/pts and /dev/shm bound, the host's CA bundle and
# resolv.conf copied (pip inside the root needs both), /etc/hosts written.
# Prints the root's path as its last line. Run commands inside with .ci/inroot.sh ROOT CMD...
#
# Packages come with --include rather than an apt-get update inside the root:
# sid's Release file carries a Valid-Until that a mirror snapshot may have
# passed, and debootstrap itself never checks Valid-Until (only the
# signature, with gpgv), so a one-shot debootstrap works where apt-get would
# refuse. A foreign ARCH (arm64 on x86_64) runs its second stage through
# qemu-user-static via binfmt_misc, enabled here.
#
# Costs measured on the CI machine (2 vCPUs): sid amd64 ~1 min, trixie amd64
# ~2 min, bookworm arm64 ~5 min. A flock per root lets two scripts (the
# interpreter steps and the wheel step) ask for the same root at once.
#
# Environment: AIOC_ROOTS (default /tmp/aioc-roots), AIOC_MIRROR (default
# http://deb.debian.org/debian).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 SUITE ARCH [PKG...]" >&2; exit 2; }
SUITE=$1 ARCH=$2
shift 2
PKGS=("$@")
BASE=${AIOC_ROOTS:-/tmp/aioc-roots}
MIRROR=${AIOC_MIRROR:-http://deb.debian.org/debian}
R=$BASE/$SUITE-$ARCH
MARK=$R/.aioc-root-complete
mkdir -p "$BASE"

log() { printf '[roots %s-%s] %s\n' "$SUITE" "$ARCH" "$*" >&2; }

unmount_root() {   # deepest first; a leftover mount must never be rm -rf'ed through
    local m
    for m in dev/shm dev/pts dev sys proc; do
        if mountpoint -q "$R/$m" 2>/dev/null; then umount "$R/$m" || umount -l "$R/$m"; fi
    done
}

mount_root() {
    mountpoint -q "$R/proc" || mount -t proc proc "$R/proc"
    mountpoint -q "$R/sys" || mount -t sysfs sysfs "$R/sys"
    mountpoint -q "$R/dev" || mount --bind /dev "$R/dev"
    mountpoint -q "$R/dev/pts" || mount --bind /dev/pts "$R/dev/pts"
    mkdir -p "$R/dev/shm"
    if [ -d /dev/shm ] && ! mountpoint -q "$R/dev/shm"; then mount --bind /dev/shm "$R/dev/shm"; fi
    mkdir -p "$R/etc/ssl/certs"
    cp /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/ca-certificates.crt"
    cp -L /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null || true
    # minbase writes no /etc/hosts: "localhost" must resolve (tests connect to it).
    [ -s "$R/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
        > "$R/etc/hosts"
}

enable_binfmt() {   # only for a foreign architecture
    local host
    host=$(dpkg --print-architecture)
    [ "$ARCH" = "$host" ] && return 0
    local qarch=$ARCH
    [ "$ARCH" = arm64 ] && qarch=aarch64
    if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    if ! grep -qx enabled "/proc/sys/fs/binfmt_misc/qemu-$qarch" 2>/dev/null; then
        update-binfmts --enable "qemu-$qarch"
    fi
    grep -qx enabled "/proc/sys/fs/binfmt_misc/qemu-$qarch"
}

exec 9>"$BASE/.lock-$SUITE-$ARCH"
flock 9
enable_binfmt
# The marker lists the packages the root was built with. A request for a
# subset reuses the root (other scripts ask for what they need: the wheel
# step needs only python3 and its venv); anything new rebuilds it with the
# union, so no caller ever loses a package another one asked for.
have=$( [ -f "$MARK" ] && tr ' ' '\n' < "$MARK" | sed '/^$/d' | sort -u || true)
missing=$(printf '%s\n' "${PKGS[@]}" | sed '/^$/d' | sort -u | comm -23 - <(printf '%s\n' "$have"))
if [ -f "$MARK" ] && [ -z "$missing" ]; then
    log "reusing $R"
else
    mapfile -t PKGS < <(printf '%s\n' "${PKGS[@]}" $have | sed '/^$/d' | sort -u)
    if [ -e "$R" ]; then
        log "incomplete or different root at $R: rebuilding"
        unmount_root
        rm -rf --one-file-system "$R"
    fi
    include=$(IFS=,; echo "${PKGS[*]}")
    log "debootstrap --variant=minbase --arch=$ARCH $SUITE (${#PKGS[@]} extra packages)"
    t0=$SECONDS
    if ! debootstrap --variant=minbase --arch="$ARCH" ${include:+--include="$include"} \
            "$SUITE" "$R" "$MIRROR" > "$BASE/$SUITE-$ARCH.log" 2>&1; then
        tail -30 "$BASE/$SUITE-$ARCH.log" >&2
        cat "$R/debootstrap/debootstrap.log" 2>/dev/null | tail -30 >&2 || true
        log "debootstrap failed"
        exit 1
    fi
    printf '%s ' "${PKGS[@]}" > "$MARK"
    log "built in $((SECONDS - t0)) s"
fi
mount_root
echo "$R"
