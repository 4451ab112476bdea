"""`Executor`: a ThreadPoolExecutor whose futures can cancel running jobs."""
from __future__ import annotations

import itertools
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
from ._core import cancel as _cancel
from ._job import DONE, Job
from ._outcome import DEFAULT_GRACE, call_abandoned, check_grace, close_abandoned

__all__ = ["Executor", "JobFuture", "IDLE_TIMEOUT"]

# An idle worker exits after this many seconds, as anyio's own workers do:
# a burst of jobs does not leave its threads behind.
IDLE_TIMEOUT = 10.0

T = TypeVar("T")
P = ParamSpec("P")


class _LateResult:
    """What a future whose running job was asked to cancel may still
    produce: handed to `close_abandoned` if nobody takes it (the
    ``install()`` case: asyncio dropped the cancelled task's future)."""

    __slots__ = ("result",)

    def __init__(self) -> None:
        self.result: Any = None

    def release(self) -> None:
        result, self.result = self.result, None
        call_abandoned(close_abandoned, result)


class JobFuture(Future[Any]):
    """The future of an `Executor` job.

    `cancel()` follows ``concurrent.futures``: True (and the job never runs)
    for a pending job, False for a running or finished one. For a running
    job it still sends the cancel request to the worker, so the job ends at
    its next cancellation point: the future then ends with the job's own
    outcome, the `aiocancel.Cancelled` error it raised or the result it
    produced first; ``if not f.cancel(): f.result()`` never drops a result.
    A running job that ``shutdown(cancel_futures=True)`` ended cancelled
    leaves its future cancelled (``cancelled()`` True).
    A result that nobody takes from such a future (``install()`` +
    ``asyncio.to_thread``: asyncio drops a cancelled task's future) is
    passed to `aiocancel.close_abandoned` when the future is collected.
    A running job still busy `grace` seconds (the pool's) after the request
    is reported on the ``aiocancel`` logger and its worker replaced.
    """

    _job: "_FutureJob"
    _late: _LateResult | None = None
    _cancel_sent = False

    def cancel(self) -> bool:
        with self._condition:
            running = self._state == RUNNING
        if not running:
            return super().cancel()
        self._cancel_sent = True
        job = self._job
        if job.state != DONE and self._late is None:
            self._late = late = _LateResult()
            weakref.finalize(self, late.release)
        pool = job.pool
        job.request_cancel(pool._grace if pool is not None else DEFAULT_GRACE)
        return False

    def _end_cancelled(self) -> None:
        # A running job that shutdown(cancel_futures=True) cancelled (no
        # cancel() call returned False for it): RUNNING -> CANCELLED_AND_NOTIFIED
        # directly; nobody will call set_running_or_notify_cancel again, so
        # notify waiters here.
        with self._condition:
            self._state = CANCELLED_AND_NOTIFIED
            for waiter in self._waiters:
                waiter.add_cancelled(self)
            self._condition.notify_all()
        self._invoke_callbacks()  # type: ignore[attr-defined]  # Future's private

    def result(self, timeout: float | None = None) -> Any:
        late = self._late
        if late is not None:
            late.result = None     # taken: not abandoned
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        late = self._late
        if late is not None:
            late.result = None
        return super().exception(timeout)


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
        if self.exc is not None:
            if not future._cancel_sent and self.ended_cancelled():
                future._end_cancelled()
            else:
                future.set_exception(self.exc)
        else:
            late = future._late
            if late is not None:
                late.result = self.result
            future.set_result(self.result)
        self.exc = self.result = None   # the future holds them


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
          initargs: tuple[Any, ...], idle_timeout: float) -> None:
    """A worker's loop: concurrent.futures' own, except that

    * the worker counts itself idle (releases `idle`) as soon as its job's
      outcome exists, before the job wakes whoever waits for it
      (`Executor._job_ending`): a caller that submits again right away
      reuses this worker instead of starting another thread;
    * it exits after `idle_timeout` seconds without a job (`_retire`);
    * it exits after a job whose grace period ran out (`Job.detached`): the
      pool started a replacement while it was stuck."""
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
            try:
                job = work_queue.get(block=True, timeout=idle_timeout)
            except queue.Empty:
                executor = executor_ref()
                if executor is None or executor._retire():
                    return
                del executor
                counted = True     # still counted: nothing was dequeued
                continue
            if job is not None:
                try:
                    job.run()
                except Exception:      # a delivery bug must not kill the worker
                    _base.LOGGER.critical("Exception delivering a job",
                                          exc_info=True)
                if job.detached:
                    executor = executor_ref()
                    if executor is not None:
                        executor._replaced()
                    return
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

    The futures it returns are `JobFuture`: ``cancel()`` returns False for a
    running job, as the stdlib's does, but still sends the cancel request
    to it. ``shutdown(cancel_futures=True)`` cancels running jobs as well as
    queued ones, so it returns promptly when the jobs block in cancellable
    calls.

    ``grace`` (seconds, or None for no bound; default
    `aiocancel.DEFAULT_GRACE`) is how long a cancelled running job may keep
    its worker before it counts as stuck: a warning on the ``aiocancel``
    logger names it and shows the worker's stack, the worker stops counting
    toward `max_workers` (another is started), and `aiocancel.to_thread`
    callers stop waiting for it. It is the default of `aiocancel.to_thread`
    on this pool.

    Threads are named as the stdlib names them (``ThreadPoolExecutor-<pool>_<n>``
    unless `thread_name_prefix` is given); a worker idle for 10 s exits, as
    anyio's do. An Executor dropped without ``shutdown()`` lets its workers
    exit once it is collected.

    ``transparent=True`` runs the workers in transparent mode: blocking
    syscalls inside foreign C code (OpenSSL, C extensions) are cancellation
    points too; see `aiocancel.transparent`.
    """

    def __init__(self, max_workers: int | None = None,
                 thread_name_prefix: str = "",
                 initializer: Callable[..., object] | None = None,
                 initargs: tuple[Any, ...] = (), *, transparent: bool = False,
                 grace: float | None = DEFAULT_GRACE) -> None:
        if max_workers is not None and not isinstance(max_workers, int):
            # ThreadPoolExecutor takes floats; NaN then starts no worker and
            # every job waits forever.
            raise TypeError(f"max_workers must be an int or None, not "
                            f"{type(max_workers).__name__}")
        _drivers.activate()    # psycopg & co. cancelled their own way
        self._grace = check_grace(grace)
        self._transparent = transparent
        if transparent:
            initializer = _transparent.initializer(initializer)
        super().__init__(max_workers, thread_name_prefix, initializer, initargs)
        self._job_init = (initializer, initargs)
        # typeshed: a Semaphore; ours counts idle workers the same way.
        self._idle_semaphore = _IdleCount()  # type: ignore[assignment]
        # Set by shutdown(cancel_futures=True); Job.run checks it after
        # RUNNING, which reaches jobs dequeued before the shutdown.
        self._cancel_running = False
        self._idle_timeout = IDLE_TIMEOUT
        self._thread_numbers = itertools.count()
        self._stuck = 0            # detached workers, not counted in max_workers

    @property
    def grace(self) -> float | None:
        """The pool's grace period (seconds, None: unbounded)."""
        return self._grace

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

    def _withdrawn(self) -> None:
        """A queued job was withdrawn (`Job.cancel`): it needs no worker."""
        self._idle_semaphore.release()

    def _adjust_thread_count(self) -> None:
        if self._idle_semaphore.acquire(timeout=0):
            return
        self._start_worker()

    def _start_worker(self) -> None:
        # With _shutdown_lock held; a job is owed a worker.
        def weakref_cb(_: object, q: queue.SimpleQueue[Any] = self._work_queue) -> None:
            q.put(None)

        if len(self._threads) - self._stuck < self._max_workers:
            initializer, initargs = self._job_init
            t = threading.Thread(
                name=f"{self._thread_name_prefix or self}_{next(self._thread_numbers)}",
                target=_work,
                args=(weakref.ref(self, weakref_cb), self._work_queue,
                      self._idle_semaphore, initializer, initargs,
                      self._idle_timeout))
            self._idle_semaphore.release()     # counts the new thread
            t.start()
            self._threads.add(t)  # type: ignore[attr-defined]  # a set at run time
            # concurrent.futures joins these at interpreter exit.
            _thread._threads_queues[t] = self._work_queue  # type: ignore[index]

    @property
    def _idle_count(self) -> _IdleCount:
        # The base class's attribute, typed there as a Semaphore.
        idle: _IdleCount = self._idle_semaphore  # type: ignore[assignment]
        return idle

    def _retire(self) -> bool:
        """Worker side, after `_idle_timeout` s without a job: leave the
        pool if another idle worker covers every queued job (the count
        says so); False: a submit is counting on this worker, stay."""
        idle = self._idle_count
        with self._shutdown_lock:
            with idle._lock:
                if idle._n <= 0:
                    return False
                idle._n -= 1
            self._forget(threading.current_thread())
        return True

    def _forget(self, thread: threading.Thread) -> None:
        self._threads.discard(thread)  # type: ignore[attr-defined]  # a set at run time
        _thread._threads_queues.pop(thread, None)  # type: ignore[attr-defined]

    def _detach(self) -> None:
        """Watchdog side: a worker's job outlived its grace period. It no
        longer counts toward max_workers; a queued job that was waiting for
        it gets a new worker now."""
        with self._shutdown_lock:
            self._stuck += 1
            if self._shutdown:
                return
            idle = self._idle_count
            with idle._lock:
                owed = idle._n < 0
            if owed:
                self._start_worker()

    def _replaced(self) -> None:
        """Worker side: the detached job ended; this worker exits."""
        with self._shutdown_lock:
            self._stuck -= 1
            self._forget(threading.current_thread())
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
