"""Fixtures and helpers for the aiocancel.anyio tests (anyio's pytest plugin).

Import the fixtures into a test module (``from anyio_fixtures import
anyio_backend, installed``) to run its ``@pytest.mark.anyio`` tests on
asyncio, asyncio+uvloop and trio."""
from __future__ import annotations

import os
import threading
import time
from typing import Awaitable, Callable

import anyio
import pytest

import aiocancel.anyio
from aiocancel import syscalls
from aiocancel._core import cancel as _cancel_impl

from conftest import JOIN_TIMEOUT, wait_blocked

BACKENDS = [
    pytest.param(("asyncio", {}), id="asyncio"),
    pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    pytest.param(("trio", {}), id="trio"),
]


@pytest.fixture(params=BACKENDS)
def anyio_backend(request):
    return request.param


@pytest.fixture
def installed():
    """aiocancel.anyio installed for the test, uninstalled after it."""
    aiocancel.anyio.install()
    yield
    aiocancel.anyio.uninstall()


async def wait_event(event: threading.Event, timeout: float = JOIN_TIMEOUT) -> None:
    """Let the loop run until a worker sets `event` (fail after `timeout`)."""
    with anyio.fail_after(timeout):
        while not event.is_set():
            await anyio.sleep(0.001)


async def cancel_when_started(started: threading.Event, call: Callable[[], Awaitable],
                              before_cancel: Callable[[], object] | None = None,
                              after_cancel: Callable[[], object] | None = None
                              ) -> anyio.CancelScope:
    """Await `call()` inside a cancel scope in a child task; once a worker
    set `started` (and `before_cancel()` returned), cancel the scope, let
    the loop run once, and call `after_cancel()`. Returns the scope, exited."""
    scope = anyio.CancelScope()

    async def child() -> None:
        with scope:
            await call()

    async with anyio.create_task_group() as tg:
        tg.start_soon(child)
        await wait_event(started)
        if before_cancel is not None:
            before_cancel()
        scope.cancel()
        if after_cancel is not None:
            await anyio.sleep(0)
            after_cancel()
    return scope


def blocked_in_read(r: "PipeReader") -> Callable[[], object]:
    """A `before_cancel` that waits until `r`'s worker sleeps in read(2)."""
    return lambda: wait_blocked(r.native_id, "read", r.r,
                                alive=lambda: not r.ended.is_set())


def wait_for_request(timeout: float = JOIN_TIMEOUT) -> None:
    """In a job: wait until a cancel request is pending for it."""
    deadline = time.monotonic() + timeout
    while not _cancel_impl._pending():
        assert time.monotonic() < deadline, "no cancel request reached the job"
        time.sleep(0.001)


class PipeReader:
    """A worker function that blocks in `syscalls.read` on its own empty
    pipe and records where it ran and how it ended."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        self.started = threading.Event()
        self.ended = threading.Event()
        self.native_id: int | None = None
        self.ident: int | None = None
        self.exc: BaseException | None = None

    def __call__(self) -> bytes:
        self.native_id = threading.get_native_id()
        self.ident = threading.get_ident()
        self.started.set()
        try:
            return syscalls.read(self.r, 1)
        except BaseException as exc:
            self.exc = exc
            raise
        finally:
            self.ended.set()

    def close(self) -> None:
        for fd in (self.r, self.w):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def reader():
    """Factory of `PipeReader`s, their pipes closed at teardown."""
    made: list[PipeReader] = []

    def make() -> PipeReader:
        made.append(PipeReader())
        return made[-1]

    yield make
    for r in made:
        r.close()
