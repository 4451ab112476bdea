"""aiocancel.asgiref: sync_to_async calls freed by cancellation, for
thread_sensitive=True (shared executor and ThreadSensitiveContext) and
thread_sensitive=False, keeping asgiref's one-thread guarantee."""
from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from typing import Any, AsyncIterator, Iterator

import pytest

import aiocancel
from conftest import requires_core
from job_helpers import installed_with_patch
import aiocancel.asgiref

asgiref_sync = pytest.importorskip("asgiref.sync", reason="asgiref is not installed")
SyncToAsync = asgiref_sync.SyncToAsync
ThreadSensitiveContext = asgiref_sync.ThreadSensitiveContext
sync_to_async = asgiref_sync.sync_to_async

DEADLINE = 5.0


@pytest.fixture
def installed() -> Iterator[None]:
    # At import time in a Django project: no loop runs here.
    with installed_with_patch(aiocancel.asgiref.install, aiocancel.asgiref.uninstall):
        yield


def test_install_needs_no_loop_and_uninstall_restores() -> None:
    original_call = SyncToAsync.__call__
    original_single = SyncToAsync.single_thread_executor
    aiocancel.asgiref.install()
    try:
        assert aiocancel.asgiref.is_installed()
        assert isinstance(SyncToAsync.single_thread_executor, aiocancel.Executor)
        assert SyncToAsync.single_thread_executor._max_workers == 1
    finally:
        aiocancel.asgiref.uninstall()
    assert not aiocancel.asgiref.is_installed()
    assert SyncToAsync.__call__ is original_call
    assert SyncToAsync.single_thread_executor is original_single


@contextlib.asynccontextmanager
async def no_context() -> AsyncIterator[None]:
    yield


SCOPES = {"shared": no_context, "ThreadSensitiveContext": ThreadSensitiveContext}


async def freed_by_timeout(thread_sensitive: bool, scope: Any) -> None:
    a, b = socket.socketpair()
    threads: list[int] = []

    left = threading.Event()

    def blocked_recv() -> bytes:
        threads.append(threading.get_ident())
        try:
            return a.recv(1)
        finally:
            left.set()

    def which_thread() -> int:
        return threading.get_ident()

    try:
        async with scope():
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await sync_to_async(blocked_recv,
                                        thread_sensitive=thread_sensitive)()
            assert time.monotonic() - start < DEADLINE
            # The next call runs at once, on the same one thread when
            # thread-sensitive (not on a new thread next to a stuck one).
            ident = await asyncio.wait_for(
                sync_to_async(which_thread, thread_sensitive=thread_sensitive)(),
                DEADLINE)
            if thread_sensitive:
                assert ident == threads[0]
        # The interrupted recv has returned (with thread_sensitive=False
        # asyncio's run_in_executor releases the task as soon as it is
        # cancelled, before the worker is out): nothing still reads the
        # socket, so a byte written now is ours. Waited for off the loop:
        # asyncio forwards the cancel to the executor's future in a loop
        # callback, and when the second call's worker finishes before its
        # future is chained (seen on 3.14) the task never yields, so a
        # blocking wait here would keep that callback from ever running.
        returned = await asyncio.get_running_loop().run_in_executor(
            None, left.wait, DEADLINE)
        assert returned, "the cancelled recv never returned"
        b.send(b"x")
        a.settimeout(DEADLINE)
        assert a.recv(1) == b"x"
    finally:
        a.close()
        b.close()


@requires_core
@pytest.mark.parametrize("scope", list(SCOPES))
def test_thread_sensitive_call_freed(installed: None, scope: str) -> None:
    asyncio.run(freed_by_timeout(True, SCOPES[scope]))


@requires_core
def test_not_thread_sensitive_call_freed(installed: None) -> None:
    asyncio.run(freed_by_timeout(False, no_context))


def test_own_executor_left_alone(installed: None) -> None:
    """A ThreadSensitiveContext given its own executor keeps using it."""
    from concurrent.futures import ThreadPoolExecutor

    async def main() -> None:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mine") as own:
            async with ThreadSensitiveContext(executor=own):
                name = await sync_to_async(lambda: threading.current_thread().name)()
        assert name.startswith("mine")

    try:
        ThreadSensitiveContext(executor=None)
        ThreadSensitiveContext.__init__.__code__.co_varnames.index("executor")
    except (TypeError, ValueError):
        pytest.skip("this asgiref has no ThreadSensitiveContext(executor=)")
    asyncio.run(main())
