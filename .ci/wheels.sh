#!/usr/bin/env bash
# manylinux wheels that install without a compiler, built and proven here:
#
#   bash .ci/wheels.sh
#
# writes into wheelhouse/:
#   - an x86_64 wheel for every CPython >= 3.11 found (python3, then
#     ~/.pyenv/versions/3.1*), and
#   - an aarch64 wheel for the CPython of the arm64 Debian root
#     ($AIOC_ARM64_ROOT, default /tmp/aioc-roots/bookworm-arm64, built by
#     .ci/roots.sh with python3, python3-venv and python3-dev).
#
# Why zig: a wheel built with the system gcc links against this machine's
# glibc (pthread symbols at GLIBC_2.34: manylinux_2_34 only). `zig cc -target
# ARCH-linux-gnu.2.17` compiles against glibc 2.17's symbol versions, so the
# wheels are manylinux_2_17 (manylinux2014): every glibc distribution since
# 2014 installs them. The same compiler cross-compiles aarch64 against the
# root's Python headers and sysconfig (_PYTHON_HOST_PLATFORM and
# _PYTHON_SYSCONFIGDATA_NAME make setuptools build for the target).
#
# Each wheel is tagged manylinux_2_17 and `auditwheel show` must agree (its
# verdict is printed). Then each is installed in a fresh venv with no
# compiler reachable (CC=/bin/false, a PATH without gcc/cc/clang/ld; the
# arm64 root has none), and the demo and the core tests (tests/test_core_*.py)
# run there from a copy of tests/ outside the source tree; aarch64 runs inside
# the arm64 root (qemu-user). The core tests' signal test needs the test-only
# _testhelper module, which wheels do not ship: it is compiled here for the
# target and dropped into the test venv only.
#
# AIOC_WHEEL_ARCHS: the architectures to build (default "x86_64 aarch64").
#
# Tools (pip, into $AIOC_WHEEL_TOOLS, default /tmp/aiocancel-wheel-tools):
# ziglang, auditwheel, wheel, setuptools>=77, Cython.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
OUT=$REPO/wheelhouse
ROOT_ARM64=${AIOC_ARM64_ROOT:-/tmp/aioc-roots/bookworm-arm64}
TOOLS=${AIOC_WHEEL_TOOLS:-/tmp/aiocancel-wheel-tools}
GLIBC=2.17
ARCHS=" ${AIOC_WHEEL_ARCHS:-x86_64 aarch64} "
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

step() { printf '\n=== %s\n' "$*"; }
WORK=$(mktemp -d)
cleanup() { rm -rf "$WORK"; [ -z "${ROOT_WORK:-}" ] || rm -rf "$ROOT_WORK"; }
trap cleanup EXIT

