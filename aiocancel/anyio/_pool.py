"""The worker threads that the anyio backends run jobs on."""
from __future__ import annotations

import os
import threading

from ..executor import Executor

__all__ = ["get_executor"]

# anyio starts one thread per concurrent call and lets the CapacityLimiter
# (40 tokens by default, or the caller's own) bound them; the pool must not
# add a second, smaller bound, or calls holding a token would queue behind
# each other (a deadlock if one waits for another through from_thread).
_NO_BOUND = 1 << 30

_lock = threading.Lock()
_executor: Executor | None = None
_pid = 0


def get_executor() -> Executor:
    """The process-wide `aiocancel.Executor` behind the anyio backends.

    Shared by every event loop and both backends. It starts a worker only
    when no idle one is left, so the number of threads follows the peak
    number of concurrent calls, which anyio's limiters bound."""
    global _executor, _pid
    with _lock:
        if _executor is None or _pid != os.getpid():
            # A forked child inherits the object but not its threads.
            _executor = Executor(_NO_BOUND, "aiocancel-anyio")
            _pid = os.getpid()
        return _executor
