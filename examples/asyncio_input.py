"""An awaitable ``input()`` that Ctrl-C or a timeout really cancels.

    python examples/asyncio_input.py [--timeout 5] [--uvloop]

Asks for a name and greets. With no answer within ``--timeout`` seconds, or
on Ctrl-C, it exits at once: the read of stdin blocked in a worker thread is
interrupted, so ``asyncio.run()`` has no thread to wait for (with
``asyncio.to_thread(input)`` it would hang until Enter is pressed). Typed
input is never lost: bytes read just as the cancel arrived stay buffered for
the next ``readline``.
"""
from __future__ import annotations

import argparse
import asyncio
import sys

from aiocancel import aio


class AsyncStdin:
    """Line reader over stdin's file descriptor, cancellable while it waits."""

    def __init__(self, fd: int = 0) -> None:
        self.fd = fd
        self.buffer = b""

    async def readline(self) -> str:
        """The next line, with its newline ("" at end of input). Cancelled
        while waiting, it raises CancelledError and keeps what was read."""
        while b"\n" not in self.buffer:
            chunk = await aio.read(self.fd, 4096)
            if not chunk:
                break
            self.buffer += chunk
        line, newline, self.buffer = self.buffer.partition(b"\n")
        return (line + newline).decode()


stdin = AsyncStdin()


async def ainput(prompt: str = "") -> str:
    """Like ``input(prompt)``; EOFError at end of input."""
    print(prompt, end="", flush=True)
    line = await stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\n")


async def main(timeout: float | None) -> int:
    try:
        async with asyncio.timeout(timeout):
            name = await ainput("Your name? ")
    except TimeoutError:
        print(f"\nno answer within {timeout}s", flush=True)
        return 1
    except EOFError:
        print("\nno answer: end of input", flush=True)
        return 1
    print(f"Hello, {name}!", flush=True)
    return 0


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args()
    try:
        if args.uvloop:
            import uvloop
            return uvloop.run(main(args.timeout))
        return asyncio.run(main(args.timeout))
    except KeyboardInterrupt:
        print("\ninterrupted", flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(cli())
