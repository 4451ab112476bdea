"""aiocancel.on_cancel: a callback run once, from the requesting side, when
the job's cancel request is made; removed when the job (or the with block)
ends."""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
from typing import Any, Callable

import pytest

import aiocancel
from aiocancel._protocol import protocol_call
from conftest import requires_core
from job_helpers import cancelled_before

DEADLINE = 5.0


class Calls:
    def __init__(self) -> None:
        self.threads: list[int] = []
        self.event = threading.Event()

    def __call__(self) -> None:
        self.threads.append(threading.get_ident())
        self.event.set()


def blocked_read(setup: Callable[[], Any]) -> Callable[[], Any]:
    """A job that calls `setup()` then blocks in a cancellable read."""
    def job() -> Any:
        r, w = os.pipe()
        try:
            setup()
            return aiocancel.syscalls.read(r, 1)
        finally:
            os.close(r)
            os.close(w)
    return job


async def cancel_after_start(job: Callable[[], Any], started: threading.Event) -> BaseException:
    task = asyncio.ensure_future(aiocancel.to_thread(job))
    deadline = time.monotonic() + DEADLINE
    while not started.is_set():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)
    task.cancel()
    try:
        await asyncio.wait_for(task, DEADLINE)
    except BaseException as exc:   # noqa: BLE001 - returned for the test
        return exc
    raise AssertionError("the task was not cancelled")


@requires_core
def test_runs_once_in_requesting_thread() -> None:
    calls = Calls()
    started = threading.Event()

    def setup() -> None:
        aiocancel.on_cancel(calls)
        started.set()

    async def main() -> None:
        exc = await cancel_after_start(blocked_read(setup), started)
        assert isinstance(exc, asyncio.CancelledError)
        assert calls.threads == [threading.get_ident()]   # the loop's thread

    asyncio.run(main())


@requires_core
def test_with_block_removes_it() -> None:
    calls = Calls()
    started = threading.Event()

    def setup() -> None:
        with aiocancel.on_cancel(calls):
            pass
        started.set()

    async def main() -> None:
        await cancel_after_start(blocked_read(setup), started)

    asyncio.run(main())
    assert calls.threads == []


def test_registered_after_the_request_runs_at_once() -> None:
    calls = Calls()

    def step() -> None:
        aiocancel.on_cancel(calls)        # the request is already made
        assert calls.threads == [threading.get_ident()]

    cancelled_before(step).exception()
    assert len(calls.threads) == 1


def test_outside_a_job_does_nothing() -> None:
    calls = Calls()
    with aiocancel.on_cancel(calls) as registration:
        assert registration.job is None
    assert calls.threads == []


def test_not_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        aiocancel.on_cancel(42)  # type: ignore[arg-type]


def test_removed_when_job_ends() -> None:
    calls = Calls()
    jobs: list[Any] = []

    def job() -> None:
        aiocancel.on_cancel(calls)
        jobs.append(aiocancel._on_cancel.current_job())

    with aiocancel.Executor(1) as pool:
        pool.submit(job).result(DEADLINE)
        assert jobs[0].hooks is None
        assert aiocancel._on_cancel.current_job() is None
        # The worker's next job does not see it either.
        assert pool.submit(aiocancel._on_cancel.current_job).result(DEADLINE) is not jobs[0]
    assert calls.threads == []


def test_library_error_after_callback_counts_as_cancelled() -> None:
    """A job that ends by raising its library's own error after its
    callback ran ends cancelled (TimeoutError under asyncio.timeout)."""
    stop = threading.Event()

    class Stopped(Exception):
        pass

    def job() -> None:
        with aiocancel.on_cancel(stop.set):
            if not stop.wait(DEADLINE):   # a wait that is no cancellation point
                return
            raise Stopped()

    async def main() -> None:
        with pytest.raises(TimeoutError) as info:
            async with asyncio.timeout(0.1):
                await aiocancel.to_thread(job)
        assert isinstance(info.value.__cause__.__cause__, Stopped)

    asyncio.run(main())


@requires_core
def test_failing_callback_logged_others_run(caplog: pytest.LogCaptureFixture) -> None:
    calls = Calls()
    started = threading.Event()

    def boom() -> None:
        raise RuntimeError("boom")

    def setup() -> None:
        aiocancel.on_cancel(boom)
        aiocancel.on_cancel(calls)
        started.set()

    async def main() -> None:
        await cancel_after_start(blocked_read(setup), started)

    with caplog.at_level(logging.ERROR, logger="aiocancel"):
        asyncio.run(main())
    assert len(calls.threads) == 1
    assert any("boom" in (r.exc_text or "") or "boom" in str(r.exc_info) for r in caplog.records)


def test_protocol_call_discards_an_interrupted_object() -> None:
    """If a cancellation escapes from a protocol exchange anyway, the
    library object is closed (later use fails clearly)."""
    closed: list[str] = []

    def job() -> None:
        with protocol_call(lambda: None, lambda: closed.append("closed")):
            raise aiocancel.Cancelled()

    with aiocancel.Executor(1) as pool:
        future = pool.submit(job)
        with pytest.raises(concurrent.futures.CancelledError):
            future.result(DEADLINE)     # a job that raised Cancelled
    assert closed == ["closed"]


def test_protocol_call_blocks_cancellation_points() -> None:
    """Inside a protocol exchange no cancellation point acts; the library's
    cancel is called, repeatedly until the exchange ends, and never after."""
    cancels: list[float] = []
    entered = threading.Event()
    release = threading.Event()
    done: list[str] = []

    def library_cancel() -> None:
        cancels.append(time.monotonic())
        if len(cancels) == 3:
            release.set()

    def job() -> str:
        with protocol_call(library_cancel, lambda: None):
            entered.set()
            release.wait(DEADLINE)
            aiocancel.testcancel()          # does not act inside
            done.append("exchange finished")
        aiocancel.testcancel()              # acts after it
        return "not reached"

    with aiocancel.Executor(1) as pool:
        future = pool.submit(job)
        assert entered.wait(DEADLINE)
        # Running: cancel() is False (the stdlib's answer) yet the request
        # is made; the job ends with the Cancelled its testcancel() raised.
        assert not future.cancel()
        with pytest.raises(aiocancel.Cancelled):
            future.result(DEADLINE)
    assert done == ["exchange finished"]
    count = len(cancels)
    assert count >= 3
    time.sleep(0.3)
    assert len(cancels) == count
