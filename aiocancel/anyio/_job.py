"""The job an anyio backend runs on an aiocancel worker, and the backend
mixin that starts it.

Both backends share the life cycle: the task borrows a limiter token on the
job's behalf, a worker runs the job in MASKED state, and the job's end is
handed to the event loop thread, which either wakes the waiting task or, if
the task left (cancelled: `aiocancel._outcome`'s rule), passes the late
result to ``on_abandoned_result``. The token is returned as the backend
replaced returns it (`token_with_task`): on asyncio when the task leaves,
on trio when the worker is done.
"""
from __future__ import annotations

import contextvars
from typing import Any, Awaitable, Callable, ClassVar, TypeVar

from .._job import Job
from .._outcome import call_abandoned, close_abandoned

__all__ = ["AnyioJob", "WorkerBackend", "worker_context"]

T = TypeVar("T")


def worker_context() -> contextvars.Context:
    """A copy of the caller's context in which no async library is current,
    as anyio gives its worker threads (sniffio would otherwise see the
    loop's library from inside the thread)."""
    context = contextvars.copy_context()
    try:
        import sniffio
    except ImportError:        # optional since anyio 4.12
        return context
    context.run(sniffio.current_async_library_cvar.set, None)
    return context


class AnyioJob(Job):
    """A job whose end is delivered to an anyio event loop.

    Subclasses say how to reach the loop from the worker (`_to_loop`, with
    `loop_gone` the exceptions meaning the loop has ended) and how to wake
    the waiting task (`_wake`)."""

    __slots__ = ("limiter", "abandoned", "delivered", "on_abandoned")
    loop_gone: tuple[type[BaseException], ...] = (RuntimeError,)
    # True: the task returns the limiter token when it leaves (anyio's
    # asyncio backend); False: the job's delivery does (trio's).
    token_with_task: ClassVar[bool] = False

    def __init__(self, call: Callable[..., Any], args: tuple[Any, ...], limiter: Any,
                 on_abandoned: Callable[[Any], object] | None) -> None:
        super().__init__(call, args, {})
        self.limiter = limiter
        self.abandoned = False
        self.delivered = False
        self.on_abandoned = on_abandoned

    def _to_loop(self, callback: Callable[[], None]) -> None:
        raise NotImplementedError

    def _wake(self) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        try:
            self._to_loop(self._deliver)
        except self.loop_gone:     # nobody is left to collect the job
            self._drop()

    def _deliver(self) -> None:
        # On the loop thread, where the task also sets `abandoned`: no race.
        self.delivered = True
        try:
            if not self.token_with_task:
                self.limiter.release_on_behalf_of(self)
        finally:
            if self.abandoned:
                self._drop()
            else:
                self._wake()

    def abandon(self) -> None:
        """The task leaves (loop thread): what the job produces goes to
        `on_abandoned`, now if it was delivered already."""
        self.abandoned = True
        if self.delivered:
            self._drop()

    def _drop(self) -> None:
        result, self.result, self.exc = self.result, None, None
        call_abandoned(self.on_abandoned, result)

    def take(self) -> Any:
        """The job's result, or raise its exception (handing it over once)."""
        exc, self.exc = self.exc, None
        if exc is not None:
            raise exc
        result, self.result = self.result, None
        return result


class WorkerBackend:
    """Mixin that puts an anyio backend's worker threads on aiocancel.

    ``anyio.to_thread.run_sync(func, *args)`` (``run_sync_in_worker_thread``)
    runs ``func`` on an aiocancel worker in MASKED state, so its
    `aiocancel.syscalls` calls and `aiocancel.testcancel` are cancellation
    points. When the enclosing cancel scope is cancelled, the request goes
    to the worker and the task waits for it, at most the grace period (see
    `aiocancel.anyio.install`), then raises the backend's cancellation
    exception; a result the call produced anyway is dropped, as anyio drops
    an abandoned thread's result. With ``abandon_on_cancel=True`` the task
    does not wait; the request is still sent. The limiter token is returned
    as the replaced backend returns it (asyncio: when the task leaves; trio:
    when the worker is done). ``anyio.from_thread`` (and, on trio,
    ``trio.from_thread``) works as in the backend's own worker threads.

    The backend class supplies ``run_in_worker(backend, func, args,
    abandon_on_cancel, limiter, on_abandoned)`` and ``worker_pool()`` (the
    running event loop's `aiocancel.Executor`).
    """

    run_in_worker: ClassVar[Callable[..., Awaitable[Any]]]
    worker_pool: ClassVar[Callable[[], Any]]

    @classmethod
    async def run_sync_in_worker_thread(cls, func: Callable[..., T], args: tuple[Any, ...],
                                        abandon_on_cancel: bool = False,
                                        limiter: Any = None) -> T:
        # anyio's API has no on_abandoned_result: the default applies (it
        # closes only sockets and file objects).
        result: T = await cls.run_in_worker(cls, func, args, abandon_on_cancel, limiter,
                                            close_abandoned)
        return result

    @classmethod
    async def aiocancel_run_sync(cls, func: Callable[..., T], args: tuple[Any, ...],
                                 abandon_on_cancel: bool, limiter: Any,
                                 on_abandoned: Callable[[Any], object] | None) -> T:
        """`aiocancel.anyio.run_sync` on this backend."""
        result: T = await cls.run_in_worker(cls, func, args, abandon_on_cancel, limiter,
                                            on_abandoned)
        return result
