"""aiocancel.Executor keeps concurrent.futures' contract (issue 16): cancel()
is False for a running job yet interrupts it, an Executor dropped without
shutdown() lets its workers exit, thread names follow the stdlib, a stuck
job's worker is replaced after the grace period, idle workers retire."""
from __future__ import annotations

import concurrent.futures as cf
import gc
import logging
import re
import threading
import time

import pytest

import aiocancel
from aiocancel import syscalls
from conftest import JOIN_TIMEOUT, requires_core, wait_blocked, wait_until


def test_if_not_cancel_then_result_never_drops_a_result():
    with aiocancel.Executor(max_workers=1) as ex:
        gate = threading.Event()
        started = threading.Event()

        def job():
            started.set()
            assert gate.wait(JOIN_TIMEOUT)       # no cancellation point
            return "value"

        future = ex.submit(job)
        assert started.wait(JOIN_TIMEOUT)
        assert not future.cancel()
        gate.set()
        assert future.result(JOIN_TIMEOUT) == "value"


@requires_core
def test_cancel_of_a_running_job_returns_false_and_interrupts_it(pipe):
    r, _ = pipe
    with aiocancel.Executor(max_workers=1) as ex:
        started = threading.Event()
        tid = []

        def job():
            tid.append(threading.get_native_id())
            started.set()
            return syscalls.read(r, 1)

        future = ex.submit(job)
        assert started.wait(JOIN_TIMEOUT)
        wait_blocked(tid[0], "read", r)
        assert not future.cancel()
        with pytest.raises(aiocancel.Cancelled):
            future.result(JOIN_TIMEOUT)


def test_default_thread_names_follow_the_stdlib():
    gate = threading.Event()
    with aiocancel.Executor(max_workers=3) as ex:
        futures = [ex.submit(lambda: (gate.wait(JOIN_TIMEOUT),
                                      threading.current_thread().name)[1])
                   for _ in range(3)]
        wait_until(lambda: len(ex._threads) == 3, what="3 workers")
        gate.set()
        names = sorted(f.result(JOIN_TIMEOUT) for f in futures)
    pool = re.fullmatch(r"ThreadPoolExecutor-(\d+)_0", names[0])
    assert pool, names
    assert names == [f"ThreadPoolExecutor-{pool[1]}_{n}" for n in range(3)]
    with aiocancel.Executor(thread_name_prefix="mine") as ex:
        assert ex.submit(lambda: threading.current_thread().name).result(
            JOIN_TIMEOUT) == "mine_0"


def test_dropped_executor_lets_its_workers_exit():
    """CPython's test_del_shutdown: the futures stay alive, the executor
    does not."""
    ex = aiocancel.Executor(max_workers=5)
    results = ex.map(abs, range(-5, 5))
    threads = list(ex._threads)
    del ex
    gc.collect()
    for t in threads:
        t.join(JOIN_TIMEOUT)
        assert not t.is_alive()
    assert list(results) == [abs(v) for v in range(-5, 5)]


def test_stuck_future_job_is_reported_and_its_worker_replaced(caplog):
    lock = threading.Lock()
    lock.acquire()
    ex = aiocancel.Executor(max_workers=1, grace=0.2)
    try:
        started = threading.Event()

        def stuck():
            started.set()
            with lock:
                return "late"

        future = ex.submit(stuck)
        assert started.wait(JOIN_TIMEOUT)
        with caplog.at_level(logging.WARNING, logger="aiocancel"):
            assert not future.cancel()
            # The pool's one worker is stuck: after the grace period the next
            # job gets a new worker.
            assert ex.submit(threading.get_ident).result(JOIN_TIMEOUT)
        assert any("stuck" in r.getMessage() for r in caplog.records
                   if r.name == "aiocancel")
        lock.release()
        assert future.result(JOIN_TIMEOUT) == "late"
    finally:
        if lock.locked():
            lock.release()
        ex.shutdown(wait=True)


def _burst(ex: aiocancel.Executor, n: int) -> set[threading.Thread]:
    barrier = threading.Barrier(n + 1)
    futures = [ex.submit(barrier.wait, JOIN_TIMEOUT) for _ in range(n)]
    barrier.wait(JOIN_TIMEOUT)                   # n jobs ran at once
    for f in futures:
        f.result(JOIN_TIMEOUT)
    return set(ex._threads)


def _wait_retired(ex: aiocancel.Executor, threads: set[threading.Thread],
                  timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "idle workers did not exit"
    assert not ex._threads


def test_idle_workers_retire_after_a_burst():
    ex = aiocancel.Executor(max_workers=32)
    ex._idle_timeout = 0.2                       # the default is 10 s
    try:
        threads = _burst(ex, 20)
        assert len(threads) == 20
        _wait_retired(ex, threads, 5.0)
        # The pool still works, and grows again.
        assert len(_burst(ex, 3)) == 3
    finally:
        ex.shutdown(wait=True)


@pytest.mark.stress
def test_idle_workers_retire_after_the_default_timeout():
    """The real default (10 s, as anyio's workers): back near the baseline
    after ~15 s idle."""
    ex = aiocancel.Executor(max_workers=32)
    try:
        threads = _burst(ex, 20)
        time.sleep(5)
        assert len(ex._threads) == 20            # not before the timeout
        _wait_retired(ex, threads, 15.0)
    finally:
        ex.shutdown(wait=True)


def test_shutdown_cancel_futures_interrupts_a_running_job_the_stdlib_way():
    """The futures of queued jobs are cancelled; a running job that reaches
    a cancellation point ends cancelled too."""
    ex = aiocancel.Executor(max_workers=1)
    started = threading.Event()

    def spin():
        started.set()
        while True:
            aiocancel.testcancel()
            time.sleep(0.001)

    running = ex.submit(spin)
    queued = ex.submit(int)
    assert started.wait(JOIN_TIMEOUT)
    ex.shutdown(wait=True, cancel_futures=True)
    assert queued.cancelled()
    assert running.done()
    assert running.cancelled()
    with pytest.raises(cf.CancelledError):
        running.result(0)
