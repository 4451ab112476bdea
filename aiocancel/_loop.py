"""asyncio / uvloop integration: `to_thread` and `install`."""
from __future__ import annotations

import asyncio
import contextvars
import os
import weakref
from typing import Any, Callable, TypeVar

from ._job import DONE, Job, close_abandoned
from .executor import Executor

__all__ = ["to_thread", "install", "get_executor"]

T = TypeVar("T")

_installed: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Executor]" = (
    weakref.WeakKeyDictionary())
_default_executor: Executor | None = None
_default_pid = 0


def _module_executor() -> Executor:
    global _default_executor, _default_pid
    if _default_executor is None or _default_pid != os.getpid():
        # A forked child inherits the object but not its threads.
        _default_executor = Executor()
        _default_pid = os.getpid()
    return _default_executor


def get_executor(loop: asyncio.AbstractEventLoop | None = None) -> Executor:
    """The `Executor` that `to_thread` uses on `loop` (default: running loop):
    the loop's default executor if it is an `Executor` (see `install`),
    otherwise a module-level one."""
    if loop is None:
        loop = asyncio.get_running_loop()
    executor = getattr(loop, "_default_executor", None)
    if isinstance(executor, Executor):
        return executor
    executor = _installed.get(loop)
    return executor if executor is not None else _module_executor()


def install(loop: asyncio.AbstractEventLoop | None = None,
            executor: Executor | None = None, patch: bool = False) -> Executor:
    """Make `loop`'s (default: the running loop's) default executor an
    `aiocancel.Executor`, and return it.

    Existing ``asyncio.to_thread(...)`` and ``loop.run_in_executor(None, ...)``
    calls then run in MASKED state on cancellable workers, and cancelling the
    awaiting task cancels the running job: asyncio's ``wrap_future`` calls
    ``cancel()`` on the executor's future, which sends the request.

    Unlike `to_thread`, asyncio releases the awaiting task at once rather than
    waiting for the worker, so a result that the job produced anyway is
    dropped (the worker is still freed as soon as the job reaches a
    cancellation point). Prefer `aiocancel.to_thread` where results matter.

    ``patch=True`` also calls `aiocancel.patch()`, so that the stdlib calls
    jobs make (``time.sleep``, socket methods, ``queue.Queue.get``...) are
    cancellation points too.
    """
    if patch:
        from ._patch import patch as _patch_stdlib
        _patch_stdlib()
    if loop is None:
        loop = asyncio.get_running_loop()
    if executor is None:
        executor = Executor()
    previous = getattr(loop, "_default_executor", None)
    loop.set_default_executor(executor)
    _installed[loop] = executor
    if previous is not None and previous is not executor:
        previous.shutdown(wait=False)
    return executor


class _LoopJob(Job):
    """A job whose completion wakes a coroutine on an event loop."""

    __slots__ = ("loop", "waiter", "abandoned", "on_abandoned")

    def _finish(self) -> None:
        if self.abandoned:
            self._release()
            return
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except RuntimeError:       # the loop is closed: nobody will collect
            self._release()

    def _wake(self) -> None:
        # Runs on the loop, after the coroutine may have given up on the job.
        if self.abandoned:
            self._release()
        elif not self.waiter.done():
            self.waiter.set_result(None)

    def _release(self) -> None:
        if self.exc is None and self.result is not None:
            callback = self.on_abandoned
            if callback is not None:
                callback(self.result)
        self.result = self.exc = None


def _rearm(task: asyncio.Task, count: int, msg: Any) -> None:
    """Keep a cancellation that the job's result overtook pending.

    Scheduled with call_soon, so it runs once the task has reached its next
    suspension; if meanwhile the canceller withdrew (asyncio.timeout's exit
    calls uncancel), the request is gone and nothing is re-armed."""
    if not task.done() and task.cancelling() >= count:
        task.uncancel()
        task.cancel(msg)


async def to_thread(func: Callable[..., T], /, *args: Any,
                    abandon_on_cancel: bool = False,
                    on_abandoned_result: Callable[[Any], object] | None = close_abandoned,
                    **kwargs: Any) -> T:
    """Run ``func(*args, **kwargs)`` on a cancellable worker and await it.

    Same signature and contextvars behaviour as ``asyncio.to_thread``. The job
    runs in MASKED state: the `aiocancel.syscalls` calls it makes (and
    `aiocancel.testcancel`) are cancellation points.

    When the awaiting task is cancelled, the request goes to the worker and
    the task keeps waiting for it (more cancels just count); then:

    * the job ended cancelled (raised `Cancelled`, or raised anything after a
      cancellation point acted): the task gets the original
      ``CancelledError`` (its message kept, the job's exception chained), so
      ``asyncio.timeout`` and ``TaskGroup`` see an ordinary cancellation;
    * the job finished anyway (its syscall returned first): its result is
      returned, or its exception raised, and the cancellation stays pending:
      the task's next suspension raises ``CancelledError``. Nothing the kernel
      produced is lost.

    With ``abandon_on_cancel=True`` the task does not wait: it raises
    ``CancelledError`` at once, the request is still sent (so the worker is
    freed), and a result that arrives anyway is passed to
    ``on_abandoned_result`` (default: closed if it is a socket, a file or an
    ``(fd, address)`` pair; None to drop it).
    """
    loop = asyncio.get_running_loop()
    job = _LoopJob(contextvars.copy_context().run, (func, *args), kwargs)
    job.loop = loop
    job.abandoned = False
    job.on_abandoned = on_abandoned_result
    job.waiter = waiter = loop.create_future()
    get_executor(loop).submit_job(job)
    cancelled: asyncio.CancelledError | None = None
    try:
        await waiter
    except asyncio.CancelledError as exc:
        cancelled = exc
        if job.state != DONE:
            job.cancel()
            if abandon_on_cancel:
                job.abandoned = True
                raise
            while job.state != DONE:
                # The task is not released before the worker is: further
                # cancels only raise the task's cancelling() count.
                job.waiter = loop.create_future()
                try:
                    await job.waiter
                except asyncio.CancelledError:
                    pass
    if job.ended_cancelled():
        exc = job.exc
        job.exc = None
        if cancelled is None:      # e.g. the executor was shut down
            cancelled = asyncio.CancelledError()
        raise cancelled from exc
    if cancelled is not None:
        task = asyncio.current_task()
        if task is not None:
            loop.call_soon(_rearm, task, task.cancelling(), cancelled.args[0]
                           if cancelled.args else None)
    if job.exc is not None:
        exc, job.exc = job.exc, None
        raise exc
    return job.result
