"""Cancel scopes free aiocancel workers behind anyio.to_thread.run_sync
(after aiocancel.anyio.install()), on asyncio, uvloop and trio."""
from __future__ import annotations

import threading
import time

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest

import aiocancel
from anyio_fixtures import (anyio_backend, installed, reader, wait_event,  # noqa: F401
                            wait_for_request)
from conftest import JOIN_TIMEOUT, requires_core, wait_blocked

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("installed")]


def cancelled_exc() -> type[BaseException]:
    return anyio.get_cancelled_exc_class()


async def assert_limiter_free(limiter: anyio.CapacityLimiter) -> None:
    """The limiter has no token out, and a next call gets one and runs."""
    assert limiter.borrowed_tokens == 0
    assert await anyio.to_thread.run_sync(threading.get_ident, limiter=limiter)
    assert limiter.borrowed_tokens == 0


@requires_core
async def test_move_on_after_frees_worker(reader):
    r = reader()
    limiter = anyio.to_thread.current_default_thread_limiter()
    with anyio.move_on_after(0.05) as scope:
        await anyio.to_thread.run_sync(r)
    assert scope.cancelled_caught
    # The task waited for the worker: the call has already ended.
    assert r.ended.is_set()
    assert isinstance(r.exc, aiocancel.Cancelled)
    await assert_limiter_free(limiter)


@requires_core
async def test_blocked_in_kernel_then_cancelled(reader):
    """Cancel only once the worker sleeps in read(2) on the pipe."""
    r = reader()
    limiter = anyio.CapacityLimiter(1)
    scope = anyio.CancelScope()

    async def call():
        with scope:
            await anyio.to_thread.run_sync(r, limiter=limiter)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await wait_event(r.started)
        wait_blocked(r.native_id, "read", r.r, alive=lambda: not r.ended.is_set())
        assert limiter.borrowed_tokens == 1
        scope.cancel()
    assert scope.cancelled_caught
    assert isinstance(r.exc, aiocancel.Cancelled)
    await assert_limiter_free(limiter)
    # The same (only) worker is idle again and serves the next call.
    assert await anyio.to_thread.run_sync(threading.get_ident,
                                          limiter=limiter) is not None


@requires_core
async def test_fail_after_raises_timeout(reader):
    r = reader()
    with pytest.raises(TimeoutError) as info:
        with anyio.fail_after(0.05):
            await anyio.to_thread.run_sync(r)
    assert isinstance(r.exc, aiocancel.Cancelled)
    # The cancellation carries the job's Cancelled as its cause.
    cancelled = info.value.__context__
    assert isinstance(cancelled, cancelled_exc())
    assert cancelled.__cause__ is r.exc


@requires_core
async def test_task_group_cancel(reader):
    readers = [reader() for _ in range(3)]
    async with anyio.create_task_group() as tg:
        for r in readers:
            tg.start_soon(anyio.to_thread.run_sync, r)
        for r in readers:
            await wait_event(r.started)
            wait_blocked(r.native_id, "read", r.r, alive=lambda r=r: not r.ended.is_set())
        tg.cancel_scope.cancel()
    assert tg.cancel_scope.cancelled_caught
    assert all(isinstance(r.exc, aiocancel.Cancelled) for r in readers)
    await assert_limiter_free(anyio.to_thread.current_default_thread_limiter())


@requires_core
async def test_abandon_still_frees_worker(reader):
    r = reader()
    limiter = anyio.CapacityLimiter(1)
    scope = anyio.CancelScope()

    async def call():
        with scope:
            await anyio.to_thread.run_sync(r, abandon_on_cancel=True, limiter=limiter)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await wait_event(r.started)
        wait_blocked(r.native_id, "read", r.r, alive=lambda: not r.ended.is_set())
        scope.cancel()
    assert scope.cancelled_caught
    # Abandoned, yet the request was sent: the worker gets free, and only
    # then is the limiter token returned.
    await wait_event(r.ended)
    assert isinstance(r.exc, aiocancel.Cancelled)
    with anyio.fail_after(JOIN_TIMEOUT):
        while limiter.borrowed_tokens:
            await anyio.sleep(0.001)
    await assert_limiter_free(limiter)


