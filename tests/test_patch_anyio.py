"""aiocancel.anyio.install(patch=True): plain stdlib calls made by
``anyio.to_thread.run_sync`` functions end when the cancel scope is
cancelled, on the asyncio and trio backends, and the cancel scope exits only
once the worker let go (nothing is abandoned)."""
from __future__ import annotations

import queue
import socket
import time

import anyio
import anyio.to_thread
import pytest
from anyio._core import _eventloop
from conftest import requires_core

import aiocancel
import aiocancel.anyio


@pytest.fixture
def installed_with_patch():
    saved = dict(_eventloop.loaded_backends)
    was = aiocancel.is_patched()
    aiocancel.anyio.install(patch=True)
    assert aiocancel.is_patched()
    yield
    aiocancel.anyio.uninstall()
    _eventloop.loaded_backends.clear()
    _eventloop.loaded_backends.update(saved)
    if not was:
        aiocancel.unpatch()


@requires_core
@pytest.mark.usefixtures("installed_with_patch")
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_stdlib_waits_in_run_sync_end_with_the_scope(backend):
    a, b = socket.socketpair()
    q: queue.Queue = queue.Queue()
    ended = []

    def tracked(fn, *args):
        def body():
            try:
                return fn(*args)
            finally:
                ended.append(fn)
        return body

    async def main():
        for fn, args in [(time.sleep, (60,)), (a.recv, (1,)), (q.get, ())]:
            with anyio.move_on_after(0.1) as scope:
                await anyio.to_thread.run_sync(tracked(fn, *args))
            assert scope.cancelled_caught
            assert ended[-1] is fn        # the worker finished before the exit
        return await anyio.to_thread.run_sync(lambda: "worker free")

    with a, b:
        assert anyio.run(main, backend=backend) == "worker free"
    assert len(ended) == 3
