"""``python -m aiocancel``: --version, --help, and argparse-style usage errors
(stderr, exit status 2) for a missing or unknown command."""
from __future__ import annotations

import subprocess
import sys

import aiocancel


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aiocancel", *args],
                          capture_output=True, text=True, timeout=120)


def test_version():
    done = _run("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"aiocancel {aiocancel.__version__}"
    assert aiocancel.__version__.count(".") >= 2


def test_help_lists_commands_on_stdout():
    done = _run("--help")
    assert done.returncode == 0 and done.stderr == ""
    for command in ("demo", "bench", "stress"):
        assert command in done.stdout


def test_unknown_command_is_a_usage_error():
    done = _run("nope")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("usage: python -m aiocancel")
    assert "invalid choice: 'nope'" in done.stderr


def test_missing_command_is_a_usage_error():
    done = _run()
    assert done.returncode == 2
    assert done.stdout == ""
    assert "usage:" in done.stderr and "required" in done.stderr


def test_command_options_reach_the_command():
    done = _run("stress", "--help")
    assert done.returncode == 0
    assert "--iterations" in done.stdout