step "tools: ziglang, auditwheel, wheel, setuptools, Cython"
[ -x "$TOOLS/bin/python" ] || python3 -m venv "$TOOLS"
"$TOOLS/bin/pip" install -q ziglang 'auditwheel>=6' 'wheel>=0.40' 'setuptools>=77' 'Cython>=3.0.10'
ZIG=$("$TOOLS/bin/python" -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
echo "zig $("$ZIG" version)"

# cc_for ARCH: a compiler command (one path: setuptools splits CC on spaces)
# that targets ARCH-linux-gnu with glibc $GLIBC's symbols.
cc_for() {
    local cc=$WORK/cc-$1
    [ -x "$cc" ] || printf '#!/bin/sh\nexec "%s" cc -target %s-linux-gnu.%s "$@"\n' \
        "$ZIG" "$1" "$GLIBC" > "$cc"
    chmod +x "$cc"
    echo "$cc"
}

# The source as committed plus uncommitted edits (not ignored files: no
# in-place builds, no venvs).
SRC=$WORK/src
mkdir -p "$SRC"
git ls-files -z --cached --others --exclude-standard \
    | xargs -0 -I{} sh -c '[ -e "{}" ] && printf "%s\0" "{}"' \
    | tar -c --null -T - -f - | tar -x -C "$SRC" -f -
mkdir -p "$OUT" "$WORK/raw"
for arch in x86_64 aarch64; do
    [[ $ARCHS != *" $arch "* ]] || rm -f "$OUT"/*"_$arch.whl"
done

# retag RAW_WHEEL ARCH: tag it manylinux_2_17 + manylinux2014, into $OUT;
# then auditwheel must find it consistent with that tag. Prints the new path.
retag() {
    local raw=$1 arch=$2 tagged verdict
    tagged=$("$TOOLS/bin/wheel" tags --remove \
        --platform-tag "manylinux_2_17_${arch}.manylinux2014_${arch}" "$raw")
    mv "$(dirname "$raw")/$tagged" "$OUT/"
    verdict=$("$TOOLS/bin/auditwheel" show "$OUT/$tagged" 2>&1)
    echo "$verdict" >&2
    echo "$verdict" | tr '\n' ' ' | grep -q "consistent with the following platform tag: \"manylinux_2_17_${arch}\"" \
        || { echo "auditwheel does not accept $tagged as manylinux_2_17_${arch}" >&2; exit 1; }
    # Release contents: no test helper, every module stripped.
    local unpacked=$WORK/unpacked-$arch so
    rm -rf "$unpacked" && mkdir -p "$unpacked"
    (cd "$unpacked" && unzip -q "$OUT/$tagged")
    [ -f "$unpacked/aiocancel/py.typed" ] && [ -f "$unpacked"/aiocancel-*.dist-info/licenses/LICENSE ] \
        || { echo "$tagged lacks py.typed or LICENSE" >&2; exit 1; }
    if find "$unpacked" -name '_testhelper*' | grep -q .; then
        echo "$tagged ships the test helper" >&2; exit 1
    fi
    for so in "$unpacked"/aiocancel/*.so; do
        if readelf -S "$so" | grep -qE '\.(symtab|debug_[a-z]+)'; then
            echo "$so is not stripped" >&2; exit 1
        fi
    done
    echo "$(ls "$unpacked"/aiocancel/*.so | wc -l) extension modules, stripped," \
         "$(du -k "$OUT/$tagged" | cut -f1) KiB; no test helper" >&2
    echo "$OUT/$tagged"
}

# testhelper ARCH PYINCLUDE EXT_SUFFIX DEST_DIR: the test-only module, for
# the test venv only.
testhelper() {
    "$TOOLS/bin/cython" -3 "$SRC/cysrc/aiocancel/_testhelper.pyx" -o "$WORK/_testhelper-$1.c"
    "$(cc_for "$1")" -shared -fPIC -O2 -g0 -s -I"$2" "$WORK/_testhelper-$1.c" -o "$4/_testhelper$3"
}

# A PATH with everything in /usr/bin and /bin except compilers, assemblers
# and linkers.
NOCC=$WORK/nocc-bin
sh .ci/nocc-path.sh "$NOCC"

# test_wheel PYTHON WHEEL: fresh venv, no compiler, demo + core tests.
test_wheel() {
    local py=$1 whl=$2 venv=$WORK/venv-$RANDOM site inc suffix
    step "$("$py" --version) x86_64: install $(basename "$whl") with no compiler, demo, core tests"
    "$py" -m venv "$venv"
    site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
    inc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    suffix=$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
    (
        export PATH="$venv/bin:$NOCC" CC=/bin/false CXX=/bin/false LDSHARED=/bin/false
        for c in gcc cc clang ld; do
            if command -v "$c"; then echo "a compiler is reachable: $c" >&2; exit 1; fi
        done
        pip install -q --only-binary=:all: "$whl" 'pytest>=8'
        [ -z "$(find "$site/aiocancel" -name '_testhelper*')" ]
        cd "$WORK" && python -m aiocancel demo
        python -m aiocancel --version
    )
    testhelper x86_64 "$inc" "$suffix" "$site/aiocancel"
    rm -rf "$WORK/t" && mkdir -p "$WORK/t" && cp -r "$SRC/tests" "$SRC/pyproject.toml" "$WORK/t/"
    (cd "$WORK/t" && PATH="$venv/bin:$NOCC" CC=/bin/false \
        "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_core_*.py)
}

# ---- old headers: the syscall numbers newer than manylinux2014's ------------
# A header overlay hides SYS_preadv2, SYS_pwritev2, SYS_epoll_pwait2 and
# F_OFD_SETLKW (CentOS 7's kernel 3.10 headers lack them); the C core and the
# module that uses them must still compile (cysrc/aioc_sysnums.h).
step "old kernel headers: the C core and _syscalls compile without the new syscall numbers"
OLDHDR=$WORK/oldhdr
mkdir -p "$OLDHDR/sys"
printf '#include_next <sys/syscall.h>\n#undef SYS_preadv2\n#undef SYS_pwritev2\n#undef SYS_epoll_pwait2\n' \
    > "$OLDHDR/sys/syscall.h"
printf '#include_next <fcntl.h>\n#undef F_OFD_SETLKW\n' > "$OLDHDR/fcntl.h"
"$TOOLS/bin/cython" -3 -I "$SRC/cysrc" "$SRC/cysrc/aiocancel/_syscalls.pyx" -o "$WORK/_syscalls-old.c"
for c in "$SRC/cysrc/transparent.c" "$WORK/_syscalls-old.c"; do
    "$(cc_for x86_64)" -I"$OLDHDR" -I"$SRC/cysrc" \
        -I"$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" \
        -c "$c" -o "$WORK/old.o"
done
echo "ok"

# ---- x86_64: every CPython >= 3.11 here -------------------------------------
declare -A SEEN=()
for py in "$(command -v python3)" "$HOME"/.pyenv/versions/3.1[1-9]*/bin/python; do
    [[ $ARCHS == *" x86_64 "* ]] && [ -x "$py" ] || continue
    v=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || continue
    [ -z "${SEEN[$v]:-}" ] || continue
    SEEN[$v]=1
    step "build: CPython $v x86_64 (zig cc, glibc $GLIBC)"
    rm -f "$WORK"/raw/*.whl
    CC=$(cc_for x86_64) LDSHARED="$(cc_for x86_64) -shared" \
        "$py" -m pip wheel -q --no-deps -w "$WORK/raw" "$SRC"
    whl=$(retag "$WORK"/raw/*.whl x86_64)
    test_wheel "$py" "$whl"
done

# ---- aarch64: cross-compiled for the arm64 root's CPython, tested inside it --
if [[ $ARCHS != *" aarch64 "* ]]; then step "wheelhouse"; ls -l "$OUT"; exit 0; fi
R=$ROOT_ARM64
[ -f "$REPO/.ci/inroot.sh" ] || { echo "the aarch64 step runs in the root through .ci/inroot.sh (.ci/roots.sh's companion)" >&2; exit 1; }
[ -x "$R/usr/bin/python3" ] || { echo "no arm64 root at $R (AIOC_ARM64_ROOT; .ci/roots.sh builds it)" >&2; exit 1; }
RV=$(sed -n 's/^#define PY_VERSION[[:space:]]*"\([0-9]*\.[0-9]*\).*/\1/p' "$R"/usr/include/python3*/patchlevel.h 2>/dev/null | head -1)
[ -n "$RV" ] || { echo "$R has no Python headers: build the root with python3-dev" >&2; exit 1; }
SYSCONFIG=$(ls "$R"/usr/lib/python"$RV"/_sysconfigdata__linux_aarch64-linux-gnu.py)
XPY=""
for py in "$(command -v python3)" "$HOME"/.pyenv/versions/"$RV".*/bin/python; do
    [ -x "$py" ] && [ "$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "$RV" ] \
        && { XPY=$py; break; }
done
[ -n "$XPY" ] || { echo "no host CPython $RV to cross-build for the arm64 root" >&2; exit 1; }

step "build: CPython $RV aarch64 (zig cc cross, glibc $GLIBC, headers from $R)"
# Headers: the root's, with its aarch64 pyconfig.h in place of Debian's
# multiarch switch; sysconfig: the root's (EXT_SUFFIX, SOABI); a build venv
# on the host interpreter (no build isolation: it would drop PYTHONPATH).
XINC=$WORK/aarch64-include
cp -r "$R/usr/include/python$RV" "$XINC"
cp "$R/usr/include/aarch64-linux-gnu/python$RV/pyconfig.h" "$XINC/pyconfig.h"
mkdir -p "$WORK/xsysconfig"
cp "$SYSCONFIG" "$WORK/xsysconfig/"
"$XPY" -m venv "$WORK/xbuild"
"$WORK/xbuild/bin/pip" install -q 'setuptools>=77' 'Cython>=3.0.10' wheel
rm -f "$WORK"/raw/*.whl
XCC=$(cc_for aarch64)
# CFLAGS/LDFLAGS replace the root's Debian-specific ones (its gcc flags).
CC=$XCC LDSHARED="$XCC -shared" CFLAGS="-I$XINC -O2" LDFLAGS="" CPPFLAGS="" \
    _PYTHON_HOST_PLATFORM=linux-aarch64 \
    _PYTHON_SYSCONFIGDATA_NAME=_sysconfigdata__linux_aarch64-linux-gnu \
    PYTHONPATH="$WORK/xsysconfig" \
    "$WORK/xbuild/bin/pip" wheel -q --no-deps --no-build-isolation -w "$WORK/raw" "$SRC"
whl=$(retag "$WORK"/raw/*.whl aarch64)

step "CPython $RV aarch64 in $R: install $(basename "$whl") with no compiler, demo, core tests"
ROOT_WORK=$R/tmp/aioc-wheeltest
rm -rf "$ROOT_WORK" && mkdir -p "$ROOT_WORK/th"
cp "$whl" .ci/nocc-path.sh "$ROOT_WORK/"
cp -r "$SRC/tests" "$SRC/pyproject.toml" "$ROOT_WORK/"
SUFFIX=$(sed -n "s/.*'EXT_SUFFIX': '\([^']*\)'.*/\1/p" "$SYSCONFIG" | head -1)
testhelper aarch64 "$XINC" "$SUFFIX" "$ROOT_WORK/th"
INROOT=(bash "$REPO/.ci/inroot.sh" "$R" --cd /tmp/aioc-wheeltest)
# The root may have gcc (other CI steps build inside it): PATH leaves it out.
"${INROOT[@]}" env CC=/bin/false CXX=/bin/false LDSHARED=/bin/false sh -euc '
    sh nocc-path.sh /tmp/aioc-wheeltest/nocc-bin
    export PATH=/tmp/aioc-wheeltest/nocc-bin
    for c in gcc cc clang ld; do
        if command -v "$c"; then echo "a compiler is reachable: $c" >&2; exit 1; fi
    done
    python3 -m venv venv
    venv/bin/pip install -q --only-binary=:all: ./*.whl "pytest>=8"
    site=$(venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()[\"platlib\"])")
    [ -z "$(find "$site/aiocancel" -name "_testhelper*")" ]
    venv/bin/python -c "import aiocancel, platform; assert aiocancel.SUPPORTED, aiocancel.FALLBACK_REASON; print(platform.machine(), aiocancel.__version__)"
    venv/bin/python -m aiocancel demo
    cp th/* "$site/aiocancel/"
    venv/bin/python -m pytest -q -p no:cacheprovider tests/test_core_*.py
'
step "wheelhouse"
ls -l "$OUT"
