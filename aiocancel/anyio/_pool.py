"""The worker threads that the anyio backends run jobs on."""
from __future__ import annotations

import os
import threading

from ..executor import Executor

__all__ = ["get_executor", "set_transparent"]

# anyio starts one thread per concurrent call and lets the CapacityLimiter
# (40 tokens by default, or the caller's own) bound them; the pool must not
# add a second, smaller bound, or calls holding a token would queue behind
# each other (a deadlock if one waits for another through from_thread).
_NO_BOUND = 1 << 30

_lock = threading.Lock()
_executor: Executor | None = None
_pid = 0
_transparent = False


def get_executor() -> Executor:
    """The process-wide `aiocancel.Executor` behind the anyio backends.

    Shared by every event loop and both backends. It starts a worker only
    when no idle one is left, so the number of threads follows the peak
    number of concurrent calls, which anyio's limiters bound."""
    global _executor, _pid
    with _lock:
        if _executor is None or _pid != os.getpid():
            # A forked child inherits the object but not its threads.
            _executor = Executor(_NO_BOUND, "aiocancel-anyio",
                                 transparent=_transparent)
            _pid = os.getpid()
        return _executor


def set_transparent(on: bool) -> None:
    """Run the anyio workers in transparent mode (see aiocancel.transparent)
    or not. Workers already started keep their mode until they are replaced:
    the current pool is retired (its idle threads exit) and a new one is made
    on next use."""
    global _executor, _transparent
    with _lock:
        if _transparent == on:
            return
        _transparent = on
        retired, _executor = _executor, None
    if retired is not None:
        retired.shutdown(wait=False)
