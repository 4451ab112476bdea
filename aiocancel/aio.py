"""Awaitable cancellable syscalls for asyncio and uvloop.

Each coroutine runs the `aiocancel.syscalls` function of the same name in a
worker through `aiocancel.to_thread`, with the same arguments and result.
Cancelling the awaiting task interrupts the blocked call; the task waits for
the worker (at most the grace period, see `aiocancel.to_thread`), then
raises ``CancelledError``. A result the kernel produced anyway cannot be
delivered to a cancelled task: the awaitables that create a resource
(`accept`, `open`, `openat`) close the fd they created; bytes read or
written, a reaped child's status and other plain values are dropped (the
data was consumed from the kernel: see README, "Abandoned results").
``sleep_blocking`` is named so to keep it apart from ``asyncio.sleep``.
"""
from __future__ import annotations

import functools
import os
import socket
from typing import Any

from . import syscalls
from ._asyncio import to_thread

__all__ = ["read", "readinto", "write", "pread", "pwrite", "recv",
           "recv_into", "send", "sendall", "accept", "connect", "poll",
           "sleep_blocking", "waitpid",
           "ppoll", "readv", "writev", "preadv", "pwritev", "open", "openat",
           "flock", "lockf", "fcntl", "fsync", "fdatasync", "recvfrom",
           "recvfrom_into", "recvmsg", "sendto", "sendmsg", "select",
           "epoll_wait", "waitid", "sigtimedwait", "sigwaitinfo",
           "futex_wait", "futex_wake", "msgsnd", "msgrcv"]

def _close_fd(fd: int) -> None:
    """An fd `open`/`openat` created for a task that was cancelled."""
    os.close(fd)


def _close_accepted(result: tuple[int, Any]) -> None:
    """The connection `accept` took for a task that was cancelled."""
    os.close(result[0])


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


# accept4's default flag; Linux's value where the socket module has no name
# for it (fallback mode on macOS, Windows), so the default keeps its meaning.
_SOCK_CLOEXEC: int = getattr(socket, "SOCK_CLOEXEC", 0o2000000)


async def accept(sock: SocketLike,
                 flags: int = _SOCK_CLOEXEC) -> tuple[int, Any]:
    """Accept a connection; return ``(fd, address)`` as
    `aiocancel.syscalls.accept` does (wrap it with ``socket.socket(fileno=fd)``).
    A connection the kernel accepted as the task was cancelled is closed
    (it cannot be delivered)."""
    return await to_thread(syscalls.accept, sock, flags,
                           on_abandoned_result=_close_accepted)


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
    """Wait for a child, like ``os.waitpid``: return ``(pid, status)``."""
    return await to_thread(syscalls.waitpid, pid, options)


# ---- the rest of aiocancel.syscalls (same names, arguments and results) ----

async def ppoll(fds: Any, timeout: float | None = None,
                sigmask: Any = None) -> list[tuple[int, int]]:
    """`poll` with ppoll(2)'s signal mask for the wait."""
    return await to_thread(syscalls.ppoll, fds, timeout, sigmask)


async def readv(fd: FileLike, buffers: Any) -> int:
    """Read into a sequence of buffers, like ``os.readv``."""
    return await to_thread(syscalls.readv, fd, buffers)


async def writev(fd: FileLike, buffers: Any) -> int:
    """Write a sequence of buffers, like ``os.writev``."""
    return await to_thread(syscalls.writev, fd, buffers)


async def preadv(fd: FileLike, buffers: Any, offset: int, flags: int = 0) -> int:
    """``os.preadv``."""
    return await to_thread(syscalls.preadv, fd, buffers, offset, flags)


async def pwritev(fd: FileLike, buffers: Any, offset: int, flags: int = 0) -> int:
    """``os.pwritev``."""
    return await to_thread(syscalls.pwritev, fd, buffers, offset, flags)


async def open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: Any = None) -> int:
    """Open a file, like ``os.open`` (a FIFO open waits for its peer). An fd
    opened just as the task was cancelled is closed."""
    return await to_thread(functools.partial(syscalls.open, dir_fd=dir_fd),
                           path, flags, mode, on_abandoned_result=_close_fd)


async def openat(dir_fd: Any, path: Any, flags: int, mode: int = 0o777) -> int:
    """`open` relative to directory fd `dir_fd` (closed if the task was
    cancelled as it was opened)."""
    return await to_thread(syscalls.openat, dir_fd, path, flags, mode,
                           on_abandoned_result=_close_fd)


async def flock(fd: FileLike, operation: int) -> None:
    """``fcntl.flock``; a lock granted just as the task was cancelled is kept."""
    return await to_thread(syscalls.flock, fd, operation)


