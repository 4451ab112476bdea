"""The cancellation contract of issue 16 on asyncio and uvloop: a cancel is
never lost, a wait is never unbounded (grace), queued jobs are withdrawn,
resources that cannot be delivered are closed, the loop's exit waits for
its jobs."""
from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

import aiocancel
from aiocancel import aio, syscalls
from asyncio_fixtures import (LOOP_MARKS, LOOPS, SIGINT_STATUS, child_env,  # noqa: F401
                              event_loop_policy, finish_child, pool_and_held_lock,
                              stuck_in_lock_acquire, uvloop, wait_for_state)
from conftest import JOIN_TIMEOUT, fd_count

pytestmark = LOOP_MARKS


@pytest.mark.asyncio
async def test_grace_releases_a_stuck_job_and_its_worker(caplog):
    abandoned = []
    with pool_and_held_lock(1) as (executor, lock):
        task = asyncio.ensure_future(aiocancel.to_thread(
            stuck_in_lock_acquire, lock, grace=0.2,
            on_abandoned_result=abandoned.append))
        await wait_for_state(lambda: executor._threads, "the worker")
        await asyncio.sleep(0.05)
        stuck = next(iter(executor._threads))
        with caplog.at_level(logging.WARNING, logger="aiocancel"):
            start = time.monotonic()
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=JOIN_TIMEOUT)
            elapsed = time.monotonic() - start
        assert done and task.cancelled()
        assert elapsed < 1.0, elapsed           # the bound
        [record] = [r for r in caplog.records if r.name == "aiocancel"]
        assert record.levelno == logging.WARNING
        message = record.getMessage()
        assert "stuck_in_lock_acquire" in message
        assert "lock.acquire()" in message      # the worker's Python stack
        # The stuck worker does not count toward max_workers=1: the next
        # job runs at once, on another thread.
        other = await asyncio.wait_for(
            aiocancel.to_thread(threading.get_ident), 1.0)
        assert other != stuck.ident
        lock.release()
        # When the stuck job ends, its result is handed over and its worker
        # (replaced) exits.
        await wait_for_state(lambda: abandoned, "the late result")
        assert abandoned == ["late"]
        stuck.join(JOIN_TIMEOUT)
        assert not stuck.is_alive()
        assert stuck not in executor._threads and executor._stuck == 0


@pytest.mark.asyncio
async def test_grace_none_waits_and_logs_once(caplog):
    event = threading.Event()
    task = asyncio.ensure_future(aiocancel.to_thread(
        event.wait, JOIN_TIMEOUT, grace=None, on_abandoned_result=None))
    await asyncio.sleep(0.05)
    with caplog.at_level(logging.WARNING, logger="aiocancel"):
        task.cancel()
        await wait_for_state(
            lambda: any(r.name == "aiocancel" for r in caplog.records),
            "the one-second report")
        await asyncio.sleep(0.3)
        assert not task.done()                  # grace=None: still waiting
        event.set()
        done, _ = await asyncio.wait([task], timeout=JOIN_TIMEOUT)
    assert done and task.cancelled()
    records = [r for r in caplog.records if r.name == "aiocancel"]
    assert len(records) == 1
    assert "grace=None" in records[0].getMessage()


@pytest.mark.asyncio
async def test_a_loop_of_jobs_that_ignore_the_request_stops():
    """``while True: await to_thread(job)``: at most the running job ends
    after the cancel; no further job is submitted."""
    started, ended = [], []

    def job(i):
        started.append(i)
        time.sleep(0.005)                       # no cancellation point
        ended.append(i)

    async def forever():
        i = 0
        while True:
            await aiocancel.to_thread(job, i)
            i += 1

    task = asyncio.ensure_future(forever())
    await wait_for_state(lambda: len(started) >= 5, "a few jobs")
    assert task.cancel()
    at_cancel = len(started)
    done, _ = await asyncio.wait([task], timeout=JOIN_TIMEOUT)
    assert done and task.cancelled()
    await asyncio.sleep(0.05)
    assert len(started) == at_cancel            # nothing ran after the cancel
    assert ended == started                     # the running one finished


@pytest.mark.asyncio
async def test_a_cancelled_task_submits_no_job():
    ran = []
    task = asyncio.current_task()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await aiocancel.to_thread(ran.append, 1)
    task.uncancel()
    await asyncio.sleep(0.05)
    assert ran == []