async def test_result_that_came_first_is_returned_and_cancel_stays_pending():
    """The call gets the request but reaches no cancellation point: its
    result is returned, and the scope's cancellation acts at the next
    checkpoint."""
    started = threading.Event()

    def work() -> str:
        started.set()
        wait_for_request()
        return "result"

    got = []
    reached = []
    scope = anyio.CancelScope()

    async def call():
        with scope:
            got.append(await anyio.to_thread.run_sync(work))
            await anyio.lowlevel.checkpoint()
            reached.append(True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await wait_event(started)
        scope.cancel()
    assert got == ["result"]
    assert reached == []
    assert scope.cancelled_caught


async def test_exception_that_came_first_is_raised():
    started = threading.Event()

    def work():
        started.set()
        wait_for_request()
        raise KeyError("late")

    scope = anyio.CancelScope()
    raised = []

    async def call():
        with scope:
            try:
                await anyio.to_thread.run_sync(work)
            except KeyError as exc:
                raised.append(exc)
            await anyio.lowlevel.checkpoint()
            raised.append("not cancelled")

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await wait_event(started)
        scope.cancel()
    assert [type(x) for x in raised] == [KeyError]
    assert scope.cancelled_caught


async def test_testcancel_is_a_cancellation_point():
    """Works in fallback mode too: testcancel() is where it acts."""
    started = threading.Event()
    seen = []

    def work() -> None:
        started.set()
        deadline = time.monotonic() + JOIN_TIMEOUT
        while time.monotonic() < deadline:
            try:
                aiocancel.testcancel()
            except aiocancel.Cancelled as exc:
                seen.append(exc)
                raise
            time.sleep(0.001)

    scope = anyio.CancelScope()

    async def call():
        with scope:
            await anyio.to_thread.run_sync(work)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await wait_event(started)
        scope.cancel()
    assert scope.cancelled_caught
    assert len(seen) == 1


async def test_check_cancelled_in_worker():
    started = threading.Event()
    seen = []

    def work() -> None:
        started.set()
        deadline = time.monotonic() + JOIN_TIMEOUT
        while time.monotonic() < deadline:
            try:
                anyio.from_thread.check_cancelled()
            except BaseException as exc:
                seen.append(exc)
                raise
            time.sleep(0.001)

    scope = anyio.CancelScope()

    async def call():
        with scope:
            await anyio.to_thread.run_sync(work)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await wait_event(started)
        scope.cancel()
    assert scope.cancelled_caught
    assert len(seen) == 1 and isinstance(seen[0], cancelled_exc())


async def test_shielded_scope_is_not_cancelled():
    """A cancellation the task cannot see (shield) sends no request."""
    go = threading.Event()
    started = threading.Event()

    def work() -> str:
        started.set()
        go.wait(JOIN_TIMEOUT)
        aiocancel.testcancel()
        return "done"

    outer = anyio.CancelScope()
    got = []

    async def call():
        with outer:
            with anyio.CancelScope(shield=True):
                got.append(await anyio.to_thread.run_sync(work))

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await wait_event(started)
        outer.cancel()
        await anyio.sleep(0)
        go.set()
    assert got == ["done"]


async def test_cancelled_before_start_never_runs():
    ran = []
    with anyio.CancelScope() as scope:
        scope.cancel()
        await anyio.to_thread.run_sync(ran.append, 1)
    assert scope.cancelled_caught
    assert ran == []


@pytest.mark.parametrize("use_uvloop", [False, True], ids=["asyncio", "uvloop"])
def test_native_task_cancel_stays_pending(use_uvloop):
    """A plain asyncio Task.cancel() (not an anyio scope) that the result
    overtook is re-armed: the task's next await raises CancelledError."""
    import asyncio

    async def main():
        task = asyncio.current_task()
        started = threading.Event()

        def work() -> str:
            started.set()
            wait_for_request()
            return "result"

        async def canceller():
            await wait_event(started)
            task.cancel("native")

        async with anyio.create_task_group() as tg:
            tg.start_soon(canceller)
            got = await anyio.to_thread.run_sync(work)
            with pytest.raises(asyncio.CancelledError) as info:
                await asyncio.sleep(0)
            assert info.value.args == ("native",)
            assert task.uncancel() == 0
        return got

    assert anyio.run(main, backend="asyncio",
                     backend_options={"use_uvloop": use_uvloop}) == "result"
