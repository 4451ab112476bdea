"""Waiting for an observable state (a thread asleep in read(), a count back
to its baseline), never sleeping and hoping."""
from __future__ import annotations

import asyncio
import time
from typing import Callable

LIMIT = 60.0    # seconds; reaching it means the bench is broken, not slow


def wait_for(predicate: Callable[[], object], what: str, limit: float = LIMIT) -> None:
    """Poll `predicate` from a thread (50 us pauses hand the GIL over)."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench: timed out after {limit} s waiting for {what}")
        time.sleep(50e-6)


async def until(predicate: Callable[[], object], what: str, limit: float = LIMIT,
                pause: float = 0.0, fail: bool = True) -> bool:
    """Poll `predicate` from a coroutine, letting the loop run in between
    (a front end may need a few iterations to hand the job over).

    ``pause=0`` polls every loop iteration, with a 20 us sleep that hands the
    GIL to workers: for latency runs, where the state comes fast. Returns
    whether it became true; raises TimeoutError after `limit` unless `fail`
    is false."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            if fail:
                raise TimeoutError(f"bench: timed out after {limit} s waiting for {what}")
            return False
        if pause:
            await asyncio.sleep(pause)
        else:
            await asyncio.sleep(0)
            time.sleep(20e-6)
    return True
