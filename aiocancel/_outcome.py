"""The cancellation contract, written once for every front end.

`aiocancel.to_thread`, the `aio` awaitables, `Executor` futures (and so
``install()`` + plain ``asyncio.to_thread``/``run_in_executor``) and the anyio
backends (asyncio, uvloop, trio) all apply the same rule when the party
waiting for a job gives up on it (a cancelled task, a cancelled future):

1. The cancel request goes to the job (`Job.request_cancel`). A job still
   QUEUED is withdrawn: it never runs, and the waiter is released at once.
2. A RUNNING job is waited for, but only for `grace` seconds (None: without
   bound). The waiter absorbs further cancels while it waits (no spinning)
   and ends cancelled: the cancellation it accepted is never lost.
3. A job that still holds its worker after `grace` is *stuck*: a warning
   naming the function and showing the worker's Python stack goes to the
   ``aiocancel`` logger, the worker stops counting toward its pool's
   ``max_workers`` (the pool starts another), and the waiter leaves. With
   ``grace=None`` the job is only reported, once, after `LOG_AFTER` seconds.
4. Whatever the job produced although its waiter left (a result that raced
   the request, or came after the grace period) goes to
   ``on_abandoned_result``; the default, `close_abandoned`, closes only
   unambiguous resources.

The timing of 2-3 is kept by the event loop's timer for the asyncio front
ends, and otherwise (futures, trio) by one daemon watchdog thread, started
the first time such a running job is cancelled (never on the path of a job
nobody cancels), which calls `Job.grace_expired` when a job's grace period
is over.
"""
from __future__ import annotations

import asyncio
import heapq
import io
import logging
import math
import socket
import sys
import threading
import time
import traceback
from typing import Any, Callable

from ._fork import after_fork_in_child

__all__ = ["DEFAULT_GRACE", "LOG_AFTER", "close_abandoned", "check_grace",
           "logger", "watch", "report_stuck", "anyio_shield"]

# Why one second: a job that is in or before a cancellation point reacts to
# the request within microseconds (bench P3), so a job still running after
# one second is not at one (a CPU loop, an unpatched time.sleep, a C
# extension's own wait) and waiting longer only makes the caller's deadline
# late. One second bounds that lateness on any deadline (asyncio.timeout,
# anyio.fail_after, Ctrl-C) while leaving a job that checks `testcancel()`
# between chunks of work ample time to notice.
DEFAULT_GRACE = 1.0
# grace=None: a job still running this long after its cancel is logged once.
LOG_AFTER = 1.0

logger = logging.getLogger("aiocancel")


def check_grace(grace: object) -> float | None:
    """`grace` validated: None, or a finite number of seconds >= 0."""
    if grace is None:
        return None
    if isinstance(grace, bool) or not isinstance(grace, (int, float)):
        raise TypeError(f"grace must be a number of seconds or None, not "
                        f"{type(grace).__name__}")
    if not (grace >= 0 and math.isfinite(grace)):
        raise ValueError(f"grace must be finite and >= 0, not {grace!r}")
    return float(grace)


# What close_abandoned closes: objects that can only be resources. Ints and
# tuples are never touched: an int may be a count, a pid or an fd, and only
# the call that made it knows (the aio awaitables that create an fd close it
# themselves).
ABANDONED_RESOURCES: tuple[type, ...] = (socket.socket, io.IOBase)


def close_abandoned(result: Any) -> None:
    """Default ``on_abandoned_result``: close `result` if it is a
    ``socket.socket`` or a file object (``io.IOBase``: what ``open()``,
    ``os.fdopen`` and ``socket.makefile`` return); leave anything else
    alone (ints, tuples, bytes: see README, "Abandoned results")."""
    if isinstance(result, ABANDONED_RESOURCES):
        closing: Any = result      # (narrowed to `object` by the tuple)
        closing.close()


def report_stuck(fn: Any, thread: int | None, waited: float,
                 leaving: bool) -> None:
    """Warn that a cancelled job still holds its worker: the job function's
    qualified name and the worker thread's current Python stack."""
    name = getattr(fn, "__qualname__", None) or repr(fn)
    module = getattr(fn, "__module__", None)
    if module:
        name = f"{module}.{name}"
    frame = sys._current_frames().get(thread) if thread is not None else None
    stack = ("".join(traceback.format_stack(frame)) if frame is not None
             else "  (no Python frame)\n")
    del frame
    what = ("the waiter stops waiting and the worker is replaced"
            if leaving else "still waiting (grace=None)")
    logger.warning("aiocancel: job %s still runs %.2f s after its cancel "
                   "request (not at a cancellation point); %s. Worker stack "
                   "(most recent call last):\n%s", name, waited, what, stack)


class _Watchdog:
    """One thread that calls ``job.grace_expired()`` at each job's
    deadline. Armed only when a running job is cancelled."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Any]] = []
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._seq = 0

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            with self._cond:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="aiocancel-watchdog", daemon=True)
                    self._thread.start()

    def arm(self, delay: float, job: Any) -> None:
        self.start()
        with self._cond:
            self._seq += 1
            heapq.heappush(self._heap, (time.monotonic() + delay, self._seq, job))
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        job = heapq.heappop(self._heap)[2]
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
            try:
                job.grace_expired()
            except Exception:      # a reporting bug must not stop the watchdog
                logger.exception("aiocancel: watchdog callback failed")
            del job


_watchdog = _Watchdog()


def watch(delay: float, job: Any) -> None:
    """Call ``job.grace_expired()`` in the watchdog thread after `delay` s."""
    _watchdog.arm(delay, job)


def start_watchdog() -> None:
    """Make sure the watchdog thread runs (see `_Watchdog.start`)."""
    _watchdog.start()


@after_fork_in_child
def _reset_after_fork() -> None:
    global _watchdog
    _watchdog = _Watchdog()     # the thread does not exist in the child


def anyio_shield() -> Any:
    """A context manager shielding the current asyncio task from anyio's
    cancel scopes while it waits for a cancelled job, or None outside anyio.

    anyio re-delivers a scope's cancellation on every event loop iteration
    until the task leaves the scope; a waiter that absorbed each one spun a
    whole core. Inside a shielded scope anyio stops; the waiter still ends
    cancelled (it re-raises the CancelledError it accepted), and the grace
    period still bounds the wait."""
    backend = sys.modules.get("anyio._backends._asyncio")
    if backend is None:
        return None
    # Only a task inside an anyio cancel scope needs (and pays for) one.
    states = getattr(backend, "_task_states", None)
    if states is not None:
        try:
            state = states.get(asyncio.current_task())
        except TypeError:
            state = None
        if state is None or getattr(state, "cancel_scope", True) is None:
            return None
    try:
        return backend.CancelScope(shield=True)
    except Exception:              # noqa: BLE001 - no anyio context here
        return None


def call_abandoned(callback: Callable[[Any], object] | None, result: Any,
                   report: Callable[[BaseException], None] | None = None) -> None:
    """Hand a result nobody will receive to `callback`; its failure is
    reported (`report`, or the logger), never raised into a worker."""
    if callback is None or result is None:
        return
    try:
        callback(result)
    except Exception as exc:       # noqa: BLE001 - reported, never lost
        if report is not None:
            report(exc)
        else:
            logger.exception("aiocancel: on_abandoned_result failed for %r",
                             result)
