"""aiocancel.Executor on its own (no event loop): a ThreadPoolExecutor whose
futures' cancel() also cancels running jobs."""
from __future__ import annotations

import concurrent.futures as cf
import os
import re
import socket
import threading

import pytest

import aiocancel
from aiocancel import syscalls
from aiocancel._job import Job
from aiocancel.executor import JobFuture, _FutureJob
from asyncio_fixtures import Probe, spin_until_cancelled
from conftest import JOIN_TIMEOUT, requires_core, wait_until


class LibraryError(Exception):
    pass


@pytest.fixture
def executor():
    ex = aiocancel.Executor(max_workers=2)
    yield ex
    ex.shutdown(wait=True, cancel_futures=True)


def blocked_read(ex: aiocancel.Executor, fd: int) -> tuple[cf.Future, Probe]:
    """A future whose job sleeps in read(fd) by the time this returns."""
    probe = Probe(syscalls.read)
    future = ex.submit(probe, fd, 1)
    probe.wait_blocked("read", fd)
    return future, probe


def test_is_a_thread_pool_executor(executor):
    assert isinstance(executor, cf.ThreadPoolExecutor)
    future = executor.submit(pow, 2, 10)
    assert isinstance(future, JobFuture)
    assert future.result(JOIN_TIMEOUT) == 1024
    assert list(executor.map(abs, [-1, -2, 3])) == [1, 2, 3]


def test_jobs_run_masked_on_named_workers(executor):
    state, name = executor.submit(
        lambda: (aiocancel.getcancelstate(), threading.current_thread().name)
    ).result(JOIN_TIMEOUT)
    assert state == aiocancel.CANCEL_MASKED
    # The stdlib's pattern: ThreadPoolExecutor-<pool number>_<thread number>.
    assert re.fullmatch(r"ThreadPoolExecutor-\d+_0", name), name


def test_exception_is_the_futures(executor):
    error = LibraryError("x")

    def job():
        raise error

    assert executor.submit(job).exception(JOIN_TIMEOUT) is error


class HandoffJob(Job):
    """A job delivered by a non-blocking hand-off, as to_thread's is."""
    __slots__ = ("delivered",)

    def __init__(self, fn):
        super().__init__(fn, (), {})
        self.delivered = threading.Event()

    def _finish(self):
        self.delivered.set()


def test_sequential_handoff_jobs_reuse_one_worker():
    """A worker counts itself idle before a hand-off job is delivered, so a
    caller that submits again at once never makes the pool grow."""
    with aiocancel.Executor(max_workers=8) as ex:
        for _ in range(300):
            job = HandoffJob(int)
            ex.submit_job(job)
            assert job.delivered.wait(JOIN_TIMEOUT)
        assert len(ex._threads) == 1


def test_done_callback_may_wait_for_another_job():
    """Future done-callbacks run on the worker and may block, e.g. on another
    job of the same pool: that worker must not count as idle meanwhile."""
    with aiocancel.Executor(max_workers=4) as ex:
        gate = threading.Event()
        inner = []
        future = ex.submit(gate.wait, JOIN_TIMEOUT)
        future.add_done_callback(
            lambda _: inner.append(ex.submit(int).result(JOIN_TIMEOUT)))
        gate.set()
        future.result(JOIN_TIMEOUT)
        wait_until(lambda: inner, what="the callback's job")
        assert inner == [0]


def test_cancel_queued_job_like_the_stdlib():
    with aiocancel.Executor(max_workers=1) as ex:
        gate = threading.Event()
        blocker = ex.submit(gate.wait, JOIN_TIMEOUT)
        ran = []
        queued = ex.submit(ran.append, 1)
        assert queued.cancel()
        assert queued.cancelled()
        gate.set()
        assert blocker.result(JOIN_TIMEOUT) is True
    assert ran == []


