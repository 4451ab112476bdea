"""anyio's trio backend on aiocancel workers."""
from __future__ import annotations

import inspect
from contextvars import Context
from typing import Any, Callable, TypeVar

from ._compat import require_trio

require_trio()

import outcome  # noqa: E402
import trio  # noqa: E402
from anyio._backends import _trio as _anyio_trio  # noqa: E402
from anyio._core._eventloop import claim_worker_thread  # noqa: E402
from trio._threads import PARENT_TASK_DATA, Run, RunSync  # noqa: E402

from ._job import AnyioJob, WorkerBackend, worker_context  # noqa: E402
from ._pool import pool_for  # noqa: E402

__all__ = ["TrioBackend", "run_in_worker"]

T = TypeVar("T")

class _TrioJob(AnyioJob):
    __slots__ = ("token", "task_register")
    token: trio.lowlevel.TrioToken
    task_register: list[Any]
    loop_gone = (trio.RunFinishedError,)

    def _to_loop(self, callback: Callable[[], None]) -> None:
        self.token.run_sync_soon(callback)

    def _wake(self) -> None:
        # Value(None) means "done"; trio.from_thread sends Run/RunSync.
        task, self.task_register[0] = self.task_register[0], None
        if task is not None:
            trio.lowlevel.reschedule(task, outcome.Value(None))

    def _gave_up(self) -> None:
        # Watchdog thread: the grace period is over; release the task.
        try:
            self.token.run_sync_soon(self._wake)
        except trio.RunFinishedError:
            pass


async def _keep_pool(retire: Callable[[], None]) -> None:
    # A system task: cancelled when the run ends, which retires the pool.
    try:
        await trio.sleep_forever()
    finally:
        retire()


def worker_pool() -> Any:
    """The running trio run's pool (shut down when the run ends)."""
    return pool_for(trio.lowlevel.current_trio_token(),
                    lambda retire: trio.lowlevel.spawn_system_task(_keep_pool, retire))


def _call(backend: type, token: trio.lowlevel.TrioToken, abandon: bool,
          cancel_register: list[Any], task_register: list[Any], context: Context,
          func: Callable[..., T], args: tuple[Any, ...]) -> T:
    # What trio.to_thread.run_sync gives its threads (trio.from_thread.run /
    # run_sync / check_cancelled read it), plus anyio's token.
    data = PARENT_TASK_DATA
    data.token = token
    data.abandon_on_cancel = abandon
    data.cancel_register = cancel_register
    data.task_register = task_register
    try:
        with claim_worker_thread(backend, token):
            ret = context.run(func, *args)
        if inspect.iscoroutine(ret):
            ret.close()
            raise TypeError(
                "Trio expected a sync function, but {!r} appears to be "
                "asynchronous".format(getattr(func, "__qualname__", func)))
        return ret
    finally:
        del data.token, data.abandon_on_cancel, data.cancel_register, data.task_register


@trio.lowlevel.enable_ki_protection
async def run_in_worker(backend: Any, func: Callable[..., T], args: tuple[Any, ...],
                        abandon_on_cancel: bool, limiter: Any,
                        on_abandoned: Callable[[Any], object] | None) -> T:
    """`run_sync_in_worker_thread` for `backend` (a trio backend class);
    `on_abandoned` receives a result that arrives after the task left."""
    await trio.lowlevel.checkpoint_if_cancelled()
    abandon = bool(abandon_on_cancel)
    if limiter is None:
        limiter = backend.current_default_thread_limiter()
    # task_register[0] is the task to wake, None once it was woken or left;
    # cancel_register[0] raises the cancellation once one was delivered.
    task_register: list[Any] = [trio.lowlevel.current_task()]
    cancel_register: list[Any] = [None]
    token = trio.lowlevel.current_trio_token()
    job = _TrioJob(_call, (backend, token, abandon, cancel_register, task_register,
                           worker_context(), func, args), limiter, on_abandoned)
    job.token = token
    job.task_register = task_register
    job.target = func

    pool = worker_pool()

    def abort(raise_cancel: Callable[[], Any]) -> trio.lowlevel.Abort:
        cancel_register[0] = raise_cancel
        job.request_cancel(pool._grace)
        if abandon or job.withdrawn:
            task_register[0] = None
            return trio.lowlevel.Abort.SUCCEEDED
        # Keep waiting, at most the grace period (`_gave_up`): the request
        # frees the worker at its next cancellation point.
        return trio.lowlevel.Abort.FAILED

    await limiter.acquire_on_behalf_of(job)
    try:
        pool.submit_job(job)
    except BaseException:
        limiter.release_on_behalf_of(job)
        raise
    try:
        while True:
            message = await trio.lowlevel.wait_task_rescheduled(abort)
            if message is None:
                break
            # trio.from_thread.run / run_sync from the job, run in this task as
            # trio.to_thread.run_sync does (so they see its cancel scopes).
            if isinstance(message, Run):
                await message.run()
            elif isinstance(message, RunSync):
                message.run_sync()
            else:  # pragma: no cover - trio sends nothing else
                raise TypeError(f"unexpected message from a worker: {message!r}")
    except BaseException:          # the abort succeeded (abandon), or a Run failed
        job.cancel()
        task_register[0] = None
        job.abandon()
        raise
    raise_cancel = cancel_register[0]
    if raise_cancel is not None:
        # Cancelled: the rule of aiocancel._outcome (a result that came
        # anyway goes to on_abandoned; the cancellation is raised).
        cause, job.exc = job.exc, None
        job.abandon()
        try:
            raise_cancel()
        except BaseException as cancelled:
            cancelled.__cause__ = cause
            raise
    result: T = job.take()
    return result


class TrioBackend(WorkerBackend, _anyio_trio.backend_class):  # type: ignore[misc, valid-type, unused-ignore]
    """anyio's trio backend with aiocancel worker threads (see
    `WorkerBackend`): cancellation raises ``trio.Cancelled``."""

    run_in_worker = staticmethod(run_in_worker)
    worker_pool = staticmethod(worker_pool)
