"""aiocancel imports and runs jobs with other platforms' module sets.

Each test runs tests/platform_sim.py in a fresh interpreter that imposes
macOS's or Windows' module set (no select.epoll, fcntl, termios,
os.register_at_fork, compiled extensions...; see that script) before
``import aiocancel``.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import aiocancel

SIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "platform_sim.py")


@pytest.mark.parametrize("kind", ["macos", "windows"])
def test_import_and_jobs_in_fallback_mode_with_module_set(kind):
    env = {k: v for k, v in os.environ.items() if k != "AIOCANCEL_FALLBACK"}
    done = subprocess.run([sys.executable, "-W", "always", SIM, kind],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    ok = [line for line in done.stdout.splitlines() if line.startswith("OK ")]
    assert len(ok) == 1, done.stdout
    reason = ok[0][3:]
    platform_name = {"macos": "darwin", "windows": "win32"}[kind]
    assert reason.startswith("aiocancel fallback mode") and platform_name in reason
    # The same line is the one warning import gave.
    warned = [line for line in done.stderr.splitlines() if "RuntimeWarning" in line]
    assert len(warned) == 1 and warned[0].endswith(reason), done.stderr


def test_fallback_reason_matches_supported():
    if aiocancel.SUPPORTED:
        assert aiocancel.FALLBACK_REASON is None
    else:
        assert "fallback mode" in aiocancel.FALLBACK_REASON
