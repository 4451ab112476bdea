"""asyncio / uvloop integration: `to_thread`, `install`, `get_executor`.

One hop each way: `to_thread` queues a `Job` on the executor (no
concurrent.futures.Future, no wrap_future), and the worker wakes the awaiting
coroutine with a single ``call_soon_threadsafe``.
"""
from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, ParamSpec, TypeVar, TypeVarTuple, Unpack, overload

from ._job import DONE, Job, close_abandoned
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


def _forget_module_pool() -> None:
    # A forked child inherits the pool but none of its worker threads (and
    # the lock maybe held by a thread that does not exist there).
    global _module_pool, _module_lock
    _module_pool = None
    _module_lock = threading.Lock()


if hasattr(os, "register_at_fork"):       # not on Windows: no fork there
    os.register_at_fork(after_in_child=_forget_module_pool)


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
            transparent: bool = False, patch: bool = False) -> Executor:
    """Make `loop`'s (default: the running loop's) default executor an
    `aiocancel.Executor` (`executor`, or a new one), and return it.

    Plain ``asyncio.to_thread(...)`` and ``loop.run_in_executor(None, ...)``
    calls then run their jobs in MASKED state on cancellable workers, and
    cancelling the awaiting task cancels the running job: asyncio's
    ``wrap_future`` calls ``cancel()`` on the executor's future, which sends
    the request to the worker. `aiocancel.to_thread` uses the same executor.

    What differs from `aiocancel.to_thread`: asyncio releases the cancelled
    task at once instead of waiting for the worker, so a result that the job
    produced anyway (its syscall returned before the request acted) is
    dropped, and an exception a library raised instead of `Cancelled` is
    lost too; the worker itself is freed as soon as the job reaches a
    cancellation point. Prefer `aiocancel.to_thread` where results matter.

    ``transparent=True`` (when no `executor` is given) makes blocking calls
    inside foreign C code cancellable too; see `aiocancel.transparent`.

    Calling it again without `executor` keeps the installed one (if it has
    the same `transparent` mode). A previous default executor that is
    replaced is shut down without waiting.

    ``patch=True`` also calls `aiocancel.patch()`, so that the stdlib calls
    jobs make (``time.sleep``, socket methods, ``queue.Queue.get``...) are
    cancellation points too.
    """
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
            return previous
        executor = Executor(thread_name_prefix="aiocancel",
                            transparent=transparent)
    elif not isinstance(executor, Executor):
        raise TypeError(f"executor must be an aiocancel.Executor, not "
                        f"{type(executor).__name__}")
    loop.set_default_executor(executor)
    _installed[loop] = executor
    if previous is not None and previous is not _MISSING and previous is not executor:
        previous.shutdown(wait=False)
    return executor


class _LoopJob(Job):
    """A job whose completion wakes a coroutine on an event loop."""

    __slots__ = ("loop", "waiter", "abandoned", "on_abandoned")

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 on_abandoned: Callable[[Any], object] | None,
                 fn: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
        Job.__init__(self, fn, args, kwargs)
        self.loop = loop
        self.waiter = loop.create_future()
        self.abandoned = False
        self.on_abandoned = on_abandoned

    def _finish(self) -> None:
        # Worker thread. Always hand over to the loop, even when abandoned,
        # so that on_abandoned_result runs on the loop's thread.
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except RuntimeError:       # the loop is closed: nobody will collect
            self._release()

    def _wake(self) -> None:
        if self.abandoned:
            self._release()
        elif not self.waiter.done():
            self.waiter.set_result(None)

    async def wait_done(self) -> None:
        """Wait for the worker to finish the job, whatever more cancels come:
        the task is not released before the worker is."""
        while self.state != DONE:
            self.waiter = self.loop.create_future()
            try:
                await self.waiter
            except asyncio.CancelledError:
                pass
            except BaseException:
                self.abandon()
                raise

    def abandon(self) -> None:
        """Stop caring (loop thread): cancel the job; a result it produces
        anyway goes to `on_abandoned`, now if it is already there."""
        self.cancel()
        self.abandoned = True
        if self.state == DONE:
            self._release()        # idempotent with the _wake still queued

    def _release(self) -> None:
        result, self.result, self.exc = self.result, None, None
        callback = self.on_abandoned
        if callback is None or result is None:
            return
        try:
            callback(result)
        except Exception as exc:   # noqa: BLE001 - reported, never lost
            self.loop.call_exception_handler({
                "message": "aiocancel: on_abandoned_result callback failed",
                "exception": exc,
            })

    def outcome(self, cancelled: asyncio.CancelledError | None) -> Any:
        """The awaiting coroutine's result, once the job is DONE."""
        exc = self.exc
        if exc is None:
            result, self.result = self.result, None
            if cancelled is not None:
                _keep_pending(self.loop, cancelled)
            return result
        ended_cancelled = self.ended_cancelled()
        self.exc = None            # break the frame <-> exception cycle
        if ended_cancelled:
            if cancelled is None:  # e.g. shutdown(cancel_futures=True)
                cancelled = asyncio.CancelledError()
            raise cancelled from exc
        if cancelled is not None:
            _keep_pending(self.loop, cancelled)
        raise exc


