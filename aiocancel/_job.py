"""A job on an aiocancel worker thread, and the cancel protocol that every
front end (Executor futures, to_thread, the anyio backends) shares.

A job is QUEUED, then RUNNING on a worker under a fresh job generation, then
DONE. `Job.cancel()` may be called from any thread at any time:

* QUEUED: the job will not run; it ends cancelled.
* RUNNING: the request goes to (worker slot, generation); it acts at the
  job's next cancellation point, or never if the job finishes first. The
  generation makes a late request miss the worker's next job.
* DONE: nothing happens.

No lock is needed: `run` publishes (slot, generation) before RUNNING and
re-checks `cancel_requested` after it, while `cancel` sets the request before
reading the state, so (with the GIL ordering the two threads' steps) at least
one of them sends the request whenever both overlap.

`pool` is the `Executor` the job was submitted to (None for jobs that other
front ends run themselves); `run` tells it when the job's outcome exists,
before `_finish` delivers it (if `handoff_finish`), so that the worker counts
as idle by the time anyone learns the job ended. `run` also re-checks the pool's "cancel running jobs"
flag after RUNNING for the same reason: ``shutdown(cancel_futures=True)`` must
also reach a job that a worker dequeued just before the shutdown but had not
begun yet, which no thread-level request could (job_begin clears it).
"""
from __future__ import annotations

import os
from typing import Any, Callable, ClassVar

from . import _on_cancel
from ._backend import cancel as _cancel
from ._errors import Cancelled, ThreadCancelled

QUEUED, RUNNING, DONE = 0, 1, 2

_job_begin = _cancel._job_begin
_job_end = _cancel._job_end
_cancel_job = _cancel._cancel_job


class Job:
    """One call of `fn(*args, **kwargs)` on a worker; subclasses deliver it."""

    __slots__ = ("fn", "args", "kwargs", "state", "cancel_requested", "slot",
                 "generation", "result", "exc", "acted", "pool", "counted",
                 "hooks", "hooks_ran")

    # True when `_finish` only hands the outcome to another thread (an event
    # loop) and cannot block: the worker may then count itself idle before
    # it. A `_finish` that runs user callbacks (future done-callbacks, which
    # may wait for another job of the same pool) must say False, or that
    # job could queue behind the very worker that waits for it.
    handoff_finish: ClassVar[bool] = True

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
        # Any: cleared to None once the job ran (not to keep them alive).
        self.fn: Any = fn
        self.args: Any = args
        self.kwargs: Any = kwargs
        self.state = QUEUED
        self.cancel_requested = False
        self.result: Any = None
        self.exc: BaseException | None = None
        self.acted = False
        self.pool: Any = None
        self.counted = False
        # aiocancel.on_cancel registrations (None: never any) and whether
        # one ran; see _on_cancel.
        self.hooks: list[Any] | None = None
        self.hooks_ran = False

    def run(self) -> None:
        """Worker side: run the job in MASKED state, then deliver it."""
        if self._stopped():
            self.exc = Cancelled()
            self.acted = True
        else:
            self.slot, self.generation = _job_begin()
            self.state = RUNNING
            if self._stopped():
                _cancel_job(self.slot, self.generation)
            _on_cancel._local.job = self
            try:
                self.result = self.fn(*self.args, **self.kwargs)
            except BaseException as exc:
                self.exc = exc
            finally:
                _on_cancel._local.job = None
                if self.hooks is not None:
                    _on_cancel.leave(self)
                # An exception after an on_cancel callback ran is the
                # library's own report of the cancellation.
                self.acted = _job_end() or (self.hooks_ran and self.exc is not None)
        self.fn = self.args = self.kwargs = None
        pool = self.pool
        if pool is not None and self.handoff_finish:
            # Before anyone can see the job DONE: a caller that submits again
            # at once must find this worker idle, not start another thread.
            self.counted = pool._job_ending()
        self.state = DONE
        self._finish()

    def _stopped(self) -> bool:
        pool = self.pool
        return self.cancel_requested or (pool is not None and pool._cancel_running)

    def cancel(self) -> bool:
        """Request cancellation (any thread); False if the job was done."""
        if self.state == DONE:
            return False
        self.cancel_requested = True
        if self.state == RUNNING:
            if self.hooks:
                # Before the interrupt, which may end the job (dropping them).
                _on_cancel.fire(self)
            _cancel_job(self.slot, self.generation)
        return True

    def ended_cancelled(self) -> bool:
        """The rule every front end applies: the job counts as cancelled if
        it raised Cancelled/ThreadCancelled, or raised anything after one of
        its cancellation points acted (a library that turned Cancelled into
        its own error) or one of its `aiocancel.on_cancel` callbacks ran (a
        library cancelled its own way). A job that returned a value was not
        cancelled."""
        exc = self.exc
        return exc is not None and (
            self.acted or isinstance(exc, (Cancelled, ThreadCancelled)))

    def fail(self, exc: BaseException) -> None:
        """End a job that never ran (broken or shut-down pool)."""
        self.exc = exc
        self.fn = self.args = self.kwargs = None
        self.state = DONE
        self._finish()

    def _finish(self) -> None:
        raise NotImplementedError


def close_abandoned(result: Any) -> None:
    """Default `on_abandoned_result`: release what a late result holds.

    Objects with ``close()`` (sockets, files) are closed, and so is the fd of
    an ``(fd, address)`` pair as `aiocancel.syscalls.accept` returns it. A bare
    int is left alone: it may be a count, not an fd."""
    close = getattr(result, "close", None)
    if callable(close):
        close()
    elif (isinstance(result, tuple) and len(result) == 2
          and isinstance(result[0], int) and not isinstance(result[0], bool)):
        os.close(result[0])
