"""aiocancel.aio: awaitable cancellable syscalls, on asyncio and uvloop."""
from __future__ import annotations

import asyncio
import errno
import os
import select
import socket
import subprocess
import sys

import pytest

import aiocancel
from aiocancel import aio
from asyncio_fixtures import LOOP_MARKS, cancel_when_blocked, event_loop_policy  # noqa: F401
from conftest import fd_count, requires_core

pytestmark = LOOP_MARKS


@pytest.mark.asyncio
async def test_file_calls(tmp_path):
    r, w = os.pipe()
    try:
        assert await aio.write(w, b"hello") == 5
        assert await aio.read(r, 3) == b"hel"
        buf = bytearray(5)
        assert await aio.readinto(r, buf) == 2
        assert buf[:2] == b"lo"
    finally:
        os.close(r)
        os.close(w)
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        assert await aio.pwrite(fd, b"abcdef", 0) == 6
        assert await aio.pread(fd, 3, 2) == b"cde"
    finally:
        os.close(fd)


@pytest.mark.asyncio
async def test_socket_calls():
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.socket()
    try:
        accepting = asyncio.ensure_future(aio.accept(listener))
        await aio.connect(client, listener.getsockname())
        fd, address = await accepting
        server = socket.socket(fileno=fd)
        assert address == client.getsockname()
        await aio.sendall(client, b"ping")
        assert await aio.recv(server, 4) == b"ping"
        assert await aio.send(server, b"pong") == 4
        buf = bytearray(4)
        assert await aio.recv_into(client, buf) == 4 and buf == b"pong"
        assert await aio.poll([(client, select.POLLIN)], 0) == []
        server.close()
    finally:
        client.close()
        listener.close()


@pytest.mark.asyncio
async def test_sleep_blocking_and_waitpid():
    assert await aio.sleep_blocking(0.001) is None
    child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    pid, status = await aio.waitpid(child.pid, 0)
    assert pid == child.pid and os.waitstatus_to_exitcode(status) == 3
    child.returncode = 3                 # reaped here, not by Popen


@pytest.mark.asyncio
async def test_errors_are_the_syscalls():
    with pytest.raises(OSError) as info:
        await aio.read(-1, 1)
    assert info.value.errno == errno.EBADF
    with pytest.raises(ValueError):
        await aio.sleep_blocking(-1)


async def _cancel_when_blocked(coro, syscall: str) -> BaseException | None:
    """Cancel `coro`'s task once its worker blocks; the job's exception."""
    return (await cancel_when_blocked(coro, syscall)).__cause__


@requires_core
@pytest.mark.asyncio
async def test_cancel_blocked_read_and_recv_and_accept():
    r, w = os.pipe()
    a, b = socket.socketpair()
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        assert isinstance(await _cancel_when_blocked(aio.read(r, 1), "read"),
                          aiocancel.Cancelled)
        assert isinstance(await _cancel_when_blocked(aio.recv(a, 1), "recvfrom"),
                          aiocancel.Cancelled)
        before = fd_count()
        assert isinstance(await _cancel_when_blocked(aio.accept(listener), "accept4"),
                          aiocancel.Cancelled)
        assert fd_count() == before
        os.write(w, b"!")
        assert await aio.read(r, 1) == b"!"
    finally:
        for s in (a, b, listener):
            s.close()
        os.close(r)
        os.close(w)


@requires_core
@pytest.mark.asyncio
async def test_cancel_blocked_sleep_and_waitpid():
    assert isinstance(await _cancel_when_blocked(aio.sleep_blocking(3600),
                                                 "clock_nanosleep"),
                      aiocancel.Cancelled)
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        cause = await _cancel_when_blocked(aio.waitpid(child.pid, 0), "wait4")
        assert isinstance(cause, aiocancel.Cancelled)
        child.stdin.close()
        pid, status = await aio.waitpid(child.pid, 0)   # not reaped before
        assert pid == child.pid and os.waitstatus_to_exitcode(status) == 0
        child.returncode = 0
    finally:
        if child.returncode is None:
            child.kill()
            child.wait()


@requires_core
@pytest.mark.asyncio
async def test_cancel_blocked_sendall_reports_bytes_sent():
    a, b = socket.socketpair()
    try:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        cause = await _cancel_when_blocked(aio.sendall(a, b"x" * (1 << 22)), "sendto")
        assert isinstance(cause, aiocancel.Cancelled)
        b.setblocking(False)
        received = 0
        while True:
            try:
                chunk = b.recv(1 << 16)
            except BlockingIOError:
                break
            received += len(chunk)
        assert cause.bytes_sent == received > 0
    finally:
        a.close()
        b.close()
