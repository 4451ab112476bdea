"""Chooses the implementation: the compiled trampoline core, or the fallback.

The compiled core exists on Linux x86_64 and aarch64. Elsewhere (macOS,
Windows, other architectures), or with ``AIOCANCEL_FALLBACK=1`` in the
environment (how the test-suite forces it), aiocancel runs in fallback mode:
``SUPPORTED`` is False, ``FALLBACK_REASON`` says why in one line, blocking
calls are not interrupted, and cancellation acts at the next cancellation
point that is reached (``testcancel()``, or the start of an
aiocancel.syscalls call) or when the job returns.

For type checkers the compiled modules' stubs (``_cancel.pyi`` and
``_syscalls.pyi``) are the interface; ``_fallback`` provides the same names at run time.
"""
from __future__ import annotations

import os
import sys
import warnings
from typing import TYPE_CHECKING

from . import _arch

__all__ = ["SUPPORTED", "FALLBACK_REASON", "HAS_TRAMPOLINE", "FORCED_FALLBACK",
           "cancel", "files", "futex", "ipc", "sockets", "standin", "syscalls",
           "waits"]

HAS_TRAMPOLINE = sys.platform.startswith("linux") and _arch.machine() in _arch.SUPPORTED
FORCED_FALLBACK = os.environ.get("AIOCANCEL_FALLBACK", "") not in ("", "0")

FALLBACK_REASON: str | None
"""None when the compiled core runs; otherwise one line saying why not and
what fallback mode means."""

_MEANING = ("blocking calls are not interrupted; a cancel acts at the next "
            "cancellation point or when the job returns")

if TYPE_CHECKING:
    from . import _cancel as cancel
    from . import _syscalls as syscalls
    files = futex = ipc = sockets = standin = waits = syscalls
    SUPPORTED: bool
elif HAS_TRAMPOLINE and not FORCED_FALLBACK:
    # import_module: a missing extension is then a ModuleNotFoundError that
    # names it (``from . import`` would say "cannot import name").
    import importlib
    try:
        cancel = importlib.import_module(f"{__package__}._cancel")
        syscalls = importlib.import_module(f"{__package__}._syscalls")
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith(__package__ + "._"):
            raise
        raise ImportError(
            f"aiocancel's compiled modules are missing next to {__file__}: this "
            "is an unbuilt source tree. Install it (pip install -e .) or set "
            "AIOCANCEL_FALLBACK=1 for the uninterruptible fallback.") from exc
    # One compiled module holds every concept (cysrc/aiocancel/syscalls/);
    # the concept names stay so callers say which part they use.
    files = futex = ipc = sockets = standin = waits = syscalls
    SUPPORTED = True
    FALLBACK_REASON = None
else:
    from . import _fallback as cancel
    from . import _fallback as syscalls
    files = futex = ipc = sockets = standin = waits = syscalls
    SUPPORTED = False
    if FORCED_FALLBACK:
        FALLBACK_REASON = f"aiocancel fallback mode (AIOCANCEL_FALLBACK=1): {_MEANING}"
    else:
        FALLBACK_REASON = (f"aiocancel fallback mode: no cancellation trampoline "
                           f"for {sys.platform} on {_arch.machine() or 'this CPU'} "
                           f"(only Linux x86_64 and aarch64): {_MEANING}")
        warnings.warn(FALLBACK_REASON, RuntimeWarning, stacklevel=2)
