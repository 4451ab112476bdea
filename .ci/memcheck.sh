#!/usr/bin/env bash
# Memory safety of the C core (registry, handler, trampoline, transparent
# mode): the C core tests under valgrind memcheck; any invalid access, use of
# uninitialised memory or leak of a definitely-lost block fails the run.
# valgrind emulates signal delivery: it ignores a handler's edits to
# uc_sigmask and restarts syscalls its own way, so the tests that check those
# kernel semantics (eintr_and_restart_calls, nested_handler) run natively
# only (tests/test_c_core.py). Usage: .ci/memcheck.sh [race-iterations]
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)/core_test
gcc -O1 -g -Wall -pthread -Icysrc -o "$out" tests/c/core_test.c \
    cysrc/cancel_core.c cysrc/transparent.c asm/x86_64/syscall_cp.S
valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    "$out" "${1:-2000}" blocked_read_cancelled pending_before_call_one_off \
    disable_then_enable job_generations read_race accept_race exit_race fork
