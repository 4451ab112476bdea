#!/usr/bin/env bash
# aarch64 for real: the C core tests (tests/c/core_test.c: blocked calls
# cancelled, pending-before-call, one-off, job generations, EINTR/restart,
# the nested-handler case, read/accept/exit races with counts, fork) built
# with asm/aarch64/syscall_cp.S and run under qemu-user. Needs
# gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user (.ci/run
# installs them). Usage: .ci/aarch64.sh [race-iterations]
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)/core_test
aarch64-linux-gnu-gcc -O2 -Wall -pthread -Icysrc -o "$out" tests/c/core_test.c \
    cysrc/cancel_core.c cysrc/transparent.c asm/aarch64/syscall_cp.S
# qemu-user aborts when a forked child of a threaded guest starts a thread:
# the harness skips that one step under qemu and says so.
AIOC_CORE_TEST_QEMU=1 qemu-aarch64 -L /usr/aarch64-linux-gnu "$out" "${1:-20000}"
