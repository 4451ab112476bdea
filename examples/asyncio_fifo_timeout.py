"""Read a FIFO (named pipe) with a timeout, without leaking a blocked thread.

    python examples/asyncio_fifo_timeout.py [--fifo PATH] [--timeout 2] [--uvloop]

Prints what writers send (``echo hi > PATH``) until nothing arrives for
``--timeout`` seconds, then exits at once. With ``asyncio.to_thread(os.read,
...)`` the timed-out read would stay blocked in its worker thread, and
``asyncio.run()`` would hang at exit waiting for it; ``aiocancel.aio.read``
interrupts the read itself. The timeout always wins: a chunk the kernel
delivered just as it fired goes to ``on_abandoned_result`` (dropped here).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import tempfile

from aiocancel import aio


async def read_with_timeout(fd: int, n: int, timeout: float) -> bytes:
    """Up to `n` bytes from `fd`; TimeoutError if none arrive in time."""
    async with asyncio.timeout(timeout):
        return await aio.read(fd, n)


async def main(path: str, timeout: float) -> None:
    # O_RDWR: opening a FIFO read-only blocks until a writer appears (open is
    # not cancellable), and with no writer left every read would return EOF
    # at once. Holding a write end ourselves makes reads block for data.
    fd = os.open(path, os.O_RDWR)
    try:
        print(f"reading {path}", flush=True)
        while True:
            try:
                data = await read_with_timeout(fd, 4096, timeout)
            except TimeoutError:
                print(f"nothing for {timeout}s: done", flush=True)
                return
            print(f"got {data!r}", flush=True)
    finally:
        os.close(fd)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fifo", help="FIFO to read (default: a new one)")
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.fifo
        if path is None:
            path = os.path.join(tmp, "fifo")
            os.mkfifo(path)
        if args.uvloop:
            import uvloop
            uvloop.run(main(path, args.timeout))
        else:
            asyncio.run(main(path, args.timeout))


if __name__ == "__main__":
    cli()
