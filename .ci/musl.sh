#!/usr/bin/env bash
# The C core against musl libc (Debian's musl-tools: musl-gcc), x86_64:
# build tests/c/core_test.c with cysrc/*.c and the trampoline, run every
# test, including the shared-syscall-site case — musl returns every
# cancellable call (poll, read, the futex waits of its condition variables)
# through one syscall instruction in __syscall_cp_asm, as glibc >= 2.41
# does, and shared_site_libc must show that site shared and no futex
# failed with ECANCELED.
#
# This covers the C core only: the Python extension on musl (Alpine's
# CPython) is not built or tested here.
#
# AIOC_MUSL_ITERATIONS: race iterations per race (default 20000).
set -euo pipefail
cd "$(dirname "$0")/.."
ITER=${AIOC_MUSL_ITERATIONS:-20000}
ARCH=$(uname -m)
if [ "$ARCH" != x86_64 ]; then
    echo "musl.sh: x86_64 only (Debian's musl-gcc targets the host)"; exit 0
fi
if ! command -v musl-gcc >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends musl-tools >/dev/null
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
musl-gcc -O2 -g -Wall -Wextra -Werror -pthread -Icysrc \
    tests/c/core_test.c cysrc/*.c "asm/$ARCH/syscall_cp.S" -o "$WORK/core_test"
# Really musl: the program interpreter is musl's loader.
readelf -l "$WORK/core_test" | grep -E 'interpreter: /lib/ld-musl-' 
"$WORK/core_test" "$ITER" | tee "$WORK/out"
grep -q 'shared_site_libc .*same_pc=1 .*futex_ecanceled=0' "$WORK/out" \
    || { echo "musl: poll and the cond wait's futex did not share one site"; exit 1; }
echo "musl core tests passed"
