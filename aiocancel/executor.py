"""`Executor`: a ThreadPoolExecutor whose futures can cancel running jobs."""
from __future__ import annotations

import queue
import threading
import weakref
from concurrent.futures import Future
from concurrent.futures import _base
from concurrent.futures import thread as _thread
from concurrent.futures._base import CANCELLED_AND_NOTIFIED, RUNNING
from concurrent.futures.thread import BrokenThreadPool, ThreadPoolExecutor
from typing import Any, Callable, ParamSpec, TypeVar

from . import _drivers
from . import transparent as _transparent
from ._backend import cancel as _cancel
from ._job import Job

__all__ = ["Executor", "JobFuture"]

T = TypeVar("T")
P = ParamSpec("P")


class JobFuture(Future[Any]):
    """The future of an `Executor` job.

    `cancel()` also works while the job runs: it sends the cancel request to
    the worker and returns True. The future then ends cancelled (``cancelled()``
    True, ``result()`` raises ``concurrent.futures.CancelledError``) if the
    job ended cancelled (it raised `Cancelled`/`ThreadCancelled`, or raised
    anything after one of its cancellation points reported ECANCELED), or
    with the job's own result or exception if the job finished first.
    `cancel()` returns False once the future is done.
    """

    _job: "_FutureJob"

    def cancel(self) -> bool:
        with self._condition:
            if self._state == RUNNING:
                return Job.cancel(self._job)
        return super().cancel()

    def _end_cancelled(self) -> None:
        # RUNNING -> CANCELLED_AND_NOTIFIED directly: nobody will call
        # set_running_or_notify_cancel again, so notify waiters here.
        with self._condition:
            self._state = CANCELLED_AND_NOTIFIED
            for waiter in self._waiters:
                waiter.add_cancelled(self)
            self._condition.notify_all()
        self._invoke_callbacks()  # type: ignore[attr-defined]  # Future's private


