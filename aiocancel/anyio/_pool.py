"""The worker threads that the anyio backends run jobs on: one
`aiocancel.Executor` per event loop (asyncio or uvloop loop, trio run), shut
down when that loop ends, so that a worker exits with its event loop as
anyio's own workers do (and an idle one after 10 s, also as anyio's)."""
from __future__ import annotations

import threading
import time
import weakref
from typing import Any, Callable

from .._fork import after_fork_in_child
from .._outcome import DEFAULT_GRACE, check_grace
from ..executor import Executor

__all__ = ["set_transparent", "set_grace", "pool_for"]

# anyio starts one thread per concurrent call and lets the CapacityLimiter
# (40 tokens by default, or the caller's own) bound them; the pool must not
# add a second, smaller bound, or calls holding a token would queue behind
# each other (a deadlock if one waits for another through from_thread).
_NO_BOUND = 1 << 30

_lock = threading.Lock()
# event loop (asyncio loop, trio token) -> its pool
_pools: "weakref.WeakKeyDictionary[Any, Executor]" = weakref.WeakKeyDictionary()
_transparent = False
_grace: float | None = DEFAULT_GRACE


def pool_for(key: Any, at_end: Callable[[Callable[[], None]], object]) -> Executor:
    """The pool of event loop `key`, made on first use; `at_end(fn)` must
    arrange for ``fn()`` to run when that loop ends."""
    pool = _pools.get(key)
    if pool is not None:
        return pool
    with _lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = Executor(_NO_BOUND, "aiocancel-anyio",
                                          transparent=_transparent, grace=_grace)
            made = True
        else:
            made = False
    if made:
        ref = weakref.ref(key)
        at_end(lambda: _retire(ref, pool))
    return pool


@after_fork_in_child
def _forget_pools() -> None:
    # A forked child inherits the pools but not their threads (and the lock
    # maybe held by a thread that does not exist there).
    global _lock
    _lock = threading.Lock()
    _pools.clear()


def _retire(ref: "weakref.ref[Any]", pool: Executor) -> None:
    # The loop ended: its jobs can no longer be delivered; cancel them and
    # let the workers exit once they are free.
    with _lock:
        key = ref()
        if key is not None and _pools.get(key) is pool:
            del _pools[key]
    pool.shutdown(wait=False, cancel_futures=True)
    # Wait (a grace period at most) for the workers to be gone, as anyio's
    # own are by the time its loop is closed: code that counts threads after
    # a loop ends (anyio's test suite does) must not see ours still exiting.
    # A job stuck past its cancel request is not waited for beyond that.
    bound = pool._grace if pool._grace is not None else DEFAULT_GRACE
    deadline = time.monotonic() + bound
    me = threading.current_thread()
    for thread in list(pool._threads):
        if thread is not me:
            thread.join(max(0.0, deadline - time.monotonic()))


def set_transparent(on: bool) -> None:
    """Run the anyio workers in transparent mode (see aiocancel.transparent)
    or not. Workers already started keep their mode until they are replaced:
    the current pools are retired (their idle threads exit) and new ones are
    made on next use."""
    global _transparent
    with _lock:
        if _transparent == on:
            return
        _transparent = on
        retired = list(_pools.values())
        _pools.clear()
    for pool in retired:
        pool.shutdown(wait=False)


def set_grace(grace: float | None) -> None:
    """The grace period (seconds, None: unbounded) of the anyio pools, now
    and to come (see `aiocancel.to_thread`)."""
    global _grace
    grace = check_grace(grace)
    with _lock:
        _grace = grace
        for pool in _pools.values():
            pool._grace = grace