def _keep_pending(loop: asyncio.AbstractEventLoop,
                  cancelled: asyncio.CancelledError) -> None:
    """The job's outcome overtook the task's cancellation, which asyncio
    already consumed (it cancelled our waiter): deliver it again at the
    task's next suspension."""
    task = asyncio.current_task(loop)
    if task is not None:
        loop.call_soon(_rearm, task, task.cancelling(),
                       cancelled.args[0] if cancelled.args else None)


def _rearm(task: asyncio.Task[Any], count: int, msg: Any) -> None:
    """Re-arm a cancellation that a job's result overtook.

    Run with call_soon rather than from the coroutine: on 3.11/3.12
    ``uncancel()`` does not clear ``_must_cancel``, so a request re-armed
    synchronously would survive a canceller that withdraws in the same step
    (``asyncio.timeout`` exiting normally calls ``uncancel()``). By the time
    this runs, the task has reached its next suspension; if the count fell
    below what it was, the request was withdrawn and is not re-armed.
    uncancel() + cancel() leaves ``cancelling()`` unchanged."""
    if not task.done() and task.cancelling() >= count:
        task.uncancel()
        task.cancel(msg)


# Typed as asyncio.to_thread (ParamSpec: the arguments must fit `func`).
# A ParamSpec admits no keyword-only parameters of its own, so calls that
# pass abandon_on_cancel / on_abandoned_result are typed by the second
# overload, as anyio's run_sync: `func`'s positional parameters against
# `args` (TypeVarTuple); keyword arguments for `func` then need a partial.
@overload
async def to_thread(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...
@overload
async def to_thread(func: Callable[[Unpack[_Ts]], T], /, *args: Unpack[_Ts],
                    abandon_on_cancel: bool = ...,
                    on_abandoned_result: Callable[[Any], object] | None = ...
                    ) -> T: ...
# (ignore: mypy cannot match a TypeVarTuple overload to an implementation.)
async def to_thread(func: Callable[..., Any], /, *args: Any,  # type: ignore[misc]
                    abandon_on_cancel: Any = False,
                    on_abandoned_result: Any = close_abandoned,
                    **kwargs: Any) -> Any:
    """Run ``func(*args, **kwargs)`` on a cancellable worker and await it.

    Same signature and contextvars behaviour as ``asyncio.to_thread`` (the
    call runs in a copy of the caller's context). It runs on the loop's
    default executor if that is an `aiocancel.Executor` (see `install`),
    otherwise on a module-level one. The job runs in MASKED state: the
    `aiocancel.syscalls` calls it makes, and `aiocancel.testcancel`, are
    cancellation points.

    When the awaiting task is cancelled, the request goes to the worker and
    the task keeps waiting for it (further cancels only add to
    ``cancelling()``); then:

    * the job ended cancelled (raised `Cancelled` or `ThreadCancelled`, or
      raised anything after one of its cancellation points reported
      ECANCELED, as a library does that turns socket errors into its own):
      the task gets the original ``CancelledError`` (its message kept, the
      job's exception chained as ``__cause__``), so ``asyncio.timeout`` and
      ``TaskGroup`` see an ordinary cancellation;
    * the job finished anyway (its syscall returned first): its result is
      returned, or its own exception raised, and the cancellation stays
      pending: the task's next suspension raises ``CancelledError`` (unless
      the canceller withdrew meanwhile, as ``asyncio.timeout`` does when its
      block ends). Nothing the kernel produced is lost.

    With ``abandon_on_cancel=True`` the task does not wait: it raises
    ``CancelledError`` at once, the request is still sent (so the worker is
    freed at its next cancellation point), and a result that arrives anyway
    is passed to ``on_abandoned_result`` on the loop (default
    `close_abandoned`: closes a socket, a file or the fd of an ``(fd,
    address)`` pair; None drops it).

    A job ended by someone else (``Executor.shutdown(cancel_futures=True)``)
    raises ``CancelledError`` too, as a cancelled executor future would.

    In fallback mode (``aiocancel.SUPPORTED`` False) a blocked call is not
    interrupted: the request acts at the job's next `testcancel()` or
    `aiocancel.syscalls` call, or when it returns, and the task waits until
    then (use ``abandon_on_cancel=True`` not to wait).
    """
    loop = asyncio.get_running_loop()
    job = _LoopJob(loop, on_abandoned_result, contextvars.copy_context().run,
                   (func, *args), kwargs)
    get_executor(loop).submit_job(job)
    cancelled = None
    try:
        await job.waiter
    except asyncio.CancelledError as exc:
        if job.state != DONE:
            if abandon_on_cancel:
                job.abandon()
                raise
            job.cancel()
            await job.wait_done()
        cancelled = exc
    except BaseException:          # GeneratorExit, KeyboardInterrupt thrown in
        job.abandon()
        raise
    return job.outcome(cancelled)
