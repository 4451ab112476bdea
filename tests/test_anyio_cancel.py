"""Cancel scopes free aiocancel workers behind anyio.to_thread.run_sync
(after aiocancel.anyio.install()), on asyncio, uvloop and trio."""
from __future__ import annotations

import asyncio
import threading
import time
from functools import partial

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest

import aiocancel
import aiocancel.anyio
from anyio_fixtures import (anyio_backend, blocked_in_read,  # noqa: F401
                            cancel_when_started, installed, reader, wait_event,
                            wait_for_request)
from conftest import JOIN_TIMEOUT, requires_core, wait_blocked

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("installed")]

run_sync = anyio.to_thread.run_sync


async def assert_limiter_free(limiter: anyio.CapacityLimiter) -> None:
    """The limiter has no token out, and a next call gets one and runs."""
    assert limiter.borrowed_tokens == 0
    assert await run_sync(threading.get_ident, limiter=limiter)
    assert limiter.borrowed_tokens == 0


@requires_core
async def test_move_on_after_frees_worker(reader):
    r = reader()
    limiter = anyio.to_thread.current_default_thread_limiter()
    with anyio.move_on_after(0.05) as scope:
        await run_sync(r)
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

    def check_then_wait():
        assert limiter.borrowed_tokens == 1
        blocked_in_read(r)()

    scope = await cancel_when_started(r.started, partial(run_sync, r, limiter=limiter),
                                      check_then_wait)
    assert scope.cancelled_caught
    assert isinstance(r.exc, aiocancel.Cancelled)
    await assert_limiter_free(limiter)


@requires_core
async def test_fail_after_raises_timeout(reader):
    r = reader()
    with pytest.raises(TimeoutError) as info:
        with anyio.fail_after(0.05):
            await run_sync(r)
    assert isinstance(r.exc, aiocancel.Cancelled)
    # The cancellation carries the job's Cancelled as its cause.
    cancelled = info.value.__context__
    assert isinstance(cancelled, anyio.get_cancelled_exc_class())
    assert cancelled.__cause__ is r.exc


@requires_core
async def test_task_group_cancel(reader):
    readers = [reader() for _ in range(3)]
    outcomes = []

    async def call(r):
        try:
            await run_sync(r)
        except anyio.get_cancelled_exc_class():
            outcomes.append("cancelled")
            raise

    async with anyio.create_task_group() as tg:
        for r in readers:
            tg.start_soon(call, r)
        for r in readers:
            await wait_event(r.started)
            blocked_in_read(r)()
        tg.cancel_scope.cancel()
    assert outcomes == ["cancelled"] * 3
    assert all(isinstance(r.exc, aiocancel.Cancelled) for r in readers)
    await assert_limiter_free(anyio.to_thread.current_default_thread_limiter())


@requires_core
async def test_abandon_still_frees_worker(reader):
    r = reader()
    limiter = anyio.CapacityLimiter(1)
    scope = await cancel_when_started(
        r.started, partial(run_sync, r, abandon_on_cancel=True, limiter=limiter),
        blocked_in_read(r))
    assert scope.cancelled_caught
    # Abandoned, yet the request was sent: the worker gets free, and then
    # the limiter token is returned.
    await wait_event(r.ended)
    assert isinstance(r.exc, aiocancel.Cancelled)
    with anyio.fail_after(JOIN_TIMEOUT):
        while limiter.borrowed_tokens:
            await anyio.sleep(0.001)
    await assert_limiter_free(limiter)


async def test_result_that_raced_the_cancel_goes_to_on_abandoned_result():
    """The call gets the request but reaches no cancellation point: the
    scope's cancellation is raised at the await, the result is handed to
    on_abandoned_result."""
    started = threading.Event()
    got, reached, abandoned = [], [], []

    def work() -> str:
        started.set()
        wait_for_request()
        return "result"

    async def call():
        got.append(await aiocancel.anyio.run_sync(
            work, on_abandoned_result=abandoned.append))
        reached.append(True)

    scope = await cancel_when_started(started, call)
    assert got == [] and reached == []
    assert abandoned == ["result"]
    assert scope.cancelled_caught


async def test_exception_that_raced_the_cancel_is_the_cause():
    started = threading.Event()
    raised = []

    def work():
        started.set()
        wait_for_request()
        raise KeyError("late")

    async def call():
        try:
            await run_sync(work)
        except KeyError as exc:
            raised.append(exc)
        except BaseException as exc:
            raised.append(type(exc.__cause__))
            raise

    scope = await cancel_when_started(started, call)
    assert raised == [KeyError]
    assert scope.cancelled_caught


