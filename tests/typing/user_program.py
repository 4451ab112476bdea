"""A small user program against aiocancel's public API; tests/test_typing.py
checks it with ``mypy --strict`` (it must pass) and reveals the types that
the public API gives it."""
from __future__ import annotations

import asyncio
import os
import socket
from concurrent.futures import Future

import aiocancel
from aiocancel import aio, syscalls


def count(data: bytes, sep: bytes = b"\n") -> int:
    return data.count(sep)


async def main() -> None:
    r, w = os.pipe()
    syscalls.write(w, b"a\nb\n")
    data: bytes = await aiocancel.to_thread(syscalls.read, r, 100)
    lines: int = await aiocancel.to_thread(count, data, sep=b"\n")
    again: int = await aiocancel.to_thread(count, data, abandon_on_cancel=True)
    await aio.sleep_blocking(0)
    fd_addr: tuple[int, object] | None = None
    with aiocancel.Executor(max_workers=1) as executor:
        future: Future[int] = executor.submit(count, data, sep=b"a")
        assert future.result() == 1
    state: int = aiocancel.getcancelstate()
    with aiocancel.masked():
        aiocancel.testcancel()
    version: str = aiocancel.__version__
    supported: bool = aiocancel.SUPPORTED
    reason: str | None = aiocancel.FALLBACK_REASON
    a, b = socket.socketpair()
    sent: int = syscalls.send(a, b"x")
    got: bytes = syscalls.recv(b, 1)
    print(lines, again, fd_addr, state, version, supported, reason, sent, got)
    for fd in (r, w):
        os.close(fd)
    a.close()
    b.close()


asyncio.run(main())
