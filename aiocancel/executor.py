"""`Executor`: a ThreadPoolExecutor whose futures can cancel running jobs."""
from __future__ import annotations

import queue
from concurrent.futures import Future
from concurrent.futures import thread as _thread
from concurrent.futures._base import CANCELLED_AND_NOTIFIED, RUNNING
from concurrent.futures.thread import BrokenThreadPool, ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from . import transparent as _transparent
from ._backend import cancel as _cancel
from ._job import Job

__all__ = ["Executor", "JobFuture"]

T = TypeVar("T")


class JobFuture(Future):
    """The future of an `Executor` job.

    `cancel()` also works while the job runs: it sends the cancel request to
    the worker and returns True. The future then ends cancelled if the job
    ended cancelled (it raised `Cancelled`/`ThreadCancelled`, or raised after
    one of its cancellation points acted), or with the job's own result or
    exception if the job finished first. `cancel()` returns False once the
    future is done.
    """

    _job: "_FutureJob"

    def cancel(self) -> bool:
        with self._condition:
            if self._state == RUNNING:
                return Job.cancel(self._job)
        return super().cancel()

    def _end_cancelled(self) -> None:
        with self._condition:
            self._state = CANCELLED_AND_NOTIFIED
            for waiter in self._waiters:
                waiter.add_cancelled(self)
            self._condition.notify_all()
        self._invoke_callbacks()


class _FutureJob(Job):
    __slots__ = ("future",)

    def __init__(self, future: JobFuture, fn: Callable[..., Any], args: tuple,
                 kwargs: dict) -> None:
        super().__init__(fn, args, kwargs)
        self.future = future
        future._job = self

    def run(self) -> None:
        if self.future.set_running_or_notify_cancel():
            Job.run(self)

    def cancel(self) -> bool:
        return self.future.cancel()

    def _finish(self) -> None:
        future = self.future
        if self.ended_cancelled():
            future._end_cancelled()
        elif self.exc is not None:
            future.set_exception(self.exc)
        else:
            future.set_result(self.result)
        self.exc = None   # the future holds it; break the traceback cycle


class Executor(ThreadPoolExecutor):
    """A drop-in `concurrent.futures.ThreadPoolExecutor` with cancellable jobs.

    Every job runs on a worker registered for cancellation, in MASKED state,
    under a fresh job generation (a request meant for one job never hits the
    next). Accepted by ``loop.set_default_executor`` (see `aiocancel.install`).

    ``shutdown(cancel_futures=True)`` cancels running jobs as well as queued
    ones, so it returns promptly when jobs block in cancellable calls.

    ``transparent=True`` runs the workers in transparent mode: blocking
    syscalls inside foreign C code (OpenSSL, C extensions) are cancellation
    points too; see `aiocancel.transparent`.
    """

    def __init__(self, max_workers: int | None = None,
                 thread_name_prefix: str = "",
                 initializer: Callable[..., object] | None = None,
                 initargs: tuple = (), *, transparent: bool = False) -> None:
        if transparent:
            initializer = _transparent.initializer(initializer)
        super().__init__(max_workers, thread_name_prefix or "aiocancel",
                         initializer, initargs)

    def submit(self, fn: Callable[..., T], /, *args: Any,
               **kwargs: Any) -> "Future[T]":
        future = JobFuture()
        self.submit_job(_FutureJob(future, fn, args, kwargs))
        return future

    def submit_job(self, job: Job) -> None:
        """Queue a `Job` (the front ends' entry point, one allocation less
        than a future per call)."""
        with self._shutdown_lock, _thread._global_shutdown_lock:
            if self._broken:
                raise BrokenThreadPool(self._broken)
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if _thread._shutdown:
                raise RuntimeError("cannot schedule new futures after "
                                   "interpreter shutdown")
            self._work_queue.put(job)
            self._adjust_thread_count()

    def _drain(self, exc: BaseException | None) -> None:
        # Called with _shutdown_lock held: no submit can interleave.
        while True:
            try:
                job = self._work_queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                if exc is None:
                    job.cancel()
                    job.run()          # delivers "cancelled before start"
                else:
                    job.fail(exc)

    def _initializer_failed(self) -> None:
        with self._shutdown_lock:
            self._broken = ("A thread initializer failed, the thread pool is "
                            "not usable anymore")
            self._drain(BrokenThreadPool(self._broken))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """As ThreadPoolExecutor.shutdown; with ``cancel_futures=True`` the
        jobs already running get a cancel request too."""
        with self._shutdown_lock:
            self._shutdown = True
            if cancel_futures:
                self._drain(None)
                for thread in list(self._threads):
                    # An idle worker is in DISABLE: the flag is cleared at
                    # its next job_begin, and its futex wait just restarts.
                    if thread.ident is not None:
                        _cancel.cancel_thread(thread.ident)
            self._work_queue.put(None)
        if wait:
            for thread in list(self._threads):
                thread.join()
