"""aiocancel: blocking calls in worker threads that cancellation really stops.

The mechanism is musl libc's race-free thread cancellation in its MASKED
mode: cancellable syscalls go through an assembly trampoline, and a cancel
request interrupts a thread only while it is before or blocked in such a
syscall, so a result the kernel produced (bytes read, an accepted fd) is never
lost. See README.md.
"""
from __future__ import annotations

from . import aio, syscalls, transparent
from ._core import FALLBACK_REASON, SUPPORTED
from ._core import cancel as _cancel
from ._errors import Cancelled, ThreadCancelled
from ._asyncio import get_executor, install, to_thread
from ._on_cancel import on_cancel
from ._outcome import DEFAULT_GRACE, close_abandoned
from ._patch import is_patched, patch, unpatch
from ._ainput import ainput
from ._version import __version__
from .executor import Executor

CANCEL_ENABLE: int = _cancel.CANCEL_ENABLE
CANCEL_DISABLE: int = _cancel.CANCEL_DISABLE
CANCEL_MASKED: int = _cancel.CANCEL_MASKED

setcancelstate = _cancel.setcancelstate
getcancelstate = _cancel.getcancelstate
masked = _cancel.masked
cancel_thread = _cancel.cancel_thread
testcancel = _cancel.testcancel
cancel_signal = _cancel.cancel_signal

__all__ = [
    "__version__", "SUPPORTED", "FALLBACK_REASON", "Cancelled", "ThreadCancelled",
    "CANCEL_ENABLE", "CANCEL_DISABLE", "CANCEL_MASKED",
    "setcancelstate", "getcancelstate", "masked", "cancel_thread",
    "testcancel", "cancel_signal", "syscalls", "transparent",
    "Executor", "to_thread", "install", "get_executor", "aio",
    "patch", "unpatch", "is_patched", "ainput", "on_cancel",
    "DEFAULT_GRACE", "close_abandoned",
]
