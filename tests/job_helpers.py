"""Helpers shared by the on_cancel and driver tests."""
from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import time
from typing import Any, Callable, Iterator

import aiocancel

DEADLINE = 5.0


def cancelled_before(step: Callable[[], Any]) -> concurrent.futures.Future:
    """Run `step` in a job on a one-worker Executor, after that job's cancel
    request was made: the job first waits on an Event, which is no
    cancellation point, so the request is pending when `step` starts.
    Returns the job's (done) future."""
    go = threading.Event()

    def job() -> Any:
        go.wait(DEADLINE)
        return step()

    with aiocancel.Executor(1) as pool:
        future = pool.submit(job)
        deadline = time.monotonic() + DEADLINE
        while not future.running():
            assert time.monotonic() < deadline, "the job did not start"
            time.sleep(0.001)
        future.cancel()
        go.set()
        concurrent.futures.wait([future], DEADLINE)
    assert future.done()
    return future


@contextlib.contextmanager
def installed_with_patch(install: Callable[..., Any],
                         uninstall: Callable[[], Any]) -> Iterator[None]:
    """``install(patch=True)`` for the block, then `uninstall()`, and unpatch
    the stdlib unless it was patched before."""
    was_patched = aiocancel.is_patched()
    install(patch=True)
    try:
        yield
    finally:
        uninstall()
        if not was_patched:
            aiocancel.unpatch()
