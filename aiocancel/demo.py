"""``python -m aiocancel demo``: three blocked calls cancelled, with timings.

A task awaits ``aiocancel.to_thread(...)`` on a call that blocks: a read on
an empty pipe, a read on a terminal waiting for a line (a pty standing in for
stdin), an accept on a socket nobody connects to. Once the worker sleeps in
the kernel, the task is cancelled; the demo prints how long the task took to
get its CancelledError (its worker free again), and shows the pipe, terminal
and socket still work. Then the same with ``asyncio.to_thread``, whose
thread stays blocked. In fallback mode nothing is interrupted: the demo says
so and supplies the awaited input after a moment, which ends the call.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import threading
import time
from typing import Any, Callable, Iterator

import aiocancel
from aiocancel import _observe, syscalls
from aiocancel._observe import until

FALLBACK_DELAY = 0.2    # seconds before the fallback demo supplies the input


async def _block_then_cancel(start: Callable[..., Any], call: Callable[..., Any],
                             args: tuple[Any, ...], syscall: str, fd: int,
                             unblock: Callable[[], object]
                             ) -> tuple[float, Any, threading.Event]:
    """Run ``call(*args)`` through `start`, wait until its worker sleeps in
    `syscall` on `fd`, cancel the task. Returns (seconds from cancel() to
    the task finishing, its result or None if cancelled, an Event set when
    the call itself has returned or raised).

    In fallback mode `unblock` supplies the input after FALLBACK_DELAY, as
    nothing else would end the call."""
    tid = [0]
    returned = threading.Event()

    def job() -> Any:
        tid[0] = threading.get_native_id()
        try:
            return call(*args)
        finally:
            returned.set()

    task = asyncio.ensure_future(start(job))
    await until(lambda: tid[0] and _observe.blocked_in(tid[0], syscall, fd),
                f"the worker to block in {syscall}()", limit=10.0)
    if not aiocancel.SUPPORTED:
        asyncio.get_running_loop().call_later(FALLBACK_DELAY, unblock)
    t0 = time.perf_counter()
    task.cancel()
    try:
        result = await task
    except asyncio.CancelledError:
        result = None
    return time.perf_counter() - t0, result, returned


def _took(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} us" if seconds < 0.01 else f"{seconds * 1e3:,.0f} ms"


def _outcome(seconds: float, result: Any) -> str:
    if aiocancel.SUPPORTED:
        return f"cancelled after {_took(seconds)}, worker free"
    # The task still ends cancelled; what the call produced went to
    # on_abandoned_result (the cancellation contract, README).
    return (f"NOT interrupted: it ended {_took(seconds)} later, when the input "
            f"arrived, and the task ended cancelled")


@contextlib.contextmanager
def _closing(fds: tuple[int, int]) -> Iterator[tuple[int, int]]:
    try:
        yield fds
    finally:
        for fd in fds:
            os.close(fd)


async def _cancel_read(reader: int, writer: int, n: int, later: bytes) -> tuple[str, bytes]:
    """Cancel a read of `reader`, then show it still works: write `later`
    to `writer` and read it back. Returns (what the cancel did, data read)."""
    took, result, _ = await _block_then_cancel(
        aiocancel.to_thread, syscalls.read, (reader, n), "read", reader,
        lambda: os.write(writer, b"early\n"))
    os.write(writer, later)
    # In fallback mode the cancelled read got b"early\n" (or part of it).
    after = await aiocancel.to_thread(syscalls.read, reader, n)
    return _outcome(took, result), after


async def _pipe() -> str:
    with _closing(os.pipe()) as (r, w):
        outcome, after = await _cancel_read(r, w, 100, b"?")
    return f"read() on an empty pipe: {outcome}; the pipe still works (read {after!r} next)"


async def _terminal() -> str:
    # A pty in canonical mode, as a terminal on stdin: read() waits for a line.
    with _closing(os.openpty()) as (master, slave):
        outcome, after = await _cancel_read(slave, master, 100, b"hello\n")
    return (f"read() on a terminal waiting for a line (a pty as stdin): {outcome}; "
            f"the next line typed, {after!r}, is read normally")


async def _accept() -> str:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        clients: list[socket.socket] = []
        try:
            took, result, _ = await _block_then_cancel(
                aiocancel.to_thread, syscalls.accept, (server,), "accept4",
                server.fileno(),
                lambda: clients.append(socket.create_connection(("127.0.0.1", port))))
            if result is not None:
                os.close(result[0])
            clients.append(socket.create_connection(("127.0.0.1", port)))
            fd, _ = await aiocancel.to_thread(syscalls.accept, server)
            os.close(fd)
        finally:
            for client in clients:
                client.close()
    return (f"accept() on a socket nobody connects to: {_outcome(took, result)}; "
            f"the next connection is accepted normally")


async def _asyncio_peer() -> str:
    with _closing(os.pipe()) as (r, w):
        took, _, returned = await _block_then_cancel(
            asyncio.to_thread, os.read, (r, 1), "read", r, lambda: None)
        stuck = not returned.is_set()
        os.write(w, b"!")           # the only way to free that thread...
        await until(returned.is_set, "the abandoned thread to return", limit=10.0)
        os.set_blocking(r, False)   # ...and the byte is gone: it ate it
        try:
            lost = not os.read(r, 1)
        except BlockingIOError:
            lost = True
    return (f"for comparison, asyncio.to_thread(os.read) on an empty pipe: the task "
            f"was released after {_took(took)}, but its thread "
            f"{'stayed blocked in read()' if stuck else 'was not blocked'}; "
            f"the byte written to free it{' was lost' if lost else ''}")


async def _demo() -> list[str]:
    if aiocancel.SUPPORTED:
        # One silent round first: the figures shown are then those of warm
        # code paths (the first cancellation in a process is ~10x slower).
        for case in (_pipe, _terminal, _accept):
            await case()
    return [await _pipe(), await _terminal(), await _accept(), await _asyncio_peer()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aiocancel demo",
        description="Cancel a blocked pipe read, terminal read and socket accept "
                    "running in worker threads, and show how long it took.")
    parser.parse_args(argv)
    if aiocancel.SUPPORTED:
        print(f"aiocancel: trampoline mode, cancel signal {aiocancel.cancel_signal()}: "
              "blocked calls in worker threads are interrupted when their task is "
              "cancelled.")
    else:
        print("aiocancel: FALLBACK mode (no trampoline on this platform, or "
              "AIOCANCEL_FALLBACK=1): blocked calls are NOT interruptible; "
              "cancellation acts when they return. The demo supplies the awaited "
              f"input {FALLBACK_DELAY * 1e3:.0f} ms after cancelling.")
    lines = asyncio.run(_demo())
    for i, line in enumerate(lines[:-1], 1):
        print(f"  {i}. {line}")
    print(f"  {lines[-1]}")
    return 0
