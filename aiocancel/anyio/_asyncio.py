"""anyio's asyncio backend (asyncio and uvloop loops) on aiocancel workers."""
from __future__ import annotations

import asyncio
from contextvars import Context
from typing import Any, Callable, TypeVar

from ._compat import require

require()

from anyio._backends import _asyncio as _anyio_asyncio  # noqa: E402
from anyio._core._eventloop import claim_worker_thread, threadlocals  # noqa: E402

from .._asyncio import AsyncioWaiting, JobWaiter, at_close  # noqa: E402
from ._job import AnyioJob, WorkerBackend, worker_context  # noqa: E402
from ._pool import pool_for  # noqa: E402

__all__ = ["AsyncIOBackend", "run_in_worker"]

T = TypeVar("T")


class _AsyncioJob(AsyncioWaiting, AnyioJob):
    __slots__ = ("loop", "waiter", "timer")
    token_with_task = True     # anyio's asyncio backend: the task returns it

    def _to_loop(self, callback: Callable[[], None]) -> None:
        self.loop.call_soon_threadsafe(callback)

    def _wake(self) -> None:
        # The waiter is cancelled along with the task that awaits it.
        if not self.waiter.done():
            self.waiter.set_result(None)


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


def worker_pool() -> Any:
    """The running loop's pool (shut down when the loop closes)."""
    loop = asyncio.get_running_loop()
    return pool_for(loop, lambda retire: at_close(loop, retire))


async def run_in_worker(backend: Any, func: Callable[..., T], args: tuple[Any, ...],
                        abandon_on_cancel: bool, limiter: Any,
                        on_abandoned: Callable[[Any], object] | None) -> T:
    """`run_sync_in_worker_thread` for `backend` (an asyncio backend class);
    `on_abandoned` receives a result that arrives after the task left."""
    await backend.checkpoint()
    loop = asyncio.get_running_loop()
    if limiter is None:
        limiter = backend.current_default_thread_limiter()
    pool = worker_pool()
    job = _AsyncioJob(_call, (), limiter, on_abandoned)
    job.loop = loop
    job.timer = None
    job.target = func
    await limiter.acquire_on_behalf_of(job)
    try:
        with backend.create_cancel_scope() as scope:
            job.args = (backend, loop, scope, worker_context(), func, args)
            waiter = job.waiter = JobWaiter(loop=loop)
            waiter.job = job
            pool.submit_job(job)
            try:
                await waiter
            except asyncio.CancelledError as cancelled:
                await job.settle(cancelled, pool._grace, abandon_on_cancel)
            except BaseException:
                job.cancel()
                job.abandon()
                raise
            finally:
                waiter.job = None
    finally:
        limiter.release_on_behalf_of(job)
    result: T = job.take()
    return result


class AsyncIOBackend(WorkerBackend, _anyio_asyncio.backend_class):  # type: ignore[misc, valid-type, unused-ignore]
    """anyio's asyncio backend (asyncio and uvloop loops) with aiocancel
    worker threads (see `WorkerBackend`)."""

    run_in_worker = staticmethod(run_in_worker)
    worker_pool = staticmethod(worker_pool)
