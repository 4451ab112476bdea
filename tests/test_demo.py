"""`python -m aiocancel demo` runs from an installed package, in both modes,
and tells a newcomer what happened to each blocked call."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

import aiocancel

FALLBACK_ENV = os.environ.get("AIOCANCEL_FALLBACK", "") not in ("", "0")


def _demo(tmp_path, fallback: bool) -> list[str]:
    env = dict(os.environ)
    env.pop("AIOCANCEL_FALLBACK", None)
    if fallback:
        env["AIOCANCEL_FALLBACK"] = "1"
    proc = subprocess.run([sys.executable, "-m", "aiocancel", "demo"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout.splitlines()


def _check_common(lines: list[str]) -> None:
    assert len(lines) == 5, lines
    assert "empty pipe" in lines[1] and "still works (read b'?' next)" in lines[1]
    assert "terminal" in lines[2] and "b'hello\\n', is read normally" in lines[2]
    assert "accept()" in lines[3] and "next connection is accepted" in lines[3]
    assert "asyncio.to_thread" in lines[4]
    assert "stayed blocked in read()" in lines[4] and "was lost" in lines[4]


@pytest.mark.skipif(FALLBACK_ENV or not aiocancel.SUPPORTED,
                    reason="needs the compiled trampoline core")
def test_demo_cancels_three_blocked_calls(tmp_path):
    lines = _demo(tmp_path, fallback=False)
    assert lines[0].startswith("aiocancel: trampoline mode, cancel signal ")
    _check_common(lines)
    for line in lines[1:4]:
        assert re.search(r"cancelled after [\d,]+ (us|ms), worker free", line), line


def test_demo_in_fallback_mode_says_calls_are_not_interrupted(tmp_path):
    lines = _demo(tmp_path, fallback=True)
    assert lines[0].startswith("aiocancel: FALLBACK mode")
    assert "NOT interruptible" in lines[0]
    _check_common(lines)
    for line in lines[1:4]:
        assert "NOT interrupted: it ended " in line, line
        assert "when the input arrived, and the task ended cancelled" in line
