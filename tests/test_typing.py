"""Types: the package passes ``mypy --strict`` and ``mypy.stubtest`` (with the
explained allow-list tests/stubtest_allowlist.txt), and a typed user program
type-checks while wrong calls (``to_thread(len, 1, 2)``...) do not.

mypy reads its configuration from pyproject.toml ([tool.mypy], strict)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

import aiocancel

mypy_api = pytest.importorskip("mypy.api", reason="mypy is in the test extra")

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
CONFIG = os.path.join(REPO, "pyproject.toml")
PACKAGE_DIR = os.path.dirname(os.path.abspath(aiocancel.__file__))
TYPING = os.path.join(TESTS, "typing")


def _mypy(*args: str) -> tuple[str, int]:
    out, err, status = mypy_api.run(["--config-file", CONFIG, "--strict",
                                     "--no-incremental", "--cache-dir", os.devnull,
                                     *args])
    return out + err, status


def test_package_is_mypy_strict_clean():
    out, status = _mypy("-p", "aiocancel")
    assert status == 0, out


def test_typed_user_program_checks():
    out, status = _mypy(os.path.join(TYPING, "user_program.py"))
    assert status == 0, out


def test_wrong_calls_do_not_type_check():
    path = os.path.join(TYPING, "user_errors.py")
    expected = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            m = re.search(r"# E: ([a-z-]+)$", line)
            if m:
                expected[number] = m.group(1)
    out, status = _mypy(path)
    assert status == 1, out
    found: dict[int, set[str]] = {}
    for m in re.finditer(r"user_errors\.py:(\d+): error: .*\[([a-z-]+)\]$", out, re.M):
        found.setdefault(int(m.group(1)), set()).add(m.group(2))
    assert set(found) == set(expected), out
    for line, code in expected.items():
        assert code in found[line], (line, out)


@pytest.mark.skipif(not aiocancel.SUPPORTED,
                    reason="stubtest compares the stubs with the compiled modules")
def test_stubtest_clean(tmp_path):
    # In a subprocess: stubtest imports every submodule (bench, stress...).
    # From the source tree when that is what is imported (editable build);
    # from an empty directory for an installed copy (mypy would take the
    # modules beside it in site-packages for the user's own).
    where = os.path.dirname(PACKAGE_DIR)
    if os.path.basename(where) in ("site-packages", "dist-packages"):
        where = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "--mypy-config-file", CONFIG,
         "--allowlist", os.path.join(TESTS, "stubtest_allowlist.txt"), "aiocancel"],
        capture_output=True, text=True, timeout=600, cwd=where)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success" in done.stdout


@pytest.mark.skipif(not aiocancel.SUPPORTED,
                    reason="compares the stub with the compiled _cancel._stats()")
def test_stats_stub_names_every_counter():
    """The ``_Stats`` TypedDict of _cancel.pyi lists exactly the counters
    ``_cancel._stats()`` returns, in its order."""
    import ast

    from aiocancel import _cancel
    with open(os.path.join(PACKAGE_DIR, "_cancel.pyi")) as f:
        tree = ast.parse(f.read())
    stats = next(node for node in tree.body
                 if isinstance(node, ast.ClassDef) and node.name == "_Stats")
    keys = [node.target.id for node in stats.body
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)]
    assert keys == list(_cancel._stats())