async def lockf(fd: FileLike, cmd: int, len: int = 0, start: int = 0,
                whence: int = 0) -> None:
    """``fcntl.lockf``."""
    return await to_thread(syscalls.lockf, fd, cmd, len, start, whence)


async def fcntl(fd: FileLike, cmd: int, arg: Any = 0) -> Any:
    """``fcntl.fcntl`` (F_SETLKW / F_OFD_SETLKW waits are cancellable)."""
    return await to_thread(syscalls.fcntl, fd, cmd, arg)


async def fsync(fd: FileLike) -> None:
    """``os.fsync`` in a worker (cancellable only before it starts)."""
    return await to_thread(syscalls.fsync, fd)


async def fdatasync(fd: FileLike) -> None:
    """``os.fdatasync`` in a worker (cancellable only before it starts)."""
    return await to_thread(syscalls.fdatasync, fd)


async def recvfrom(sock: SocketLike, n: int, flags: int = 0) -> tuple[bytes, Any]:
    """``socket.recvfrom``: ``(data, address)``."""
    return await to_thread(syscalls.recvfrom, sock, n, flags)


async def recvfrom_into(sock: SocketLike, buffer: Any, nbytes: int = 0,
                        flags: int = 0) -> tuple[int, Any]:
    """``socket.recvfrom_into``: ``(nbytes, address)``."""
    return await to_thread(syscalls.recvfrom_into, sock, buffer, nbytes, flags)


async def recvmsg(sock: SocketLike, bufsize: int, ancbufsize: int = 0,
                  flags: int = 0) -> tuple[bytes, list[tuple[int, int, bytes]], int, Any]:
    """``socket.recvmsg``; fds passed with the message are never lost."""
    return await to_thread(syscalls.recvmsg, sock, bufsize, ancbufsize, flags)


async def sendto(sock: SocketLike, data: Any, *args: Any) -> int:
    """``socket.sendto(data, [flags,] address)``."""
    return await to_thread(syscalls.sendto, sock, data, *args)


async def sendmsg(sock: SocketLike, buffers: Any, ancdata: Any = (), flags: int = 0,
                  address: Any = None) -> int:
    """``socket.sendmsg``."""
    return await to_thread(syscalls.sendmsg, sock, buffers, ancdata, flags, address)


async def select(rlist: Any, wlist: Any, xlist: Any,
                 timeout: float | None = None) -> tuple[list[Any], list[Any], list[Any]]:
    """``select.select`` in a worker."""
    return await to_thread(syscalls.select, rlist, wlist, xlist, timeout)


async def epoll_wait(epfd: Any, timeout: float | None = None,
                     maxevents: int = -1) -> list[tuple[int, int]]:
    """``select.epoll.poll`` on `epfd` in a worker."""
    return await to_thread(syscalls.epoll_wait, epfd, timeout, maxevents)


async def waitid(idtype: int, id: int, options: int) -> Any:
    """``os.waitid``; a child reaped as the task was cancelled is reported."""
    return await to_thread(syscalls.waitid, idtype, id, options)


async def sigtimedwait(sigset: Any, timeout: float) -> Any:
    """``signal.sigtimedwait`` in a worker (the signals must be blocked in
    every thread, or another thread's handler takes them)."""
    return await to_thread(syscalls.sigtimedwait, sigset, timeout)


async def sigwaitinfo(sigset: Any) -> Any:
    """``signal.sigwaitinfo`` in a worker; see `sigtimedwait`."""
    return await to_thread(syscalls.sigwaitinfo, sigset)


async def futex_wait(buffer: Any, expected: int, timeout: float | None = None, *,
                     offset: int = 0, private: bool = True) -> bool:
    """`aiocancel.syscalls.futex_wait` in a worker."""
    return await to_thread(syscalls.futex_wait, buffer, expected, timeout,
                           offset=offset, private=private)


async def futex_wake(buffer: Any, n: int = 1, *, offset: int = 0,
                     private: bool = True) -> int:
    """`aiocancel.syscalls.futex_wake` (never blocks: no worker needed)."""
    return syscalls.futex_wake(buffer, n, offset=offset, private=private)


async def msgsnd(msqid: int, mtype: int, data: Any, flags: int = 0) -> None:
    """System V ``msgsnd`` in a worker."""
    return await to_thread(syscalls.msgsnd, msqid, mtype, data, flags)


async def msgrcv(msqid: int, maxsize: int, mtype: int = 0,
                 flags: int = 0) -> tuple[int, bytes]:
    """System V ``msgrcv`` in a worker: ``(type, data)``."""
    return await to_thread(syscalls.msgrcv, msqid, maxsize, mtype, flags)
