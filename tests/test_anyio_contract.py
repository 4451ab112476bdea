"""The cancellation contract (issue 16) for the anyio backends, on asyncio,
uvloop and trio: no busy loop while waiting for a cancelled job, a bounded
wait (grace), limiter tokens as in the backend replaced, workers that end
with their event loop."""
from __future__ import annotations

import threading
import time

import anyio
import anyio.to_thread
import pytest

import aiocancel
import aiocancel.anyio
from anyio_fixtures import anyio_backend, installed  # noqa: F401
from conftest import JOIN_TIMEOUT

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("installed")]


def _loop_cpu_while(waiting):
    """CPU time of the event loop thread while `waiting()` runs."""
    async def measure():
        start = time.thread_time()
        await waiting()
        return time.thread_time() - start
    return measure


async def test_no_spinning_while_waiting_under_move_on_after():
    """A job that ignores the request for 0.6 s inside a cancelled scope:
    the loop thread sleeps meanwhile (anyio re-cancels every iteration)."""
    aiocancel.anyio.install(grace=None)

    async def wait():
        with anyio.move_on_after(0.05):
            await anyio.to_thread.run_sync(time.sleep, 0.6)

    cpu = await _loop_cpu_while(wait)()
    assert cpu < 0.1, cpu


async def test_aiocancel_to_thread_does_not_spin_under_anyio_scope(anyio_backend):
    if anyio_backend[0] != "asyncio":
        pytest.skip("aiocancel.to_thread is asyncio's")

    async def wait():
        with anyio.move_on_after(0.05):
            await aiocancel.to_thread(time.sleep, 0.6, grace=None)

    cpu = await _loop_cpu_while(wait)()
    assert cpu < 0.1, cpu


async def test_grace_bounds_the_wait():
    aiocancel.anyio.install(grace=0.2)
    event = threading.Event()
    try:
        start = time.monotonic()
        with anyio.move_on_after(0.05) as scope:
            await anyio.to_thread.run_sync(event.wait, JOIN_TIMEOUT)
        assert scope.cancelled_caught
        assert time.monotonic() - start < 1.0
    finally:
        event.set()


async def test_abandoned_call_returns_its_token_as_the_backend_does(anyio_backend):
    """asyncio: anyio returns the token when the task leaves; trio: when the
    thread is done."""
    limiter = anyio.CapacityLimiter(1)
    event = threading.Event()
    with anyio.move_on_after(0.05):
        await anyio.to_thread.run_sync(event.wait, JOIN_TIMEOUT,
                                       abandon_on_cancel=True, limiter=limiter)
    expected = 1 if anyio_backend[0] == "trio" else 0
    assert limiter.borrowed_tokens == expected
    event.set()
    with anyio.fail_after(JOIN_TIMEOUT):
        while limiter.borrowed_tokens:
            await anyio.sleep(0.01)
    assert await anyio.to_thread.run_sync(int, limiter=limiter) == 0


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_worker_exits_with_its_event_loop(backend):
    aiocancel.anyio.install()
    workers = []

    async def main():
        workers.append(await anyio.to_thread.run_sync(threading.current_thread))

    anyio.run(main, backend=backend)
    workers[0].join(JOIN_TIMEOUT)
    assert not workers[0].is_alive()
