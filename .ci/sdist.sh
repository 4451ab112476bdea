#!/usr/bin/env bash
# The sdist: built, installed from the tarball alone, and its tests run.
#
#   bash .ci/sdist.sh [PYTEST ARGS...]
#
# Builds dist/aiocancel-*.tar.gz (python -m build --sdist), checks it ships
# LICENSE, CHANGELOG.md, the tests with their conftest and fixtures, and no
# generated C or compiled module; unpacks it in a temporary directory;
# installs the tarball with its test extra into a fresh venv (a compiler is
# needed: this is the source distribution); runs the tests from the unpacked
# tree, its aiocancel/ sources removed so that everything (subprocesses too)
# imports the installed package (default: the whole default suite; pass
# pytest arguments to narrow).
# AIOCANCEL_TESTHELPER=1 makes the build include the test-only _testhelper,
# which the signal tests need and release builds leave out.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PY=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
step() { printf '\n=== %s\n' "$*"; }

step "build the sdist"
"$PY" -m venv "$WORK/tools"
"$WORK/tools/bin/pip" install -q build
rm -f dist/aiocancel-*.tar.gz
"$WORK/tools/bin/python" -m build --sdist -o dist . >/dev/null
SDIST=$(ls dist/aiocancel-*.tar.gz)
NAME=$(basename "$SDIST" .tar.gz)
ls -l "$SDIST"

step "contents"
tar -tzf "$SDIST" > "$WORK/list"
for f in LICENSE CHANGELOG.md README.md pyproject.toml setup.py tests/conftest.py \
         tests/asyncio_fixtures.py tests/c/core_test.c tests/typing/user_program.py \
         tests/stubtest_allowlist.txt cysrc/aioc_sysnums.h aiocancel/py.typed \
         cysrc/aiocancel/syscalls/base.pxi aiocancel/_cancel.pyi \
         examples/asyncio_fifo_timeout.py; do
    grep -qx "$NAME/$f" "$WORK/list" || { echo "sdist lacks $f"; exit 1; }
done
if grep -E '\.(so|pyc)$|cysrc/aiocancel/[^/]*\.c$' "$WORK/list"; then
    echo "sdist ships build products"; exit 1
fi
echo "$(wc -l < "$WORK/list") files, all expected ones present, no build products"

step "install $(basename "$SDIST")[test] into a fresh venv"
tar -xzf "$SDIST" -C "$WORK"
"$PY" -m venv "$WORK/venv"
AIOCANCEL_TESTHELPER=1 "$WORK/venv/bin/pip" install -q "$REPO/$SDIST[test]"

step "tests from the unpacked sdist: ${*:-the default suite}"
(cd "$WORK" && "$WORK/venv/bin/python" -m aiocancel --version)
cd "$WORK/$NAME"
# The tests exercise the installed build. The subprocesses many of them start
# (python -m aiocancel, python -c ...) run from this directory, where the
# unbuilt aiocancel/ sources would shadow it: remove them.
rm -rf aiocancel
"$WORK/venv/bin/python" -m pytest -q "$@"
