"""No lost results: accept() jobs raced against cancel scopes, counted on
both sides (every client connection is accepted exactly once: by a job that
returned it, by a job whose result went to on_abandoned_result because its
scope was cancelled first, or by the final drain; no fd is leaked)."""
from __future__ import annotations

import os
import random
import socket
import struct
import threading

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

import aiocancel
import aiocancel.anyio
from aiocancel import syscalls
from anyio_fixtures import anyio_backend, installed  # noqa: F401
from conftest import JOIN_TIMEOUT, fd_count

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("installed")]

ID = struct.Struct("=I")


def take_id(fd: int) -> int:
    """Read the client's id from an accepted connection, and close it."""
    try:
        data = os.read(fd, ID.size)
    finally:
        os.close(fd)
    assert len(data) == ID.size
    return ID.unpack(data)[0]


async def accept_race(iterations: int, seed: int) -> dict:
    rng = random.Random(seed)
    baseline = fd_count()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    address = f"\0aiocancel-anyio-race-{os.getpid()}-{id(listener)}"
    listener.bind(address)
    listener.listen(256)
    clients: dict[int, socket.socket] = {}
    entered = threading.Event()
    accepted: list[int] = []
    counts = {"cancelled": 0, "not caught": 0, "result first": 0,
              "result before cancel": 0, "ran past checkpoint": 0,
              "job got Cancelled": 0, "abandoned": 0}

    def receive(fd: int) -> None:
        ident = take_id(fd)
        accepted.append(ident)
        clients.pop(ident).close()

    def accept_job():
        entered.set()
        try:
            return syscalls.accept(listener)
        except aiocancel.Cancelled:
            counts["job got Cancelled"] += 1
            raise

    def drain() -> None:
        # The connection that no job took (its job was cancelled) is still
        # queued: take it, so that the next job finds the queue empty.
        listener.setblocking(False)
        try:
            while True:
                try:
                    fd, _ = listener._accept()
                except BlockingIOError:
                    return
                receive(fd)
        finally:
            listener.setblocking(True)

    def connect(ident: int) -> None:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.setblocking(False)
        client.connect(address)     # AF_UNIX: queued at once, or raises
        client.send(ID.pack(ident))
        clients[ident] = client

    try:
        for i in range(iterations):
            scope = anyio.CancelScope()

            def abandoned(pair) -> None:
                counts["abandoned"] += 1
                receive(pair[0])

            async def acceptor():
                got_result = cancel_was_called = False
                with scope:
                    fd, _ = await aiocancel.anyio.run_sync(
                        accept_job, on_abandoned_result=abandoned)
                    got_result = True
                    receive(fd)
                    cancel_was_called = scope.cancel_called
                    await anyio.lowlevel.checkpoint()
                    counts["ran past checkpoint"] += cancel_was_called
                if not got_result:
                    counts["cancelled"] += 1
                    counts["not caught"] += not scope.cancelled_caught
                elif cancel_was_called:
                    counts["result first"] += 1
                else:
                    counts["result before cancel"] += 1

            async with anyio.create_task_group() as tg:
                entered.clear()
                tg.start_soon(acceptor)
                if rng.random() < 0.75:
                    # Mostly race against a job that is in (or entering)
                    # accept; otherwise against one not started yet.
                    with anyio.fail_after(JOIN_TIMEOUT):
                        while not entered.is_set():
                            await anyio.lowlevel.checkpoint()
                first, second = rng.sample([scope.cancel, lambda: connect(i)], 2)
                first()
                # asyncio sends the request when the task next runs, trio at
                # once: vary the gap so both meet the kernel's wake-up.
                for _ in range(rng.randrange(4)):
                    await anyio.lowlevel.checkpoint()
                second()
            drain()
        drain()
    finally:
        listener.close()
        for client in clients.values():
            client.close()
    counts["accepted ids"] = sorted(accepted)
    counts["unaccepted clients"] = sorted(clients)
    counts["leaked fds"] = fd_count() - baseline
    return counts


def check(counts: dict, iterations: int) -> None:
    print(counts | {"accepted ids": len(counts["accepted ids"])})
    assert counts["accepted ids"] == list(range(iterations))
    assert counts["unaccepted clients"] == []
    assert counts["leaked fds"] == 0
    assert (counts["cancelled"] + counts["result first"]
            + counts["result before cancel"]) == iterations
    # A call that raised did so because its scope was cancelled.
    assert counts["not caught"] == 0
    # A result that overtook the cancellation was returned, and the
    # cancellation then acted at the next checkpoint.
    assert counts["ran past checkpoint"] == 0
    # Both outcomes of the race happened (the connect/cancel order is random):
    # a result that raced the cancellation is handed to on_abandoned_result
    # (trio may also have resumed the task before the cancel: result first).
    assert counts["abandoned"] + counts["result first"] > 0
    assert counts["abandoned"] <= counts["cancelled"]
    assert counts["cancelled"] > 0
    assert counts["job got Cancelled"] <= counts["cancelled"]
    if aiocancel.SUPPORTED:
        # Some requests interrupted a job blocked in accept (the fallback
        # only acts when a job enters accept).
        assert counts["job got Cancelled"] > 0


async def test_accept_race(fast_switch):
    counts = await accept_race(2000, seed=1)
    check(counts, 2000)


@pytest.mark.stress
async def test_accept_race_stress(fast_switch):
    counts = await accept_race(50_000, seed=2)
    check(counts, 50_000)
