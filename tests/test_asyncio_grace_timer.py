"""The asyncio front end keeps the grace periods of a loop's cancelled jobs
on one loop timer (`aiocancel._asyncio._GraceTimers`): a shorter grace
cancelled after a longer one still expires first, each stuck job is
released by its own period, and jobs that end promptly leave nothing
behind."""
from __future__ import annotations

import asyncio
import threading

import pytest

import aiocancel
from aiocancel import syscalls
from asyncio_fixtures import (LOOP_MARKS, LOOPS, event_loop_policy,  # noqa: F401
                              pool_and_held_lock, stuck_in_lock_acquire, uvloop,
                              wait_for_state)
from conftest import JOIN_TIMEOUT

pytestmark = LOOP_MARKS


def _due(loop: asyncio.AbstractEventLoop) -> dict[object, float]:
    timers = loop._aiocancel_jobs.grace        # type: ignore[attr-defined]
    return {} if timers is None else timers.due


@pytest.mark.asyncio
async def test_a_shorter_grace_cancelled_later_expires_first():
    released: list[str] = []
    started: list[str] = []

    def job(name: str) -> str:
        started.append(name)
        return stuck_in_lock_acquire(lock)

    async def waiter(name: str, grace: float) -> None:
        try:
            await aiocancel.to_thread(job, name, grace=grace,
                                      on_abandoned_result=None)
        except asyncio.CancelledError:
            released.append(name)
            raise

    with pool_and_held_lock(2) as (_executor, lock):
        # The long grace is armed first, so the loop timer is set for it;
        # the short one must move the timer earlier.
        long = asyncio.ensure_future(waiter("long", JOIN_TIMEOUT))
        short = asyncio.ensure_future(waiter("short", 0.1))
        # Both running (not queued, which a cancel would withdraw); neither
        # reaches a cancellation point.
        await wait_for_state(lambda: len(started) == 2, "both jobs to start")
        long.cancel()
        await asyncio.sleep(0)
        short.cancel()
        done, _ = await asyncio.wait([short], timeout=JOIN_TIMEOUT)
        assert done and short.cancelled()
        assert released == ["short"]    # the long one still waits
        assert not long.done()
        assert list(_due(asyncio.get_running_loop()).values())  # long's entry
        lock.release()                  # the long job ends: its task leaves
        done, _ = await asyncio.wait([long], timeout=JOIN_TIMEOUT)
        assert done and long.cancelled()
        assert released == ["short", "long"]
        assert _due(asyncio.get_running_loop()) == {}


@pytest.mark.asyncio
async def test_promptly_ended_cancels_leave_no_timer_entries(pipe):
    r, _w = pipe
    loop = asyncio.get_running_loop()
    for _ in range(50):
        started = threading.Event()

        def job() -> bytes:
            started.set()
            return syscalls.read(r, 1)

        task = asyncio.ensure_future(aiocancel.to_thread(job))
        await wait_for_state(started.is_set, "the job to start")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Every cancelled job ended (the read was interrupted), so none is
        # still listed: nothing is kept alive until the timer fires.
        assert _due(loop) == {}
