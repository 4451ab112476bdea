"""Chooses the implementation: the compiled trampoline core, or the fallback.

The compiled core exists on Linux x86_64 and aarch64. Elsewhere, or with
``AIOCANCEL_FALLBACK=1`` in the environment (how the test-suite forces it),
aiocancel runs in fallback mode: ``SUPPORTED`` is False, blocking calls are
not interrupted, and cancellation acts at the next cancellation point that
is reached (``testcancel()``, or the start of an aiocancel.syscalls call) or
when the job returns.
"""
from __future__ import annotations

import importlib
import os
import platform
import sys

HAS_TRAMPOLINE = sys.platform.startswith("linux") and platform.machine().lower() in (
    "x86_64", "amd64", "aarch64", "arm64")
FORCED_FALLBACK = os.environ.get("AIOCANCEL_FALLBACK", "") not in ("", "0")

if HAS_TRAMPOLINE and not FORCED_FALLBACK:
    try:
        cancel = importlib.import_module(__package__ + "._cancel")
        syscalls = importlib.import_module(__package__ + "._syscalls")
        files = importlib.import_module(__package__ + "._files")
        futex = importlib.import_module(__package__ + "._futex")
        ipc = importlib.import_module(__package__ + "._ipc")
        sockets = importlib.import_module(__package__ + "._sockets")
        waits = importlib.import_module(__package__ + "._waits")
        standin = importlib.import_module(__package__ + "._standin")
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith(__package__ + "._"):
            raise
        raise ImportError(
            f"aiocancel's compiled modules are missing next to {__file__}: this "
            "is an unbuilt source tree. Install it (pip install -e .) or set "
            "AIOCANCEL_FALLBACK=1 for the uninterruptible fallback.") from exc
    SUPPORTED = True
else:
    from . import _fallback as cancel
    from . import _fallback as syscalls
    files = futex = ipc = sockets = standin = waits = syscalls
    SUPPORTED = False