@requires_core
def test_cancel_running_blocked_job(pipe):
    r, w = pipe
    with aiocancel.Executor(max_workers=1) as ex:
        future, probe = blocked_read(ex, r)
        callbacks = []
        future.add_done_callback(callbacks.append)
        # Running: False as in the stdlib, but the request is sent.
        assert not future.cancel()
        done, _ = cf.wait([future], timeout=JOIN_TIMEOUT)
        assert done == {future}
        assert not future.cancelled()
        with pytest.raises(aiocancel.Cancelled):
            future.result()
        assert callbacks == [future]
        assert isinstance(probe.exc, aiocancel.Cancelled)
        # The same single worker is free for the next job; the fd works.
        os.write(w, b"y")
        assert ex.submit(syscalls.read, r, 1).result(JOIN_TIMEOUT) == b"y"


@requires_core
def test_as_completed_sees_a_cancelled_running_job(pipe):
    r, _ = pipe
    with aiocancel.Executor(max_workers=1) as ex:
        future, _ = blocked_read(ex, r)
        waiter = threading.Thread(target=lambda: seen.extend(
            cf.as_completed([future], timeout=JOIN_TIMEOUT)))
        seen: list = []
        waiter.start()
        assert not future.cancel()
        waiter.join(JOIN_TIMEOUT)
        assert seen == [future]
        assert isinstance(future.exception(), aiocancel.Cancelled)


def test_cancel_running_job_that_finishes_first(executor):
    gate = threading.Event()
    probe = Probe(lambda: gate.wait(JOIN_TIMEOUT) and "done anyway")
    future = executor.submit(probe)
    assert probe.started.wait(JOIN_TIMEOUT)
    assert not future.cancel()           # the request is sent...
    gate.set()                           # ...but no cancellation point follows
    assert future.result(JOIN_TIMEOUT) == "done anyway"
    assert not future.cancelled()


@requires_core
def test_library_error_after_ecanceled_ends_cancelled(pipe):
    r, _ = pipe

    def query():
        try:
            return syscalls.read(r, 1)
        except OSError as exc:
            raise LibraryError("connection lost") from exc

    with aiocancel.Executor(max_workers=1) as ex:
        probe = Probe(query)
        future = ex.submit(probe)
        probe.wait_blocked("read", r)
        # cancel() is False (running): the job's own outcome is the
        # future's, here the library's error.
        assert not future.cancel()
        with pytest.raises(LibraryError):
            future.result(JOIN_TIMEOUT)
        assert isinstance(probe.exc, LibraryError)


def test_cancel_acts_at_testcancel(executor):
    probe = Probe(spin_until_cancelled)
    future = executor.submit(probe)
    assert probe.started.wait(JOIN_TIMEOUT)
    assert not future.cancel()
    with pytest.raises(aiocancel.Cancelled):
        future.result(JOIN_TIMEOUT)


def test_thread_cancelled_job_ends_cancelled(executor):
    started = threading.Event()

    def job():
        aiocancel.setcancelstate(aiocancel.CANCEL_ENABLE)
        started.set()
        while True:
            aiocancel.testcancel()       # raises ThreadCancelled in ENABLE
            syscalls.sleep(0.001)

    future = executor.submit(job)
    assert started.wait(JOIN_TIMEOUT)
    assert not future.cancel()
    with pytest.raises(aiocancel.ThreadCancelled):
        future.result(JOIN_TIMEOUT)
    # The next job on that worker starts MASKED again.
    assert executor.submit(aiocancel.getcancelstate).result(JOIN_TIMEOUT) == \
        aiocancel.CANCEL_MASKED


def test_late_cancel_misses_the_next_job():
    with aiocancel.Executor(max_workers=1) as ex:
        first = ex.submit(threading.get_ident)
        worker = first.result(JOIN_TIMEOUT)
        assert not first.cancel()        # done: nothing is sent
        started = threading.Event()
        gate = threading.Event()

        def second():
            started.set()
            assert gate.wait(JOIN_TIMEOUT)
            aiocancel.testcancel()
            return threading.get_ident()

        future = ex.submit(second)
        assert started.wait(JOIN_TIMEOUT)
        first.cancel()
        gate.set()
        assert future.result(JOIN_TIMEOUT) == worker


