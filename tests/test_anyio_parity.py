"""Calls without cancellation behave exactly as with anyio's own backends:
the same scenarios run on anyio's worker threads and, after install(), on
aiocancel workers, and must give the same outcomes."""
from __future__ import annotations

import contextvars
import threading

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import pytest

import aiocancel
import aiocancel.anyio
from anyio_fixtures import anyio_backend  # noqa: F401

pytestmark = pytest.mark.anyio

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


class Boom(Exception):
    pass


class Fatal(BaseException):
    pass


def describe(exc: BaseException) -> tuple:
    return type(exc).__name__, str(exc)


async def outcome(func, *args, **kwargs) -> tuple:
    try:
        value = await anyio.to_thread.run_sync(func, *args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - compared below
        return ("raised",) + describe(exc)
    return ("returned", value)


def stop_iteration():
    raise StopIteration("stop")


async def coro_fn():
    return 1


def returns_coroutine():
    coro = coro_fn()
    try:
        return type(coro).__name__
    finally:
        coro.close()


async def scenario() -> list:
    loop_thread = threading.get_ident()
    out = []
    out.append(await outcome(lambda a, b: a + b, 1, 2))
    out.append(await outcome(lambda: None))
    # Exceptions: the very object the function raised comes back.
    raised = Boom("boom")

    def raise_it():
        raise raised

    try:
        await anyio.to_thread.run_sync(raise_it)
    except Boom as exc:
        out.append(("same object", exc is raised))
    out.append(await outcome(lambda: (_ for _ in ()).throw(Fatal("fatal"))))
    out.append(await outcome(stop_iteration))
    out.append(await outcome(returns_coroutine))
    # A coroutine function: asyncio hands back the coroutine, trio refuses.
    try:
        result = await anyio.to_thread.run_sync(coro_fn)
    except TypeError as exc:
        out.append(("coroutine function", "TypeError", "asynchronous" in str(exc)))
    else:
        out.append(("coroutine function", type(result).__name__))
        result.close()
    # contextvars: the caller's context is copied in, changes stay out.
    token = var.set("caller")

    def ctx():
        seen = var.get()
        var.set("worker")
        return seen

    out.append(await outcome(ctx))
    out.append(("after", var.get()))
    var.reset(token)
    # No async library is current in the worker.
    out.append(await outcome(anyio.lowlevel.current_token))
    # from_thread back into the loop.

    async def async_double(x):
        await anyio.sleep(0)
        return 2 * x

    out.append(await outcome(lambda: anyio.from_thread.run(async_double, 21)))
    out.append(await outcome(
        lambda: anyio.from_thread.run_sync(threading.get_ident) == loop_thread))

    async def async_raise():
        raise Boom("from loop")

    out.append(await outcome(lambda: anyio.from_thread.run(async_raise)))
    out.append(await outcome(lambda: anyio.from_thread.run_sync(var.get)))
    # A worker call from a loop callback started from a worker.
    out.append(await outcome(lambda: anyio.from_thread.run(
        anyio.to_thread.run_sync, lambda: "nested")))
    out.append(await outcome(anyio.from_thread.check_cancelled))
    # The limiter is honoured and emptied.
    limiter = anyio.CapacityLimiter(1)

    def borrowed():
        return anyio.from_thread.run_sync(lambda: limiter.borrowed_tokens)

    out.append(await outcome(borrowed, limiter=limiter))
    out.append(("borrowed after", limiter.borrowed_tokens,
                anyio.to_thread.current_default_thread_limiter().borrowed_tokens))
    # Concurrent calls all complete.
    results = []

    async def one(i):
        results.append(await anyio.to_thread.run_sync(lambda: i * i))

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(one, i)
    out.append(("concurrent", sorted(results)))
    return out


async def test_same_outcomes_as_anyio():
    aiocancel.anyio.uninstall()
    original = await scenario()
    aiocancel.anyio.install()
    try:
        ours = await scenario()
    finally:
        aiocancel.anyio.uninstall()
    assert ours == original


async def test_jobs_run_masked_on_aiocancel_workers():
    """What differs, by design: where the function runs."""
    def where():
        return threading.current_thread().name, aiocancel.getcancelstate()

    aiocancel.anyio.uninstall()
    name, state = await anyio.to_thread.run_sync(where)
    assert state != aiocancel.CANCEL_MASKED
    aiocancel.anyio.install()
    try:
        name, state = await anyio.to_thread.run_sync(where)
    finally:
        aiocancel.anyio.uninstall()
    assert state == aiocancel.CANCEL_MASKED
    assert name.startswith("aiocancel-anyio")
