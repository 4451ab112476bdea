"""Helpers shared by the reliability tests (lifecycle, fork, signals, fuzz)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import aiocancel
from aiocancel._core import cancel as core

EXIT_TIMEOUT = 10.0


def thread_count() -> int:
    """Kernel threads of this process (/proc/self/task)."""
    return len(os.listdir("/proc/self/task"))


def wait_threads_at_most(baseline: int, timeout: float = EXIT_TIMEOUT) -> int:
    """Wait until the process has at most `baseline` threads (a joined
    thread leaves /proc/self/task a moment after join() returns); return
    the count seen last."""
    deadline = time.monotonic() + timeout
    while thread_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.001)
    return thread_count()


def stats() -> dict[str, int]:
    """The core's event counters (all zero in fallback mode)."""
    return dict(core._stats())


def stats_delta(before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in stats().items()}


def cancel_signal_pending_here() -> bool:
    """Whether the cancel signal is pending for the calling thread (it must
    be blocked there, or it would have been delivered)."""
    import signal
    sig = aiocancel.cancel_signal()
    return bool(sig) and sig in signal.sigpending()


def run_python(code: str, env: dict | None = None, timeout: float = 120.0,
               args: tuple = ()) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter that imports this checkout's
    aiocancel (the one the tests run against)."""
    pkg_parent = os.path.dirname(os.path.dirname(aiocancel.__file__))
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = pkg_parent + os.pathsep + full_env.get("PYTHONPATH", "")
    if env:
        full_env.update(env)
    # SIGINT at its default, as in a foreground shell: a child started from
    # a background job (CI) inherits it ignored, and CPython then installs
    # no KeyboardInterrupt handler, which some of these tests look at.
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=timeout,
                          env=full_env, preexec_fn=_sigint_default)


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
