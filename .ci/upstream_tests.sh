#!/bin/sh
# anyio's own tests/test_to_thread.py, from the sdist of the anyio release
# installed, run with aiocancel.anyio installed (issue 16). CPython's own
# concurrent.futures / asyncio thread tests run in the default suite
# (tests/test_upstream_suites.py).
#
# Usage: .ci/upstream_tests.sh [python]   (default: .venv/bin/python)
# Needs the network (pip download) and installs pytest-mock and
# pytest-timeout, which anyio's test configuration loads.
set -eu
PY=$(cd "$(dirname "${1:-.venv/bin/python}")" && pwd)/$(basename "${1:-.venv/bin/python}")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
VERSION=$("$PY" -c 'import importlib.metadata as m; print(m.version("anyio"))')
"$PY" -m pip install -q pytest-mock pytest-timeout
"$PY" -m pip download -q --no-binary :all: --no-deps "anyio==$VERSION" -d "$WORK"
tar xzf "$WORK/anyio-$VERSION.tar.gz" -C "$WORK"
cd "$WORK/anyio-$VERSION"
# Left out: tests that inspect anyio's private worker objects, which the
# aiocancel backends replace:
#   test_asyncio_worker_reused_after_cancelled_call (patches worker.queue of
#   anyio's WorkerThread)
PYTHONPATH="$ROOT/.ci/upstream${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m pytest -q \
    -p aiocancel_anyio_plugin -p no:cacheprovider tests/test_to_thread.py \
    --deselect "tests/test_to_thread.py::test_asyncio_worker_reused_after_cancelled_call"