@pytest.mark.asyncio
async def test_the_request_leaves_within_task_cancel():
    """Task.cancel() cancels the future the task awaits, and the job's one
    sends the request right there: its on_cancel callback has run when
    cancel() returns, before the task's step, which ends cancelled as
    ever."""
    registered, requested = threading.Event(), threading.Event()

    def job():
        with aiocancel.on_cancel(requested.set):
            registered.set()
            requested.wait(JOIN_TIMEOUT)
            return "late"

    abandoned = []
    task = asyncio.ensure_future(
        aiocancel.to_thread(job, on_abandoned_result=abandoned.append))
    await wait_for_state(registered.is_set, "the job's registration")
    assert task.cancel()
    assert requested.is_set()      # no await since cancel(): no step ran
    with pytest.raises(asyncio.CancelledError):
        await task
    assert abandoned == ["late"]


@pytest.mark.asyncio
async def test_aio_open_closes_an_fd_it_cannot_deliver(monkeypatch, tmp_path):
    """The fd an open produced after its task left is closed."""
    gate = threading.Event()
    opened = []
    real_open = syscalls.open

    def open_then_wait(*args, **kwargs):
        fd = real_open(*args, **kwargs)
        opened.append(fd)
        assert gate.wait(JOIN_TIMEOUT)          # no cancellation point
        return fd

    monkeypatch.setattr(syscalls, "open", open_then_wait)
    path = tmp_path / "f"
    path.write_bytes(b"x")
    before = fd_count()
    task = asyncio.ensure_future(aio.open(str(path), os.O_RDONLY))
    await wait_for_state(lambda: opened, "the open")
    task.cancel()
    await asyncio.sleep(0.05)
    gate.set()
    done, _ = await asyncio.wait([task], timeout=JOIN_TIMEOUT)
    assert done and task.cancelled()
    await wait_for_state(lambda: fd_count() == before, "the fd closed")


@pytest.mark.asyncio
async def test_queued_job_of_a_stuck_pool_is_cancelled_at_once():
    ran = []
    with pool_and_held_lock(1) as (_executor, lock):
        stuck = asyncio.ensure_future(aiocancel.to_thread(
            stuck_in_lock_acquire, lock, grace=None, on_abandoned_result=None))
        queued = asyncio.ensure_future(aiocancel.to_thread(ran.append, 1))
        await asyncio.sleep(0.05)
        start = time.monotonic()
        queued.cancel()
        done, _ = await asyncio.wait([queued], timeout=JOIN_TIMEOUT)
        assert done and queued.cancelled()
        assert time.monotonic() - start < 1.0
        lock.release()
        assert await stuck == "late"
        assert await aiocancel.to_thread(int) == 0
        assert ran == []


# ---- process exit -------------------------------------------------------------

CHILD = r'''
import asyncio, signal, sys, threading, time
# A child started from a background shell inherits SIGINT ignored; asyncio
# only installs its Ctrl-C handler over Python's default one.
signal.signal(signal.SIGINT, signal.default_int_handler)
import aiocancel

def job():
    print("started", flush=True)
    time.sleep(1.5)                 # ignores the request (not patched)
    print("job ended", flush=True)

async def main():
    await aiocancel.to_thread(job)
    print("main returned", flush=True)

if sys.argv[1] == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
'''


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_ctrl_c_over_a_job_that_ignores_the_request(loop_kind):
    """KeyboardInterrupt within the grace period, and asyncio.run returns
    only once the job it left behind has ended."""
    if loop_kind == "uvloop" and uvloop is None:
        pytest.skip("uvloop is not installed")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, loop_kind], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=child_env(),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout.readline() == "started\n"
        proc.send_signal(signal.SIGINT)
        status, out, err = finish_child(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert status == SIGINT_STATUS, err
    assert "KeyboardInterrupt" in err
    assert out == "job ended\n"                # waited for; main never returned
    assert "aiocancel: job __main__.job still runs" in err


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_closing_a_loop_cancels_its_jobs(loop_kind, pipe):
    if loop_kind == "uvloop" and uvloop is None:
        pytest.skip("uvloop is not installed")
    if not aiocancel.SUPPORTED:
        pytest.skip("a blocked read is interrupted only by the core")
    r, _ = pipe
    loop = uvloop.new_event_loop() if loop_kind == "uvloop" else asyncio.new_event_loop()
    ended = threading.Event()
    outcome = []

    def job():
        try:
            return syscalls.read(r, 1)
        except BaseException as exc:
            outcome.append(exc)
            raise
        finally:
            ended.set()

    try:
        loop.create_task(aiocancel.to_thread(job))
        loop.run_until_complete(asyncio.sleep(0.1))
    finally:
        loop.close()
    assert ended.wait(JOIN_TIMEOUT)
    assert [type(x) for x in outcome] == [aiocancel.Cancelled]
