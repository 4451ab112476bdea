"""The driver hooks reach psycopg2 and psycopg imported after activation
(a fresh interpreter), without changing what the modules look like."""
from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("psycopg2", reason="psycopg2-binary is not installed")
pytest.importorskip("psycopg", reason="psycopg is not installed")

SCRIPT = """
import inspect, sys
import aiocancel.anyio, aiocancel.trio
assert "psycopg2" not in sys.modules and "psycopg" not in sys.modules
aiocancel.trio.install()            # any install() activates the hooks
import psycopg2, psycopg
assert psycopg2.connect._aiocancel and psycopg.Connection.wait._aiocancel
assert psycopg.__loader__.is_package("psycopg")
assert "def connect" in inspect.getsource(psycopg2)
print("hooked")
"""


def test_hooks_installed_on_later_import() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hooked"
