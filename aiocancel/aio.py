"""Awaitable cancellable syscalls for asyncio and uvloop.

Each coroutine runs the `aiocancel.syscalls` function of the same name in a
worker through `aiocancel.to_thread`, with the same arguments and result.
Cancelling the awaiting task interrupts the blocked call; the task waits for
the worker, then raises ``CancelledError``, unless the kernel had already
produced a result (bytes read, an accepted connection, a reaped child): then
the result is returned and the cancellation stays pending, so nothing is
lost. ``sleep_blocking`` is named so to keep it apart from ``asyncio.sleep``.
"""
from __future__ import annotations

import socket
from typing import Any

from . import syscalls
from ._loop import to_thread

__all__ = ["read", "readinto", "write", "pread", "pwrite", "recv",
           "recv_into", "send", "sendall", "accept", "connect", "poll",
           "sleep_blocking", "waitpid"]

FileLike = Any   # an int fd, or an object with fileno()
SocketLike = Any  # a socket.socket (its timeout is honoured) or an int fd


async def read(fd: FileLike, n: int) -> bytes:
    """Read up to `n` bytes from `fd`, like ``os.read``."""
    return await to_thread(syscalls.read, fd, n)


async def readinto(fd: FileLike, buffer: Any) -> int:
    """Read into a writable buffer; return the byte count."""
    return await to_thread(syscalls.readinto, fd, buffer)


async def write(fd: FileLike, data: Any) -> int:
    """Write `data` to `fd`, like ``os.write``; a partial write is returned
    (cancellation acts only if no byte was written)."""
    return await to_thread(syscalls.write, fd, data)


async def pread(fd: FileLike, n: int, offset: int) -> bytes:
    """Read up to `n` bytes at `offset`, like ``os.pread``."""
    return await to_thread(syscalls.pread, fd, n, offset)


async def pwrite(fd: FileLike, data: Any, offset: int) -> int:
    """Write `data` at `offset`, like ``os.pwrite``."""
    return await to_thread(syscalls.pwrite, fd, data, offset)


async def recv(sock: SocketLike, n: int, flags: int = 0) -> bytes:
    """Receive up to `n` bytes, like ``socket.recv``."""
    return await to_thread(syscalls.recv, sock, n, flags)


async def recv_into(sock: SocketLike, buffer: Any, nbytes: int = 0,
                    flags: int = 0) -> int:
    """Receive into a writable buffer, like ``socket.recv_into``."""
    return await to_thread(syscalls.recv_into, sock, buffer, nbytes, flags)


async def send(sock: SocketLike, data: Any, flags: int = 0) -> int:
    """Send bytes, like ``socket.send``; return how many were sent."""
    return await to_thread(syscalls.send, sock, data, flags)


async def sendall(sock: SocketLike, data: Any, flags: int = 0) -> None:
    """Send all of `data`, like ``socket.sendall``. On cancellation the
    ``CancelledError``'s ``__cause__`` is the `Cancelled` error, whose
    ``bytes_sent`` says how much of `data` reached the kernel."""
    return await to_thread(syscalls.sendall, sock, data, flags)


async def accept(sock: SocketLike,
                 flags: int = socket.SOCK_CLOEXEC) -> tuple[int, Any]:
    """Accept a connection; return ``(fd, address)`` as
    `aiocancel.syscalls.accept` does (wrap it with ``socket.socket(fileno=fd)``).
    A connection the kernel accepted is always returned, even if the task
    was cancelled meanwhile."""
    return await to_thread(syscalls.accept, sock, flags)


async def connect(sock: SocketLike, address: Any) -> None:
    """Connect, like ``socket.connect``. Cancelled mid-handshake, the socket
    is left connecting: close it."""
    return await to_thread(syscalls.connect, sock, address)


async def poll(fds: Any, timeout: float | None = None) -> list[tuple[int, int]]:
    """Wait for events on ``(fd, eventmask)`` pairs, like
    ``select.poll().poll()`` with `timeout` in seconds."""
    return await to_thread(syscalls.poll, fds, timeout)


async def sleep_blocking(seconds: float) -> None:
    """Sleep `seconds` in a worker thread (``clock_nanosleep``): occupies a
    worker, unlike ``asyncio.sleep``; useful to test cancellation."""
    return await to_thread(syscalls.sleep, seconds)


async def waitpid(pid: int, options: int) -> tuple[int, int]:
    """Wait for a child, like ``os.waitpid``: return ``(pid, status)``. A
    child reaped just as the task was cancelled is still reported."""
    return await to_thread(syscalls.waitpid, pid, options)
