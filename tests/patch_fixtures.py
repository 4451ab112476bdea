"""Fixtures for the patch-mode tests (test_patch*.py, test_clients*.py):
the patch installed for one test, and jobs on an aiocancel Executor whose
worker thread the test can watch."""
from __future__ import annotations

import queue
import threading
from concurrent.futures import CancelledError, Future
from typing import Any, Callable

import pytest
import syscall_fixtures  # noqa: F401  (names the syscalls wait_blocked checks)
import conftest
from conftest import JOIN_TIMEOUT, wait_blocked, wait_until

import aiocancel


@pytest.fixture
def patched():
    """aiocancel.patch() for the test; unpatched afterwards unless it was
    already on."""
    was = aiocancel.is_patched()
    aiocancel.patch()
    yield
    if not was:
        aiocancel.unpatch()


@pytest.fixture
def executor():
    ex = aiocancel.Executor(max_workers=2)
    yield ex
    ex.shutdown(wait=True, cancel_futures=True)


class Job:
    """A job submitted to an Executor, with its worker's thread ids."""

    def __init__(self, ex: aiocancel.Executor, fn: Callable[..., Any], *args: Any) -> None:
        ids: queue.SimpleQueue = queue.SimpleQueue()   # C queue: never patched

        def body():
            ids.put((threading.get_native_id(), threading.get_ident()))
            return fn(*args)
        self.future: Future = ex.submit(body)
        self.native_id, self.ident = ids.get(timeout=JOIN_TIMEOUT)

    def running(self) -> bool:
        return not self.future.done()

    def wait_blocked(self, syscall: str, arg0: int | None = None) -> None:
        wait_blocked(self.native_id, syscall, arg0=arg0, alive=self.running)

    def wait_blocked_in_any(self, *syscalls: str) -> None:
        """As wait_blocked, for a job that may wait in any of `syscalls`."""
        wanted = {conftest.NR[name] for name in syscalls}

        def there() -> bool:
            assert self.running(), f"the job ended instead of blocking in {syscalls}"
            state, line = conftest._task_state(self.native_id)
            return state == "S" and line.split()[0] in {str(n) for n in wanted}
        wait_until(there, what=f"the worker to block in one of {syscalls}")

    def cancel_and_check(self) -> None:
        """Cancel the running job; it must end cancelled (not time out).
        The future's cancel() is False, as the stdlib's for a running job,
        yet the request is sent: the future ends with the job's Cancelled
        (or the error a library raised after a cancellation point acted)."""
        assert not self.future.cancel()
        exc = self.future.exception(timeout=JOIN_TIMEOUT)
        assert isinstance(exc, (aiocancel.Cancelled, aiocancel.ThreadCancelled)) \
            or (exc is not None and self.future._job.acted), exc


def cancel_blocked_job(ex: aiocancel.Executor, fn: Callable[..., Any], *args: Any,
                       syscall: str, arg0: int | None = None) -> Job:
    """Submit fn(*args), wait until its worker sleeps in `syscall`, cancel
    it and check that the job ended cancelled."""
    job = Job(ex, fn, *args)
    job.wait_blocked(syscall, arg0)
    job.cancel_and_check()
    return job


def run_with_install_patch(main: Callable[[], Any]) -> Any:
    """asyncio.run(main()) for a main that calls install(patch=True); the
    patch is removed afterwards unless it was on before."""
    import asyncio
    was = aiocancel.is_patched()
    try:
        return asyncio.run(main())
    finally:
        if not was:
            aiocancel.unpatch()