@pytest.mark.parametrize("check, raises", [
    (aiocancel.testcancel, aiocancel.Cancelled),
    (anyio.from_thread.check_cancelled, None),
], ids=["testcancel", "check_cancelled"])
async def test_cancellation_seen_inside_the_worker(check, raises):
    """testcancel() is a cancellation point (in fallback mode too), and
    anyio.from_thread.check_cancelled() raises the backend's exception."""
    raises = raises or anyio.get_cancelled_exc_class()
    started = threading.Event()
    seen = []

    def work() -> None:
        started.set()
        deadline = time.monotonic() + JOIN_TIMEOUT
        while time.monotonic() < deadline:
            try:
                check()
            except BaseException as exc:
                seen.append(exc)
                raise
            time.sleep(0.001)

    scope = await cancel_when_started(started, partial(run_sync, work))
    assert scope.cancelled_caught
    assert len(seen) == 1 and isinstance(seen[0], raises)


async def test_shielded_scope_is_not_cancelled():
    """A cancellation the task cannot see (shield) sends no request."""
    go = threading.Event()
    started = threading.Event()
    got = []

    def work() -> str:
        started.set()
        go.wait(JOIN_TIMEOUT)
        aiocancel.testcancel()
        return "done"

    async def call():
        with anyio.CancelScope(shield=True):
            got.append(await run_sync(work))

    await cancel_when_started(started, call, after_cancel=go.set)
    assert got == ["done"]


async def test_cancelled_before_start_never_runs():
    ran = []
    with anyio.CancelScope() as scope:
        scope.cancel()
        await run_sync(ran.append, 1)
    assert scope.cancelled_caught
    assert ran == []


@pytest.mark.parametrize("use_uvloop", [False, True], ids=["asyncio", "uvloop"])
def test_native_task_cancel_is_raised_at_the_await(use_uvloop):
    """A plain asyncio Task.cancel() (not an anyio scope) that the result
    raced: CancelledError at the await, message kept."""

    async def main():
        task = asyncio.current_task()
        started = threading.Event()
        abandoned = []

        def work() -> str:
            started.set()
            wait_for_request()
            return "result"

        async def canceller():
            await wait_event(started)
            task.cancel("native")

        async with anyio.create_task_group() as tg:
            tg.start_soon(canceller)
            with pytest.raises(asyncio.CancelledError) as info:
                await aiocancel.anyio.run_sync(
                    work, on_abandoned_result=abandoned.append)
            assert info.value.args == ("native",)
            assert task.uncancel() == 0
        return abandoned

    assert anyio.run(main, backend="asyncio",
                     backend_options={"use_uvloop": use_uvloop}) == ["result"]


@pytest.mark.parametrize("use_uvloop", [False, True], ids=["asyncio", "uvloop"])
def test_the_request_leaves_within_task_cancel(use_uvloop):
    """As with aiocancel.to_thread: Task.cancel() sends the job its request
    before returning (the on_cancel callback ran), and the task still ends
    cancelled at the await."""

    async def main():
        registered, requested = threading.Event(), threading.Event()
        abandoned = []

        def work() -> str:
            with aiocancel.on_cancel(requested.set):
                registered.set()
                requested.wait(JOIN_TIMEOUT)
                return "late"

        async def waiter():
            await aiocancel.anyio.run_sync(work, on_abandoned_result=abandoned.append)

        task = asyncio.ensure_future(waiter())
        await wait_event(registered)
        assert task.cancel()
        seen = requested.is_set()  # no await since cancel(): no step ran
        with pytest.raises(asyncio.CancelledError):
            await task
        return seen, abandoned

    assert anyio.run(main, backend="asyncio",
                     backend_options={"use_uvloop": use_uvloop}) == (True, ["late"])


@requires_core
@pytest.mark.parametrize("use_uvloop", [False, True], ids=["asyncio", "uvloop"])
def test_loop_not_started_by_anyio(use_uvloop, reader):
    """Servers such as uvicorn start the loop with asyncio.run / uvloop, not
    anyio.run: the installed backend serves them too, and an asyncio
    timeout frees the worker."""
    r = reader()

    async def main():
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await run_sync(r)
        return anyio.to_thread.current_default_thread_limiter().borrowed_tokens

    if use_uvloop:
        import uvloop
        assert uvloop.run(main()) == 0
    else:
        assert asyncio.run(main()) == 0
    assert isinstance(r.exc, aiocancel.Cancelled)
