#!/usr/bin/env bash
# aarch64 for real (about 1 minute, plus the cross toolchain's install):
# cross-compile the core's C tests (tests/c/core_test.c) with the aarch64
# trampoline (asm/aarch64/syscall_cp.S) and the C core (cysrc/*.c), and run
# them under qemu-user: blocked read cancelled, pending-before-call, one-off
# / DISABLE / ENABLE, job generations, EINTR-style and restarted calls, the
# nested-handler case, the no-lost-result races (read, accept) with their
# counts, requests racing thread exits, fork.
#
# The trampoline's contract is the same on both architectures, but what it
# depends on is not: the aarch64 kernel rewinds a restarted syscall's PC by 4
# onto `svc #0`, the handler reads and writes uc_mcontext.pc, and the flag
# load and `cbnz` must sit inside [aioc_cp_begin, aioc_cp_end). qemu-user
# emulates the signal frames and the restart rule of the aarch64 kernel.
#
# One qemu-user limit: a forked child of a multithreaded guest aborts when it
# creates a thread, so the fork test skips that one step there
# (AIOC_CORE_TEST_QEMU=1) and says so in its line.
#
# AIOC_AARCH64_ITERATIONS: race iterations per race (default 5000).
set -euo pipefail
cd "$(dirname "$0")/.."
ITER=${AIOC_AARCH64_ITERATIONS:-5000}
SYSROOT=/usr/aarch64-linux-gnu

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need=()
    command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
    [ -e "$SYSROOT/include/stdio.h" ] || need+=(libc6-dev-arm64-cross)
    command -v qemu-aarch64 >/dev/null || command -v qemu-aarch64-static >/dev/null \
        || need+=(qemu-user)
    if [ "${#need[@]}" -gt 0 ]; then
        echo "installing ${need[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${need[@]}" >/dev/null
    fi
fi
QEMU=$(command -v qemu-aarch64 || command -v qemu-aarch64-static)

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
aarch64-linux-gnu-gcc -O2 -g -Wall -Wextra -pthread -Icysrc \
    tests/c/core_test.c cysrc/*.c asm/aarch64/syscall_cp.S -o "$WORK/core_test"
aarch64-linux-gnu-readelf -h "$WORK/core_test" | grep -E 'Machine:.*AArch64'
aarch64-linux-gnu-objdump -d "$WORK/core_test" \
    | awk '/<aioc_syscall_cp_asm>:/,/<aioc_cp_cancel>:/' | grep -E 'ldr|cbnz|svc|<aioc_cp'
echo "running under $("$QEMU" --version | head -1)"
AIOC_CORE_TEST_QEMU=1 "$QEMU" -L "$SYSROOT" "$WORK/core_test" "$ITER"