@requires_core
def test_shutdown_cancel_futures_cancels_running_jobs(pipe):
    r, _ = pipe
    a, b = socket.socketpair()
    ex = aiocancel.Executor(max_workers=3)
    probes = [Probe(syscalls.read), Probe(syscalls.recv), Probe(syscalls.sleep)]
    futures = [ex.submit(probes[0], r, 1), ex.submit(probes[1], a, 1),
               ex.submit(probes[2], 3600)]
    queued = ex.submit(syscalls.read, r, 1)
    probes[0].wait_blocked("read", r)
    probes[1].wait_blocked("recvfrom", a.fileno())
    probes[2].wait_blocked("clock_nanosleep")
    threads = list(ex._threads)
    done = threading.Event()
    shutter = threading.Thread(
        target=lambda: (ex.shutdown(wait=True, cancel_futures=True), done.set()))
    shutter.start()
    shutter.join(JOIN_TIMEOUT)
    assert done.is_set(), "shutdown(cancel_futures=True) did not return"
    assert all(f.cancelled() for f in [*futures, queued])
    assert not any(t.is_alive() for t in threads)
    assert all(isinstance(p.exc, aiocancel.Cancelled) for p in probes)
    a.close()
    b.close()


@requires_core
def test_shutdown_cancel_futures_reaches_a_job_being_dequeued(pipe):
    """A worker dequeued a job just before shutdown(cancel_futures=True) and
    begins it just after the shutdown looked at the threads: the job must
    still be cancelled. The window is widened with a job that pauses between
    dequeue and start."""
    r, w = pipe
    dequeued, gate = threading.Event(), threading.Event()

    class SlowStart(_FutureJob):
        __slots__ = ()

        def run(self):
            dequeued.set()
            assert gate.wait(JOIN_TIMEOUT)
            super().run()

    ex = aiocancel.Executor(max_workers=1)
    future = JobFuture()
    ex.submit_job(SlowStart(future, syscalls.read, (r, 1), {}))
    assert dequeued.wait(JOIN_TIMEOUT)
    shutter = threading.Thread(
        target=ex.shutdown, kwargs=dict(wait=True, cancel_futures=True))
    shutter.start()

    def shutdown_scanned():
        with ex._shutdown_lock:
            return ex._cancel_running
    wait_until(shutdown_scanned, what="shutdown's cancel scan")
    gate.set()
    shutter.join(JOIN_TIMEOUT)
    try:
        assert not shutter.is_alive(), "shutdown missed the starting job"
        assert future.cancelled()
    finally:
        os.write(w, b"!")            # unblock a missed job so the test ends
        shutter.join(JOIN_TIMEOUT)


def test_shutdown_without_cancel_lets_jobs_finish():
    ex = aiocancel.Executor(max_workers=1)
    gate = threading.Event()
    future = ex.submit(lambda: gate.wait(JOIN_TIMEOUT) and 7)
    ex.shutdown(wait=False)
    with pytest.raises(RuntimeError):
        ex.submit(int)
    gate.set()
    assert future.result(JOIN_TIMEOUT) == 7
    ex.shutdown(wait=True)


def test_initializer_failure_breaks_the_pool():
    def bad_init():
        raise LibraryError("init")

    ex = aiocancel.Executor(max_workers=1, initializer=bad_init)
    future = ex.submit(int)
    with pytest.raises(cf.BrokenExecutor):
        future.result(JOIN_TIMEOUT)
    with pytest.raises(cf.BrokenExecutor):
        ex.submit(int)
    ex.shutdown(wait=True)


def test_initializer_runs_once_per_worker():
    seen = []
    with aiocancel.Executor(max_workers=1, initializer=seen.append,
                            initargs=("init",)) as ex:
        for _ in range(3):
            ex.submit(int).result(JOIN_TIMEOUT)
    assert seen == ["init"]


def test_bad_max_workers():
    with pytest.raises(ValueError):
        aiocancel.Executor(max_workers=0)
