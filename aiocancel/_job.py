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

Two one-token lists decide the races that must have exactly one winner
(``list.pop`` is atomic): `gate`, popped by the worker to start the job or by
`cancel` to withdraw it (a withdrawn job never runs), and `hold`, popped by
the worker when the job ends or by the watchdog when the job's grace period
is over (the worker is then *detached*: replaced in its pool, it exits after
the job). What the front ends do with all this is `aiocancel._outcome`.

`pool` is the `Executor` the job was submitted to (None for jobs that other
front ends run themselves); `run` tells it when the job's outcome exists,
before `_finish` delivers it (if `handoff_finish`), so that the worker counts
as idle by the time anyone learns the job ended. `run` also re-checks the pool's "cancel running jobs"
flag after RUNNING for the same reason: ``shutdown(cancel_futures=True)`` must
also reach a job that a worker dequeued just before the shutdown but had not
begun yet, which no thread-level request could (job_begin clears it).
"""
from __future__ import annotations

from threading import get_ident as _get_ident
from typing import Any, Callable, ClassVar

from . import _on_cancel
from ._corejobs import begin as _job_begin
from ._corejobs import cancel as _cancel_job
from ._corejobs import end as _job_end
from ._errors import Cancelled, ThreadCancelled
from ._outcome import LOG_AFTER, close_abandoned, report_stuck, watch

QUEUED, RUNNING, DONE = 0, 1, 2


class Job:
    """One call of `fn(*args, **kwargs)` on a worker; subclasses deliver it."""

    __slots__ = ("fn", "args", "kwargs", "state", "cancel_requested", "slot",
                 "generation", "result", "exc", "acted", "pool", "counted",
                 "gate", "hold", "withdrawn", "detached", "thread", "grace",
                 "target", "hooks", "hooks_ran")

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
        self.gate = [None]
        self.hold = [None]
        self.withdrawn = False
        self.detached = False
        self.thread: int | None = None
        self.grace: float | None = None
        # What a stuck-job warning names (front ends wrapping `fn` set it).
        self.target: Any = fn
        # aiocancel.on_cancel registrations (None: never any) and whether
        # one ran; see _on_cancel.
        self.hooks: list[Any] | None = None
        self.hooks_ran = False

    def run(self) -> None:
        """Worker side: run the job in MASKED state, then deliver it."""
        withdrawn = False
        try:
            self.gate.pop()
            stopped = self._stopped()
        except IndexError:         # withdrawn by cancel(): never runs
            stopped = withdrawn = True
        if stopped:
            self.exc = Cancelled()
            self.acted = True
        else:
            self.thread = _get_ident()
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
        pool = self.pool
        try:
            self.hold.pop()
        except IndexError:         # the watchdog replaced this worker
            self.detached = True
        # Keep nothing of the call alive (CPython's test_no_stale_references).
        self.fn = self.args = self.kwargs = self.target = None
        if withdrawn:
            # cancel() gave the job's idle count back: this dequeue consumed
            # none, the worker is still counted.
            self.counted = True
        elif pool is not None and self.handoff_finish and not self.detached:
            # Before anyone can see the job DONE: a caller that submits again
            # at once must find this worker idle, not start another thread.
            self.counted = pool._job_ending()
        # The pool is not kept alive by its jobs' futures (an Executor
        # dropped without shutdown() must let its workers exit).
        self.pool = None
        self.state = DONE
        self._finish()

    def _stopped(self) -> bool:
        pool = self.pool
        return self.cancel_requested or (pool is not None and pool._cancel_running)

    def cancel(self) -> bool:
        """Request cancellation (any thread); False if the job was done.
        A job no worker has started is withdrawn (`withdrawn` True): it
        will never run."""
        if self.state == DONE:
            return False
        self.cancel_requested = True
        gate = self.gate
        # (Tested first: a running job's gate is empty, and raising the
        # IndexError cost every cancel of a running job a microsecond.)
        if gate:
            try:
                gate.pop()
            except IndexError:     # the worker took it meanwhile
                pass
            else:
                self.withdrawn = True
                pool = self.pool
                if pool is not None:
                    # The queued entry no longer needs a worker: give its idle
                    # count back, or the next submit would start a thread.
                    pool._withdrawn()
                return True
        if self.state == RUNNING:
            if self.hooks:
                # Before the interrupt, which may end the job (dropping them).
                _on_cancel.fire(self)
            _cancel_job(self.slot, self.generation)
        return True

    def request_cancel(self, grace: float | None) -> None:
        """A waiter gives up on the job (the contract of `_outcome`): cancel
        it and, if it is running, arm the watchdog for its grace period."""
        self.grace = grace
        # Job.cancel: a subclass's cancel() may be its waiter's own entry
        # point (JobFuture.cancel calls this). A request already made (by
        # the waiting future's cancel(), see `_asyncio.JobWaiter`) is not
        # made twice.
        if (self.cancel_requested or Job.cancel(self)) and self.state != DONE \
                and not self.withdrawn:
            self._arm(LOG_AFTER if grace is None else grace)

    def _arm(self, delay: float) -> None:
        """Have `grace_expired` called in `delay` s (default: by the
        watchdog thread; an event-loop front end uses its loop's timer,
        which costs the cancel path no thread wake-up)."""
        watch(delay, self)

    def grace_expired(self) -> None:
        """Watchdog thread: the job's grace period is over. Report it if it
        still runs; with a finite grace, also detach its worker (the pool
        replaces it) and release the waiter (`_gave_up`)."""
        if self.state == DONE:
            return
        if self.grace is None:
            report_stuck(self.target, self.thread, LOG_AFTER, leaving=False)
            return
        pool = self.pool           # read before the pop: see run()
        try:
            self.hold.pop()
        except IndexError:         # it ended meanwhile
            return
        self.detached = True
        report_stuck(self.target, self.thread, self.grace, leaving=True)
        if pool is not None:
            pool._detach()
        self._gave_up()

    def _gave_up(self) -> None:
        """Watchdog thread: release whoever waits for this detached job."""

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
        self.fn = self.args = self.kwargs = self.target = None
        self.state = DONE
        self._finish()

    def _finish(self) -> None:
        raise NotImplementedError


__all__ = ["Job", "close_abandoned", "QUEUED", "RUNNING", "DONE"]
