"""asyncio / uvloop integration: `to_thread`, `install`, `get_executor`.

One hop each way: `to_thread` queues a `Job` on the executor (no
concurrent.futures.Future, no wrap_future), and the worker wakes the awaiting
coroutine with a single ``call_soon_threadsafe``. What a cancelled task gets
is `aiocancel._outcome`'s rule; this module only waits the asyncio way.

Each loop that runs a `to_thread` job gets two hooks (`_LoopJobs`): its
``shutdown_default_executor`` (which ``asyncio.run`` awaits before it
returns) also waits for the jobs the loop's tasks left behind, and its
``close`` cancels the jobs still running.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import threading
import warnings
import weakref
from typing import TYPE_CHECKING, Any, Callable, ParamSpec, TypeVar, TypeVarTuple, Unpack, overload

from ._fork import after_fork_in_child
from ._job import DONE, Job
from ._outcome import (DEFAULT_GRACE, anyio_shield, call_abandoned, check_grace,
                       close_abandoned)
from .executor import Executor

__all__ = ["to_thread", "install", "get_executor"]

T = TypeVar("T")
P = ParamSpec("P")
if TYPE_CHECKING:       # (mypy.stubtest cannot inspect a runtime TypeVarTuple)
    _Ts = TypeVarTuple("_Ts")

# Loops whose default executor is not readable (uvloop keeps it in a C field).
_installed: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Executor]" = (
    weakref.WeakKeyDictionary())
_module_pool: Executor | None = None
_module_lock = threading.Lock()
_MISSING = object()


@after_fork_in_child
def _forget_module_pool() -> None:
    # A forked child inherits the pool but none of its worker threads (and
    # the lock maybe held by a thread that does not exist there).
    global _module_pool, _module_lock
    _module_pool = None
    _module_lock = threading.Lock()


def _module_executor() -> Executor:
    global _module_pool
    pool = _module_pool
    if pool is None or pool._shutdown:
        with _module_lock:     # loops in several threads may get here at once
            pool = _module_pool
            if pool is None or pool._shutdown:
                pool = _module_pool = Executor(thread_name_prefix="aiocancel")
    return pool


def get_executor(loop: asyncio.AbstractEventLoop | None = None) -> Executor:
    """The `Executor` that `to_thread` uses on `loop` (default: the running
    loop): the loop's default executor if it is an `Executor` (see
    `install`), otherwise a module-level one shared by all loops.

    On uvloop, whose default executor cannot be read back, only an executor
    set with `install` is seen."""
    if loop is None:
        loop = asyncio.get_running_loop()
    executor = getattr(loop, "_default_executor", _MISSING)
    if executor is _MISSING:
        executor = _installed.get(loop)
    if isinstance(executor, Executor):
        return executor
    return _module_executor()


def install(loop: asyncio.AbstractEventLoop | None = None,
            executor: Executor | None = None, *,
            transparent: bool = False, patch: bool = False,
            grace: Any = _MISSING) -> Executor:
    """Make `loop`'s (default: the running loop's) default executor an
    `aiocancel.Executor` (`executor`, or a new one), and return it.

    Plain ``asyncio.to_thread(...)`` and ``loop.run_in_executor(None, ...)``
    calls then run their jobs in MASKED state on cancellable workers, and
    cancelling the awaiting task cancels the running job: asyncio's
    ``wrap_future`` calls ``cancel()`` on the executor's future, which sends
    the request to the worker. `aiocancel.to_thread` uses the same executor.

    What differs from `aiocancel.to_thread`: asyncio releases the cancelled
    task at once instead of waiting for the worker (``JobFuture.cancel()``
    returns False for the running job, as the stdlib's does, yet sends the
    request), so the task's deadline is exactly stock asyncio's. A result
    the job produced anyway (its syscall returned before the request acted)
    is passed to `close_abandoned` when asyncio drops the future; the worker
    is freed as soon as the job reaches a cancellation point, or replaced
    after the pool's grace period. Prefer `aiocancel.to_thread` where
    results matter.

    ``grace`` (seconds or None) sets the executor's grace period, which is
    also `aiocancel.to_thread`'s default on this loop; a new executor gets
    `aiocancel.DEFAULT_GRACE` when it is not given.

    ``transparent=True`` (when no `executor` is given) makes blocking calls
    inside foreign C code cancellable too; see `aiocancel.transparent`.

    Calling it again without `executor` keeps the installed one (if it has
    the same `transparent` mode). A previous default executor that is
    replaced is shut down without waiting.

    ``patch=True`` also calls `aiocancel.patch()`, so that the stdlib calls
    jobs make (``time.sleep``, socket methods, ``queue.Queue.get``...) are
    cancellation points too.
    """
    if grace is not _MISSING:
        grace = check_grace(grace)
    if patch:
        from ._patch import patch as _patch_stdlib
        _patch_stdlib()
    if loop is None:
        loop = asyncio.get_running_loop()
    previous: Any = getattr(loop, "_default_executor", _MISSING)
    if previous is _MISSING:
        previous = _installed.get(loop)
    if executor is None:
        if (isinstance(previous, Executor) and not previous._shutdown
                and previous._transparent == transparent):
            if grace is not _MISSING:
                previous._grace = grace
            return previous
        executor = Executor(thread_name_prefix="aiocancel",
                            transparent=transparent)
    elif not isinstance(executor, Executor):
        raise TypeError(f"executor must be an aiocancel.Executor, not "
                        f"{type(executor).__name__}")
    if grace is not _MISSING:
        executor._grace = grace
    loop.set_default_executor(executor)
    _installed[loop] = executor
    if previous is not None and previous is not _MISSING and previous is not executor:
        previous.shutdown(wait=False)
    return executor


class AsyncioWaiting:
    """How a task on an asyncio or uvloop loop waits for a job it was
    cancelled over: `aiocancel._outcome`'s rule the asyncio way. Mixed into
    `_LoopJob` and the anyio asyncio backend's job, which provide `loop`,
    `waiter` (the future the job's end sets) and ``abandon()``."""

    __slots__ = ()
    loop: asyncio.AbstractEventLoop
    waiter: "asyncio.Future[None]"
    state: int
    detached: bool
    withdrawn: bool
    exc: BaseException | None
    timer: asyncio.TimerHandle | None
    cancel: Callable[[], bool]
    request_cancel: Callable[[float | None], None]
    grace_expired: Callable[[], None]
    abandon: Callable[[], None]

    def _arm(self, delay: float) -> None:
        # The loop's own timer: no thread to wake on the cancel path. One
        # timer per loop serves all its cancelled jobs (`_GraceTimers`): a
        # TimerHandle per cancel, cancelled again microseconds later, cost
        # every cancel an allocation, a heap push and the loop's clean-up of
        # cancelled handles. The entry goes once the task stops waiting.
        state = _loop_jobs(self.loop)
        if state is None:      # a loop without attributes: a timer per job
            self.timer = self.loop.call_later(delay, self.grace_expired)  # type: ignore[misc]  # slot of the concrete job class
        else:
            state.grace_timers().add(self.loop, self, delay)

    def _disarm(self) -> None:
        # The task stopped waiting for a job that ended: nothing to report.
        timer = self.timer
        if timer is not None:
            timer.cancel()
            self.timer = None      # type: ignore[misc]  # slot of the concrete job class
        state: _LoopJobs | None = getattr(self.loop, "_aiocancel_jobs", None)
        if state is not None and state.grace is not None:
            state.grace.discard(self)

    def _gave_up(self) -> None:
        # The grace period is over (on the loop thread, or the watchdog's
        # for a job armed elsewhere): wake the waiting task.
        try:
            self.loop.call_soon_threadsafe(self._wake_waiter)
        except RuntimeError:
            pass

    def _wake_waiter(self) -> None:
        if not self.waiter.done():
            self.waiter.set_result(None)

    async def _wait_settled(self) -> None:
        """After the cancel request: wait until the job is done or detached
        (grace period over). Further cancels are absorbed (they are counted
        in ``cancelling()``, and one CancelledError will be raised) without
        spinning: each is one wake-up. anyio re-delivers a cancelled scope's
        cancel on every loop iteration until the task leaves the scope, so
        the first one absorbed puts the rest of the wait in a shielded scope
        (`anyio_shield`), where anyio stops. Only then: entering one costs
        the cancel path microseconds that most cancels never need."""
        if await self._await_end():
            return
        with anyio_shield() or contextlib.nullcontext():
            while not await self._await_end():
                pass

    async def _await_end(self) -> bool:
        """Wait for the job's end or detachment; False if a cancel came
        first."""
        while self.state != DONE and not self.detached:
            if self.waiter.done():
                self.waiter = self.loop.create_future()  # type: ignore[misc]  # slot of the concrete job class
            try:
                await self.waiter
            except asyncio.CancelledError:
                return False
            except BaseException:
                self.cancel()
                self.abandon()
                raise
        return True

    async def settle(self, cancelled: asyncio.CancelledError,
                     grace: float | None, abandon: bool) -> None:
        """The task was cancelled while awaiting the job: apply the rule of
        `aiocancel._outcome` and raise `cancelled`."""
        if self.state != DONE:
            # The request is usually out already (`JobWaiter.cancel`); not
            # when the error came another way (the waiter was done, or it
            # was thrown in). The grace period starts here in every case.
            self.request_cancel(grace)
            if not abandon and not self.withdrawn:
                try:
                    await self._wait_settled()
                finally:
                    if self.state == DONE:
                        self._disarm()     # nothing left to report
        cause = self.exc
        self.exc = None            # type: ignore[misc]  # slot of the concrete job class
        self.abandon()             # a result it produced goes to on_abandoned
        raise cancelled from cause


class JobWaiter(asyncio.Future):  # type: ignore[type-arg]
    """The future a task awaits while its job runs.

    ``Task.cancel()`` calls the future it awaits' ``cancel()`` on the spot,
    and this one sends the job its cancel request right there: the signal
    is on its way (and the worker waking) while the loop is still busy
    getting to the task's step, instead of after it. Only `Job.cancel` runs
    here, which any thread may call; the rest of the rule (`settle`) runs
    in the task, on the loop's thread.

    Made as ``JobWaiter(loop=loop)``, then `job` set: a constructor of its
    own would cost every job's round trip a Python call."""

    __slots__ = ("job",)
    job: Job | None

    def cancel(self, msg: Any = None) -> bool:
        job = self.job
        if job is not None:
            self.job = None
            Job.cancel(job)
        return super().cancel(msg)


class _GraceTimers:
    """The grace periods of one loop's cancelled jobs, kept by one loop
    timer set for the earliest; `Job.grace_expired` is called for each job
    whose period is over and that is still listed (a job leaves the list
    when its task stops waiting). It lives in the loop's `_LoopJobs`, so
    the loop is passed in rather than kept: only a pending timer refers to
    the loop (as the loop's own timer heap does), and closing the loop
    clears it."""

    __slots__ = ("due", "handle", "when")

    def __init__(self) -> None:
        self.due: dict[AsyncioWaiting, float] = {}
        self.handle: asyncio.TimerHandle | None = None
        self.when = math.inf       # what `handle` is set for

    def add(self, loop: asyncio.AbstractEventLoop, job: AsyncioWaiting,
            delay: float) -> None:
        when = loop.time() + delay
        self.due[job] = when
        if when < self.when:       # usually not: graces are mostly equal
            self._set(loop, when)

    def discard(self, job: AsyncioWaiting) -> None:
        self.due.pop(job, None)

    def clear(self) -> None:
        self.due.clear()
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.when = math.inf

    def _set(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.handle = loop.call_at(when, self._expire, loop)
        self.when = when

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        # The loop ran the timer set for self.when: everything due by then
        # is over, even if loop.time() reads a hair earlier (its timers run
        # within the clock's resolution, uvloop's within a millisecond).
        now = max(loop.time(), self.when)
        self.handle = None
        self.when = math.inf
        due = self.due
        expired = [job for job, when in due.items() if when <= now]
        for job in expired:
            del due[job]
        if due:
            self._set(loop, min(due.values()))
        for job in expired:
            try:
                job.grace_expired()
            except Exception as exc:   # noqa: BLE001 - the others still expire
                loop.call_exception_handler({
                    "message": "aiocancel: grace period callback failed",
                    "exception": exc,
                })


class _LoopJobs:
    """The `to_thread` jobs of one event loop that are not delivered yet,
    and the hooks that make the loop's exit wait for them (module doc)."""

    __slots__ = ("jobs", "drained", "at_close", "grace", "__weakref__")

    def __init__(self) -> None:
        self.jobs: set[_LoopJob] = set()
        self.grace: _GraceTimers | None = None   # made at the first cancel
        self.drained: asyncio.Future[None] | None = None
        # Run when the loop closes (the anyio backend's per-loop pool).
        self.at_close: list[Callable[[], None]] = []

    def grace_timers(self) -> _GraceTimers:
        """The loop's `_GraceTimers` (made on first use)."""
        timers = self.grace
        if timers is None:
            timers = self.grace = _GraceTimers()
        return timers

    def discard(self, job: "_LoopJob") -> None:
        jobs = self.jobs
        jobs.discard(job)
        if not jobs and self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    async def wait_abandoned(self, loop: asyncio.AbstractEventLoop,
                             timeout: float | None) -> None:
        """Wait for the jobs whose tasks left (none of them awaits anymore),
        as the stdlib waits for its default executor's threads."""
        if not self.jobs:
            return
        self.drained = loop.create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self.drained), timeout)
        except TimeoutError:
            warnings.warn(f"aiocancel: {len(self.jobs)} to_thread jobs did not "
                          f"end within {timeout} seconds", RuntimeWarning,
                          stacklevel=2)
        finally:
            self.drained = None

    def closing(self) -> None:
        """The loop closes: cancel its jobs (nobody can receive them now)."""
        for job in list(self.jobs):
            job.abandoned = True
            job.cancel()
        if self.grace is not None:
            self.grace.clear()     # its timer goes with the loop
        callbacks, self.at_close = self.at_close, []
        for callback in callbacks:
            callback()


