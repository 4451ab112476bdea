"""`on_cancel`: callbacks that a job's cancel request runs, for protocols
that must be cancelled their own way.

Interrupting a blocking call is only safe where nothing is half done. A
client library in the middle of a request/response protocol (libpq waiting
for a query's result) is left out of step if its wait fails: the reply
arrives later and is read as the answer to the *next* request. Such a
library has its own way to cancel (PostgreSQL's cancel request, MySQL's
``KILL QUERY``): the job registers it with `on_cancel`, and the cancel
request calls it, from the requesting thread, while the job keeps waiting
for the library to report the cancellation as its own error.

The job layer sets ``_local.job`` and calls `leave` around the job's
function, and `fire` from `Job.cancel`; nothing here runs in a signal
handler.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

__all__ = ["on_cancel", "current_job"]

_log = logging.getLogger("aiocancel")

# The job the calling worker thread runs (Job.run sets it).
_local = threading.local()
# Orders registration against `fire`: a callback is run exactly once, either
# by the canceller (registered before the request) or by the registering
# thread (registered after it).
_lock = threading.Lock()


def leave(job: Any) -> None:
    """Job layer: `job`'s function returned (the job layer has reset
    ``_local.job``); its callbacks are dropped."""
    with _lock:
        job.hooks = None


def current_job() -> Any:
    """The job running on the calling thread, or None outside a job."""
    return getattr(_local, "job", None)


def fire(job: Any) -> None:
    """Job layer (any thread, after ``job.cancel_requested`` was set): run
    the callbacks registered so far, once each. A failing callback is
    logged to the ``aiocancel`` logger; the others still run."""
    with _lock:
        hooks = job.hooks
        if not hooks:
            return
        job.hooks = []
    for registration in hooks:
        registration._run()


class on_cancel:
    """``aiocancel.on_cancel(callback)``: inside a job, call ``callback()``
    once when the job's cancel request is made.

    The callback runs in the thread that makes the request (an event loop
    thread for `to_thread`, `install` and the anyio backends), before the
    job's thread is interrupted and never in a signal handler, so it may do
    anything quick that thread may do; a slow one (network I/O) should hand
    its work to another thread. If the
    request was made before the registration, the callback runs at once,
    in the registering thread. It is removed when the job's function
    returns, or earlier with `remove` or at the end of a ``with`` block::

        with aiocancel.on_cancel(conn.cancel):
            cursor.execute(query)

    A job whose function raises after one of its callbacks ran counts as
    cancelled (the library turned the request into its own error), as when
    one of its cancellation points acted.

    Outside a job (no aiocancel worker is running the caller) it registers
    nothing: there is no request to wait for.
    """

    __slots__ = ("callback", "job", "done")

    def __init__(self, callback: Callable[[], object]) -> None:
        if not callable(callback):
            raise TypeError(f"callback must be callable, not "
                            f"{type(callback).__name__}")
        self.callback = callback
        self.done = False
        job = self.job = current_job()
        if job is None:
            return
        with _lock:
            run_now = job.cancel_requested
            if not run_now:
                if job.hooks is None:
                    job.hooks = [self]
                else:
                    job.hooks.append(self)
        if run_now:
            self._run()

    def _run(self) -> None:
        with _lock:
            if self.done:
                return
            self.done = True
        job = self.job
        if job is not None:
            job.hooks_ran = True
        try:
            self.callback()
        except Exception:          # noqa: BLE001 - reported, never raised at the canceller
            _log.exception("aiocancel.on_cancel callback %r failed", self.callback)

    def remove(self) -> None:
        """Unregister the callback: it will not run unless it has started
        already (in the cancelling thread, which may still be running it)."""
        job = self.job
        if job is None:
            return
        with _lock:
            self.done = True
            hooks = job.hooks
            if hooks:
                try:
                    hooks.remove(self)
                except ValueError:
                    pass

    def __enter__(self) -> "on_cancel":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()
