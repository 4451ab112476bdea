"""anyio's asyncio backend (asyncio and uvloop loops) on aiocancel workers."""
from __future__ import annotations

import asyncio
import math
from contextvars import Context
from typing import Any, Callable, TypeVar

from ._compat import require

require()

from anyio._backends import _asyncio as _anyio_asyncio  # noqa: E402
from anyio._core._eventloop import claim_worker_thread, threadlocals  # noqa: E402

from .._loop import _rearm  # noqa: E402
from ._job import AnyioJob, WorkerBackend, worker_context  # noqa: E402
from ._pool import get_executor  # noqa: E402

__all__ = ["AsyncIOBackend", "run_in_worker"]

T = TypeVar("T")


class _AsyncioJob(AnyioJob):
    __slots__ = ("loop", "waiter")
    loop: asyncio.AbstractEventLoop
    waiter: asyncio.Future[None]

    def _to_loop(self, callback: Callable[[], None]) -> None:
        self.loop.call_soon_threadsafe(callback)

    def _wake(self) -> None:
        # The waiter is cancelled along with the task that awaits it.
        if not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self) -> None:
        self.waiter = self.loop.create_future()
        await self.waiter


def _call(backend: type, loop: asyncio.AbstractEventLoop, scope: Any,
          context: Context, func: Callable[..., T], args: tuple[Any, ...]) -> T:
    # What anyio's own WorkerThread sets up: the token that from_thread.run /
    # run_sync use to reach the loop, and the scope that check_cancelled and
    # from_thread.run's tasks hang below.
    with claim_worker_thread(backend, loop):
        threadlocals.current_cancel_scope = scope
        try:
            return context.run(func, *args)
        finally:
            del threadlocals.current_cancel_scope


def _keep_pending(backend: Any, cancelled: asyncio.CancelledError) -> None:
    """The job's result overtook a cancellation that was swallowed to wait
    for it: make sure the task's next checkpoint still raises."""
    if backend.current_effective_deadline() == -math.inf:
        return          # an anyio scope is cancelled: anyio delivers it again
    task = asyncio.current_task()
    if task is not None:   # a native Task.cancel(): asyncio does not repeat it
        task.get_loop().call_soon(_rearm, task, task.cancelling(),
                                  cancelled.args[0] if cancelled.args else None)


async def run_in_worker(backend: Any, func: Callable[..., T], args: tuple[Any, ...],
                        abandon_on_cancel: bool, limiter: Any,
                        on_abandoned: Callable[[Any], object] | None) -> T:
    """`run_sync_in_worker_thread` for `backend` (an asyncio backend class);
    `on_abandoned` receives a result that arrives after the task left."""
    await backend.checkpoint()
    loop = asyncio.get_running_loop()
    if limiter is None:
        limiter = backend.current_default_thread_limiter()
    job = _AsyncioJob(_call, (), limiter, on_abandoned)
    job.loop = loop
    await limiter.acquire_on_behalf_of(job)
    cancelled: asyncio.CancelledError | None = None
    with backend.create_cancel_scope() as scope:
        job.args = (backend, loop, scope, worker_context(), func, args)
        job.waiter = loop.create_future()
        try:
            get_executor().submit_job(job)
        except BaseException:
            limiter.release_on_behalf_of(job)
            raise
        try:
            await job.waiter
        except asyncio.CancelledError as exc:
            cancelled = exc
            if job.cancel() and abandon_on_cancel:
                job.abandoned = True
                raise
            # Wait for the worker, which the request frees at its next
            # cancellation point; later cancellations only add to the count.
            with backend.create_cancel_scope(shield=True):
                while not job.delivered:
                    try:
                        await job.wait()
                    except asyncio.CancelledError:
                        pass
    if cancelled is not None:
        if job.ended_cancelled():
            cause, job.exc = job.exc, None
            raise cancelled from cause
        _keep_pending(backend, cancelled)
    result: T = job.take()
    return result


class AsyncIOBackend(WorkerBackend, _anyio_asyncio.backend_class):  # type: ignore[misc, valid-type, unused-ignore]
    """anyio's asyncio backend (asyncio and uvloop loops) with aiocancel
    worker threads (see `WorkerBackend`)."""

    run_in_worker = staticmethod(run_in_worker)
