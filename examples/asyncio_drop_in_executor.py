"""An existing ``asyncio.to_thread`` program made cancellable by one line.

    python examples/asyncio_drop_in_executor.py [--timeout 0.5] [--uvloop]

The program polls a device (here a pipe) with
``asyncio.wait_for(asyncio.to_thread(read_record, fd), timeout)``. Its
blocking function reads through `aiocancel.syscalls.read`, a cancellation
point. Adding ``aiocancel.install()`` makes the loop's default executor an
`aiocancel.Executor`: when ``wait_for`` gives up, asyncio cancels the
executor's future, which now interrupts the blocked read and frees the
worker. Without that line every timed-out read keeps a worker blocked for
ever, and ``asyncio.run()`` hangs at exit joining it.

What install() cannot do (use ``aiocancel.to_thread`` for it): asyncio has
already released the task when the job ends, so a record that arrived just as
the timeout fired is dropped.
"""
from __future__ import annotations

import argparse
import asyncio
import os

import aiocancel
from aiocancel import syscalls


def read_record(fd: int) -> bytes:
    """The existing blocking code: one record from the device."""
    return syscalls.read(fd, 64)


async def poll(fd: int, timeout: float, count: int) -> None:
    """The existing async code, unchanged."""
    for _ in range(count):
        try:
            record = await asyncio.wait_for(asyncio.to_thread(read_record, fd),
                                            timeout)
            print(f"record {record!r}", flush=True)
        except TimeoutError:
            print("timed out", flush=True)


async def main(timeout: float) -> None:
    aiocancel.install()                  # <- the one added line
    r, w = os.pipe()
    os.write(w, b"first")                # one record, then silence
    await poll(r, timeout, 3)
    os.close(r)
    os.close(w)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=0.5)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop
        uvloop.run(main(args.timeout))
    else:
        asyncio.run(main(args.timeout))


if __name__ == "__main__":
    cli()