class _FutureJob(Job):
    __slots__ = ("future",)
    handoff_finish = False     # set_result runs the future's done-callbacks

    def __init__(self, future: JobFuture, fn: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
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


class _IdleCount:
    """Workers waiting for a job, or about to, minus jobs queued: the pool's
    ``_idle_semaphore``. A submit takes one and starts a thread if none was
    there; a worker adds one before each dequeue; a new thread is counted
    when started.

    Exact, unlike concurrent.futures' count of idle workers: there, a busy
    worker that picks up a queued job takes it from the idle worker whose
    count the job's submit had consumed; that worker then waits uncounted
    and the next submit starts a surplus thread. With max_workers as the
    only bound that is harmless, but the unbounded anyio pool grew to
    thousands of threads for 64 concurrent calls. A plain lock around an
    int costs little (the semaphore's Condition was the expensive part)."""

    __slots__ = ("_n", "_lock")

    def __init__(self) -> None:
        self._n = 0
        self._lock = threading.Lock()

    def release(self) -> None:
        """A worker is about to dequeue (or a thread was started)."""
        with self._lock:
            self._n += 1

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """A job was queued: whether a worker is there for it (never blocks;
        if not, the count stays owed until a thread starts or a worker
        frees)."""
        with self._lock:
            self._n -= 1
            return self._n >= 0


def _work(executor_ref: "weakref.ref[Executor]", work_queue: queue.SimpleQueue[Any],
          idle: _IdleCount, initializer: Callable[..., object] | None,
          initargs: tuple[Any, ...]) -> None:
    """A worker's loop: concurrent.futures' own, except that the worker
    counts itself idle (releases `idle`) as soon as its job's outcome exists,
    before the job wakes whoever waits for it (`Executor._job_ending`): a
    caller that submits again right away reuses this worker instead of
    starting another thread."""
    if initializer is not None:
        try:
            initializer(*initargs)
        except BaseException:
            _base.LOGGER.critical("Exception in initializer:", exc_info=True)
            executor = executor_ref()
            if executor is not None:
                executor._initializer_failed()
            return
    counted = True         # counted already for the coming dequeue (a new
    try:                   # thread: by the submit that started it)
        while True:
            if not counted:
                idle.release()
            job = work_queue.get(block=True)
            if job is not None:
                try:
                    job.run()
                except Exception:      # a delivery bug must not kill the worker
                    _base.LOGGER.critical("Exception delivering a job",
                                          exc_info=True)
                counted = job.counted
                del job
                continue
            counted = True         # a wake-up that consumed no idle count
            executor = executor_ref()
            if _thread._shutdown or executor is None or executor._shutdown:
                if executor is not None:
                    executor._shutdown = True
                work_queue.put(None)      # wake the next worker
                return
            del executor
    except BaseException:
        _base.LOGGER.critical("Exception in worker", exc_info=True)


class Executor(ThreadPoolExecutor):
    """A drop-in `concurrent.futures.ThreadPoolExecutor` with cancellable jobs.

    Every job runs on a worker registered for cancellation, in MASKED state,
    under a fresh job generation (a request meant for one job never hits the
    next): the `aiocancel.syscalls` calls it makes are cancellation points.
    Accepted by ``loop.set_default_executor`` (see `aiocancel.install`).

    The futures it returns are `JobFuture`: ``cancel()`` also cancels a
    running job. ``shutdown(cancel_futures=True)`` cancels running jobs as
    well as queued ones, so it returns promptly when the jobs block in
    cancellable calls.

    ``transparent=True`` runs the workers in transparent mode: blocking
    syscalls inside foreign C code (OpenSSL, C extensions) are cancellation
    points too; see `aiocancel.transparent`.
    """

    def __init__(self, max_workers: int | None = None,
                 thread_name_prefix: str = "",
                 initializer: Callable[..., object] | None = None,
                 initargs: tuple[Any, ...] = (), *, transparent: bool = False) -> None:
        if max_workers is not None and not isinstance(max_workers, int):
            # ThreadPoolExecutor takes floats; NaN then starts no worker and
            # every job waits forever.
            raise TypeError(f"max_workers must be an int or None, not "
                            f"{type(max_workers).__name__}")
        _drivers.activate()    # psycopg & co. cancelled their own way
        self._transparent = transparent
        if transparent:
            initializer = _transparent.initializer(initializer)
        super().__init__(max_workers, thread_name_prefix or "aiocancel",
                         initializer, initargs)
        self._job_init = (initializer, initargs)
        # typeshed: a Semaphore; ours counts idle workers the same way.
        self._idle_semaphore = _IdleCount()  # type: ignore[assignment]
        # Set by shutdown(cancel_futures=True); Job.run checks it after
        # RUNNING, which reaches jobs dequeued before the shutdown.
        self._cancel_running = False

    def submit(self, fn: Callable[P, T], /, *args: P.args,
               **kwargs: P.kwargs) -> "Future[T]":
        """Schedule ``fn(*args, **kwargs)``; return a `JobFuture`."""
        future = JobFuture()
        self.submit_job(_FutureJob(future, fn, args, kwargs))
        return future

    def submit_job(self, job: Job) -> None:
        """Queue a `Job` (the front ends' entry point: one future fewer per
        call than `submit`). Raises RuntimeError after shutdown and
        BrokenThreadPool if a worker initializer failed."""
        with self._shutdown_lock, _thread._global_shutdown_lock:
            if self._broken:
                raise BrokenThreadPool(self._broken)
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if _thread._shutdown:
                raise RuntimeError("cannot schedule new futures after "
                                   "interpreter shutdown")
            job.pool = self
            # typeshed types the queue's items as _WorkItem; ours hold Jobs.
            self._work_queue.put(job)  # type: ignore[arg-type]
            self._adjust_thread_count()

    def _job_ending(self) -> bool:
        """Worker side, between a job's end and its delivery: count this
        worker for its next dequeue now, so that a caller who submits again
        at once finds it. Returns True (the worker loop then skips its own
        count)."""
        self._idle_semaphore.release()
        return True

    def _adjust_thread_count(self) -> None:
        if self._idle_semaphore.acquire(timeout=0):
            return

        def weakref_cb(_: object, q: queue.SimpleQueue[Any] = self._work_queue) -> None:
            q.put(None)

        num_threads = len(self._threads)
        if num_threads < self._max_workers:
            initializer, initargs = self._job_init
            t = threading.Thread(
                name=f"{self._thread_name_prefix}_{num_threads}", target=_work,
                args=(weakref.ref(self, weakref_cb), self._work_queue,
                      self._idle_semaphore, initializer, initargs))
            self._idle_semaphore.release()     # counts the new thread
            t.start()
            self._threads.add(t)  # type: ignore[attr-defined]  # a set at run time
            # concurrent.futures joins these at interpreter exit.
            _thread._threads_queues[t] = self._work_queue  # type: ignore[index]

    def _drain(self, exc: BaseException | None) -> None:
        # Called with _shutdown_lock held: no submit can interleave.
        while True:
            try:
                job = self._work_queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(job, Job):
                self._idle_semaphore.release()   # dequeued, not by a worker
                job.pool = None        # not run by a worker: no idle count
                if exc is None:
                    job.cancel()
                    job.run()          # delivers "cancelled before start"
                else:
                    job.fail(exc)

    def _initializer_failed(self) -> None:
        with self._shutdown_lock:
            self._broken = ("A thread initializer failed, the thread pool is "  # type: ignore[assignment]
                            "not usable anymore")
            self._drain(BrokenThreadPool(self._broken))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """As ThreadPoolExecutor.shutdown; with ``cancel_futures=True`` the
        jobs already running get a cancel request too, so that ``wait=True``
        returns as soon as they reach a cancellation point."""
        with self._shutdown_lock:
            self._shutdown = True
            if cancel_futures:
                self._cancel_running = True
                self._drain(None)
                for thread in list(self._threads):
                    # Reaches the job a worker is running. An idle worker is
                    # in DISABLE: the flag is cleared at its next job_begin,
                    # and its futex wait just restarts.
                    if thread.ident is not None:
                        _cancel.cancel_thread(thread.ident)
            self._work_queue.put(None)  # type: ignore[arg-type]  # the stop marker
        if wait:
            for thread in list(self._threads):
                thread.join()
