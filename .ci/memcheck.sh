#!/usr/bin/env bash
# Memory safety of aiocancel's C and Cython code (about 3 minutes):
#
#   1. the core's C tests (tests/c/core_test.c) under valgrind memcheck;
#   2. the same under ASan + UBSan (native signals, so every test runs);
#   3. the Python core / fuzz / lifecycle / fork / signal / stress tests
#      against extensions built with ASan + UBSan (LD_PRELOAD of libasan
#      into an ordinary CPython);
#   4. the Python core and fuzz tests under valgrind memcheck
#      (PYTHONMALLOC=malloc), failing on any report with a frame in
#      aiocancel's code (.ci/valgrind_ours.py: CPython's and glibc's own
#      reports are counted, not judged).
#
# Valgrind ignores a signal handler's change to uc_sigmask, which the core's
# deferral relies on: the C test "nested_handler" (a cancel arriving inside
# another signal handler) cannot pass there and is left to step 2. The core
# detects valgrind's immediate re-delivery and falls back to the pending
# flag, so nothing else is affected.
#
# PYTHON: interpreter with aiocancel's test dependencies installed (default:
# .venv/bin/python, as README's Quick start makes it, else python3).
# AIOC_MEMCHECK_ITERATIONS: race iterations of the C tests (default 1000
# under valgrind, 20x that under ASan).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo "$ROOT/.venv/bin/python" || command -v python3)}
ITER=${AIOC_MEMCHECK_ITERATIONS:-1000}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

step() { printf '\n=== memcheck: %s\n' "$*"; }

if ! command -v valgrind >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi
ARCH=$(uname -m)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
CORE_SRC=(tests/c/core_test.c cysrc/*.c "asm/$ARCH/syscall_cp.S")
# exit_race (threads exiting while requests hammer them) livelocks under
# valgrind's serialised threads; ASan (step 2) runs it.
ALL_BUT_NESTED=(blocked_read_cancelled redirect_settles_quietly pending_before_call_one_off disable_then_enable
                job_generations eintr_and_restart_calls read_race accept_race fork)

step "C core tests under valgrind memcheck ($ITER race iterations)"
gcc -O1 -g -pthread -Icysrc "${CORE_SRC[@]}" -o "$WORK/core_test"
valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite "$WORK/core_test" "$ITER" "${ALL_BUT_NESTED[@]}"

step "C core tests under ASan + UBSan ($((ITER * 20)) race iterations)"
SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
gcc -O1 -g $SAN -pthread -Icysrc "${CORE_SRC[@]}" -o "$WORK/core_test_asan"
ASAN_OPTIONS=detect_leaks=1 "$WORK/core_test_asan" "$((ITER * 20))"

step "Python tests against ASan + UBSan builds of the extensions ($("$PYTHON" --version))"
# A copy of the tracked sources without any in-place build, so that the
# tests (conftest.py's import rule) import the ASan build from $WORK/site.
mkdir -p "$WORK/src"
git ls-files -z | xargs -0 cp --parents -t "$WORK/src"
CFLAGS="$SAN" LDFLAGS="-fsanitize=address,undefined" \
    "$PYTHON" -m pip install -q --no-deps --target "$WORK/site" "$WORK/src"
LIBASAN=$(gcc -print-file-name=libasan.so)
PY_SUBSET=(tests/test_core_state.py tests/test_core_syscalls.py tests/test_fuzz.py
           tests/test_lifecycle.py tests/test_fork.py tests/test_signals_coexist.py
           tests/test_stress.py)
present() { local f; for f in "$@"; do [ -e "$WORK/src/${f%%::*}" ] && echo "$f"; done; }
mapfile -t PY_SUBSET < <(present "${PY_SUBSET[@]}")
(cd "$WORK/src" &&
 LD_PRELOAD=$LIBASAN PYTHONPATH="$WORK/site" \
 ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:allocator_may_return_null=1 \
 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
 "$PYTHON" -m pytest -q --capture=sys -p no:cacheprovider "${PY_SUBSET[@]}" &&
 LD_PRELOAD=$LIBASAN PYTHONPATH="$WORK/site" \
 ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:allocator_may_return_null=1 \
 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
 "$PYTHON" -m aiocancel stress --iterations 20000)

step "Python core and fuzz tests under valgrind memcheck (the ordinary build)"
# Here, not in the copy: ASan's runtime and valgrind exclude each other.
mapfile -t VG_SUBSET < <(present tests/test_core_state.py tests/test_core_syscalls.py tests/test_fuzz.py)
PYTHONMALLOC=malloc AIOCANCEL_FUZZ_EXAMPLES=10 \
    valgrind -q --num-callers=40 --log-file="$WORK/valgrind.log" \
    "$PYTHON" -m pytest -q -p no:cacheprovider "${VG_SUBSET[@]}"
"$PYTHON" .ci/valgrind_ours.py "$WORK/valgrind.log"

step "memcheck passed"