def at_close(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    """Call `callback()` when `loop` closes (never if the loop takes no
    attributes: see `_loop_jobs`)."""
    state = _loop_jobs(loop)
    if state is not None:
        state.at_close.append(callback)


def _loop_jobs(loop: asyncio.AbstractEventLoop) -> _LoopJobs | None:
    """The loop's `_LoopJobs`, hooking the loop the first time. None if the
    loop takes no attributes (then its exit does not wait)."""
    state: _LoopJobs | None = getattr(loop, "_aiocancel_jobs", None)
    if state is not None:
        return state
    state = _LoopJobs()
    ref = weakref.ref(state)
    # The hooks live in the loop's __dict__: they must not reference the
    # loop (nor its bound methods), or the loop outlives its last user.
    loop_ref = weakref.ref(loop)
    cls = type(loop)

    def close_hook() -> None:
        # Closing the loop cancels its jobs: nobody can receive them now.
        live = ref()
        if live is not None:
            live.closing()
        target = loop_ref()
        if target is not None:
            cls.close(target)

    async def shutdown_hook(timeout: float | None = None) -> None:
        live, target = ref(), loop_ref()
        if target is None:
            return
        if live is not None:
            await live.wait_abandoned(target, timeout)
        if timeout is None:
            await cls.shutdown_default_executor(target)
        else:              # 3.12+: asyncio.run passes THREAD_JOIN_TIMEOUT
            await cls.shutdown_default_executor(target, timeout)  # type: ignore[call-arg, unused-ignore]

    try:
        loop._aiocancel_jobs = state           # type: ignore[attr-defined]
        loop.close = close_hook                # type: ignore[method-assign]
        loop.shutdown_default_executor = shutdown_hook  # type: ignore[method-assign]
    except (AttributeError, TypeError):
        return None
    return state


class _LoopJob(AsyncioWaiting, Job):
    """A job whose completion wakes a coroutine on an event loop."""

    __slots__ = ("loop", "waiter", "abandoned", "on_abandoned", "tracker", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 on_abandoned: Callable[[Any], object] | None,
                 fn: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
        Job.__init__(self, fn, args, kwargs)
        self.loop = loop
        self.abandoned = False
        self.on_abandoned = on_abandoned
        self.tracker: _LoopJobs | None = None
        self.timer: asyncio.TimerHandle | None = None

    def _finish(self) -> None:
        # Worker thread. Hand over to the loop, even when abandoned, so that
        # on_abandoned_result runs on the loop's thread; a closed loop
        # cancelled its jobs: the result is released here.
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except RuntimeError:
            self._release()

    def _wake(self) -> None:
        tracker = self.tracker
        if tracker is not None:
            tracker.discard(self)
        if self.abandoned:
            self._release()
        elif not self.waiter.done():
            self.waiter.set_result(None)

    def abandon(self) -> None:
        """Stop caring (loop thread): cancel the job; what it produces goes
        to `on_abandoned`, now if it is already there."""
        self.cancel()
        self.abandoned = True
        if self.state == DONE:
            self._release()        # idempotent with the _wake still queued

    def _release(self) -> None:
        result, self.result, self.exc = self.result, None, None
        call_abandoned(self.on_abandoned, result, self._report)

    def _report(self, exc: BaseException) -> None:
        self.loop.call_exception_handler({
            "message": "aiocancel: on_abandoned_result callback failed",
            "exception": exc,
        })

    def outcome(self) -> Any:
        """The awaiting coroutine's result once the job is DONE, the task
        not cancelled."""
        exc = self.exc
        if exc is None:
            result, self.result = self.result, None
            return result
        ended_cancelled = self.ended_cancelled()
        self.exc = None            # break the frame <-> exception cycle
        if ended_cancelled:        # e.g. shutdown(cancel_futures=True)
            raise asyncio.CancelledError() from exc
        raise exc

_POOL_GRACE: Any = object()


# Typed as asyncio.to_thread (ParamSpec: the arguments must fit `func`).
# A ParamSpec admits no keyword-only parameters of its own, so calls that
# pass grace / abandon_on_cancel / on_abandoned_result are typed by the
# second overload, as anyio's run_sync: `func`'s positional parameters
# against `args` (TypeVarTuple); keyword arguments for `func` then need a
# partial.
@overload
async def to_thread(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...
@overload
async def to_thread(func: Callable[[Unpack[_Ts]], T], /, *args: Unpack[_Ts],
                    grace: float | None = ...,
                    abandon_on_cancel: bool = ...,
                    on_abandoned_result: Callable[[Any], object] | None = ...
                    ) -> T: ...
# (ignore: mypy cannot match a TypeVarTuple overload to an implementation.)
async def to_thread(func: Callable[..., Any], /, *args: Any,  # type: ignore[misc]
                    grace: float | None = _POOL_GRACE,
                    abandon_on_cancel: bool = False,
                    on_abandoned_result: Callable[[Any], object] | None = close_abandoned,
                    **kwargs: Any) -> Any:
    """Run ``func(*args, **kwargs)`` on a cancellable worker and await it.

    Same signature and contextvars behaviour as ``asyncio.to_thread`` (the
    call runs in a copy of the caller's context). It runs on the loop's
    default executor if that is an `aiocancel.Executor` (see `install`),
    otherwise on a module-level one. The job runs in MASKED state: the
    `aiocancel.syscalls` calls it makes, and `aiocancel.testcancel`, are
    cancellation points.

    The contract when the awaiting task is cancelled (its code does not
    catch ``CancelledError``):

    * **A cancel is never lost**: the await raises the task's
      ``CancelledError`` (message kept, ``cancelling()`` counts right, the
      job's exception chained as ``__cause__``), so ``asyncio.timeout`` and
      ``wait_for`` raise ``TimeoutError``, TaskGroups shut down and Ctrl-C
      ends ``asyncio.run`` with ``KeyboardInterrupt``. A task already
      cancelled submits no job.
    * **Queued**: a job no worker has started is withdrawn: it never runs
      and the task is released at once.
    * **Running**: the request goes to the worker and the task waits for it
      (further cancels are absorbed without spinning), at most ``grace``
      seconds (keyword-only; default the executor's, `aiocancel.DEFAULT_GRACE`
      = 1 s; None waits without bound, logging once after 1 s). A job that
      still holds its worker then is *stuck*: a warning on the ``aiocancel``
      logger names ``func.__qualname__`` and shows the worker's Python
      stack, the worker stops counting toward the pool's ``max_workers``
      (another is started) and the task leaves.
    * **Nothing produced is silently lost**: a result the job produced
      although the task was cancelled (its syscall returned first, or it
      ignored the request) is passed to ``on_abandoned_result`` on the
      loop's thread (in the worker if the loop is closed). The default,
      `aiocancel.close_abandoned`, closes sockets and file objects only;
      None drops results.

    With ``abandon_on_cancel=True`` the task does not wait at all (grace 0
    for the task; the worker is still replaced only after ``grace``).

    A job ended by someone else (``Executor.shutdown(cancel_futures=True)``)
    raises ``CancelledError`` too, as a cancelled executor future would.
    ``asyncio.run`` does not return while jobs its tasks left behind still
    run, and closing the loop cancels its jobs.

    In fallback mode (``aiocancel.SUPPORTED`` False) a blocked call is not
    interrupted: the request acts at the job's next `testcancel()` or
    `aiocancel.syscalls` call, or when it returns (or the grace period
    ends).
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task(loop)
    if task is not None and getattr(task, "_must_cancel", False):
        # Cancelled before the call: submit nothing, raise it here.
        await asyncio.sleep(0)
    pool = get_executor(loop)
    grace = pool._grace if grace is _POOL_GRACE else check_grace(grace)
    job = _LoopJob(loop, on_abandoned_result, contextvars.copy_context().run,
                   (func, *args), kwargs)
    job.target = func
    tracker = job.tracker = _loop_jobs(loop)
    waiter = job.waiter = JobWaiter(loop=loop)
    waiter.job = job
    pool.submit_job(job)
    if tracker is not None:
        tracker.jobs.add(job)
    try:
        await waiter
    except asyncio.CancelledError as cancelled:
        await job.settle(cancelled, grace, abandon_on_cancel)
    except BaseException:          # GeneratorExit, KeyboardInterrupt thrown in
        job.abandon()
        raise
    finally:
        waiter.job = None          # no job <-> waiter cycle left for the GC
    return job.outcome()
