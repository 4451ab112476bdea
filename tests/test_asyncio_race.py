"""The no-lost-cancel, no-lost-result race: cancel tasks awaiting
to_thread(accept) while clients connect. Every task whose cancel() returned
True ends cancelled; every connection the kernel accepted either reached the
task before the cancel, or was handed to on_abandoned_result, or stays
un-accepted in the listen queue; fds return to the baseline."""
from __future__ import annotations

import asyncio
import random
import select
import socket
import threading

import pytest

import aiocancel
from aiocancel import syscalls
from asyncio_fixtures import LOOP_MARKS, event_loop_policy, wait_for_state  # noqa: F401
from conftest import JOIN_TIMEOUT, fd_count, requires_core

pytestmark = [*LOOP_MARKS, requires_core]

ITERATIONS = 2000
STRESS_ITERATIONS = 20000


class Tally:
    def __init__(self) -> None:
        self.to_task = 0          # the task got the connection before the cancel
        self.abandoned = 0        # accepted, raced the cancel: on_abandoned_result
        self.queued = 0           # never accepted: still in the listen queue


def _take_from_queue(listener: socket.socket) -> tuple[socket.socket, object]:
    """The connection a cancelled accept left queued. The wait is bounded
    but real: a connection that the job accepted and then lost would never
    show up here."""
    poller = select.poll()
    poller.register(listener, select.POLLIN)
    assert poller.poll(JOIN_TIMEOUT * 1000), "an accepted connection was lost"
    return listener.accept()


async def _one(listener: socket.socket, mode: str, rng: random.Random,
               tally: Tally) -> None:
    """One client connects once, one task awaits to_thread(accept) and is
    cancelled; `mode` orders the connect and the cancel."""
    out: list[tuple[int, object]] = []
    abandoned: list[tuple[int, object]] = []
    accepted = threading.Event()
    forever = asyncio.Event()

    def job():
        result = syscalls.accept(listener)
        accepted.set()
        return result

    async def acceptor():
        out.append(await aiocancel.to_thread(
            job, on_abandoned_result=abandoned.append))
        await forever.wait()      # only the cancellation ends this

    client = socket.socket()
    try:
        if mode == "connect-first":
            client.connect(listener.getsockname())
        task = asyncio.ensure_future(acceptor())
        for _ in range(rng.randrange(4)):
            await asyncio.sleep(0)
        if mode == "race":
            client.connect(listener.getsockname())   # wakes the accept...
            for _ in range(rng.randrange(200)):
                pass
            assert task.cancel()                     # ...as the request flies
        elif mode == "delivered-first":
            client.connect(listener.getsockname())
            await wait_for_state(lambda: out, "the result reached the task")
            assert task.cancel()
        elif mode == "result-first":
            await asyncio.sleep(0)                   # the job is submitted
            client.connect(listener.getsockname())
            # The loop is blocked here, so the result is not delivered yet.
            assert accepted.wait(JOIN_TIMEOUT)
            assert task.cancel()
        else:
            assert task.cancel()
            if mode == "cancel-first":
                client.connect(listener.getsockname())
        done, _ = await asyncio.wait([task], timeout=JOIN_TIMEOUT)
        assert done, "the task never ended: a cancellation was lost"
        assert task.cancelled()
        assert len(out) + len(abandoned) <= 1
        if out:
            fd, peer = out[0]
            socket.socket(fileno=fd).close()
            tally.to_task += 1
        elif abandoned:
            fd, peer = abandoned[0]
            socket.socket(fileno=fd).close()
            tally.abandoned += 1
        else:
            conn, peer = _take_from_queue(listener)
            conn.close()
            tally.queued += 1
        assert peer == client.getsockname()
    finally:
        client.close()


async def _race(iterations: int) -> Tally:
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    modes = ["race"] * 6 + ["connect-first", "cancel-first", "result-first",
                            "delivered-first"]
    rng = random.Random(1234)
    tally = Tally()
    await aiocancel.to_thread(int)          # warm the pool: baseline threads
    fds, threads = fd_count(), set(threading.enumerate())
    try:
        for _ in range(iterations):
            await _one(listener, rng.choice(modes), rng, tally)
        assert select.select([listener], [], [], 0)[0] == [], "extra connections"
    finally:
        listener.close()
    assert fd_count() == fds - 1            # only the listener is gone
    assert set(threading.enumerate()) <= threads   # no thread started
    return tally


@pytest.mark.asyncio
async def test_no_accepted_connection_is_lost():
    tally = await _race(ITERATIONS)
    # Each outcome happened, so the invariants above were tested on each.
    assert tally.to_task and tally.queued and tally.abandoned


@pytest.mark.stress
@pytest.mark.asyncio
async def test_no_accepted_connection_is_lost_stress():
    tally = await _race(STRESS_ITERATIONS)
    assert tally.to_task and tally.queued and tally.abandoned
