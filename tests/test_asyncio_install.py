"""aiocancel.install(): plain asyncio.to_thread / run_in_executor(None, ...)
get cancellable jobs, on asyncio and uvloop."""
from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import threading

import pytest
import pytest_asyncio

import aiocancel
from aiocancel import syscalls
from asyncio_fixtures import (LOOP_MARKS, Probe, cancel_when_blocked,  # noqa: F401
                              event_loop_policy, spin_until_cancelled,
                              wait_for_state)
from conftest import JOIN_TIMEOUT, requires_core

pytestmark = LOOP_MARKS


@pytest_asyncio.fixture
async def installed():
    """A one-worker aiocancel.Executor installed on the test's loop: a job
    that is not freed would block every later job."""
    executor = aiocancel.install(executor=aiocancel.Executor(max_workers=1))
    yield executor
    executor.shutdown(wait=True, cancel_futures=True)


@pytest.mark.asyncio
async def test_install_sets_the_default_executor():
    loop = asyncio.get_running_loop()
    executor = aiocancel.install()
    try:
        assert isinstance(executor, aiocancel.Executor)
        assert aiocancel.get_executor() is executor
        assert aiocancel.get_executor(loop) is executor
        assert aiocancel.install() is executor           # idempotent
        names = {await asyncio.to_thread(lambda: threading.current_thread().name),
                 await loop.run_in_executor(None, lambda: threading.current_thread().name),
                 await aiocancel.to_thread(lambda: threading.current_thread().name)}
        assert all(n.startswith("aiocancel") for n in names)
        assert await asyncio.to_thread(aiocancel.getcancelstate) == aiocancel.CANCEL_MASKED
    finally:
        executor.shutdown(wait=True)


@pytest.mark.asyncio
async def test_install_replaces_and_shuts_down_the_previous_executor():
    loop = asyncio.get_running_loop()
    first = aiocancel.install()
    second = aiocancel.install(executor=aiocancel.Executor(max_workers=1))
    try:
        assert second is not first
        assert aiocancel.get_executor(loop) is second
        with pytest.raises(RuntimeError):
            first.submit(int)
    finally:
        second.shutdown(wait=True)


@pytest.mark.asyncio
async def test_install_rejects_other_executors():
    with pytest.raises(TypeError):
        aiocancel.install(executor=cf.ThreadPoolExecutor())


@pytest.mark.asyncio
async def test_without_install_to_thread_uses_a_module_executor():
    executor = aiocancel.get_executor()
    assert isinstance(executor, aiocancel.Executor)
    assert aiocancel.get_executor() is executor
    assert not executor._shutdown


def test_install_on_a_loop_that_is_not_running(event_loop_policy):  # noqa: F811
    loop = event_loop_policy.new_event_loop()
    try:
        executor = aiocancel.install(loop)
        assert aiocancel.get_executor(loop) is executor

        async def main():
            return await asyncio.to_thread(threading.current_thread)

        thread = loop.run_until_complete(main())
        assert thread in executor._threads
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


@requires_core
@pytest.mark.asyncio
async def test_cancelled_asyncio_to_thread_frees_the_worker(installed, pipe):
    r, w = pipe
    probe = Probe(syscalls.read)
    # asyncio releases the task at once...
    await cancel_when_blocked(asyncio.to_thread(probe, r, 1), "read", r, probe)
    probe.wait_ended()                   # ...and the job is cancelled too
    assert isinstance(probe.exc, aiocancel.Cancelled)
    os.write(w, b"z")                    # the single worker is free again
    assert await asyncio.to_thread(syscalls.read, r, 1) == b"z"


@requires_core
@pytest.mark.asyncio
async def test_timeout_around_run_in_executor(installed, pipe):
    r, _ = pipe
    loop = asyncio.get_running_loop()
    probe = Probe(syscalls.read)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await loop.run_in_executor(None, probe, r, 1)
    probe.wait_ended()
    assert isinstance(probe.exc, aiocancel.Cancelled)
    assert await loop.run_in_executor(None, int) == 0


@pytest.mark.asyncio
async def test_wait_for_cancels_the_job_at_testcancel(installed):
    """Fallback mode too: the request acts at the job's next testcancel()."""
    probe = Probe(spin_until_cancelled)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.to_thread(probe), 0.05)
    probe.wait_ended()
    assert isinstance(probe.exc, aiocancel.Cancelled)
    assert await asyncio.to_thread(int) == 0


@pytest.mark.asyncio
async def test_late_result_is_dropped_by_asyncio(installed):
    """The documented difference from aiocancel.to_thread: asyncio has
    released the task, so a result the job produced anyway is dropped."""
    gate = threading.Event()
    probe = Probe(lambda: gate.wait(JOIN_TIMEOUT) and "late")
    task = asyncio.ensure_future(asyncio.to_thread(probe))
    await wait_for_state(probe.started.is_set, "job start")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gate.set()
    probe.wait_ended()
    assert probe.result == "late"


@pytest.mark.asyncio
async def test_module_executor_is_replaced_after_a_shutdown():
    executor = aiocancel.get_executor()
    executor.shutdown(wait=True)
    assert await aiocancel.to_thread(int) == 0
    assert aiocancel.get_executor() is not executor

