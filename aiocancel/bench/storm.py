"""P4: a cancel storm. N tasks block in ``aiocancel.to_thread(read)`` on one
empty pipe (an `aiocancel.Executor` with N workers, installed on the loop),
then all are cancelled at once. Measured: the time until every task has seen
CancelledError, which with `aiocancel.to_thread` also means every job has
ended and its worker is free; then the pool is shut down and the process's
threads and fds must be back to what they were. Beside it, the same storm
with asyncio.to_thread on a ThreadPoolExecutor(N): the tasks are released
at once, the N threads stay blocked (freed afterwards with N bytes)."""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from typing import Any, Awaitable, Callable

import aiocancel
from aiocancel import syscalls

from .. import _observe
from .._observe import until
from ._config import Config
from ._report import Row
from ._stats import median

TITLE = "cancel storm: N tasks blocked in read() on an empty pipe, all cancelled at once"


async def _settled_threads() -> int:
    """The thread count once it stops falling: Thread.join() returns when a
    thread is done with Python, the kernel may list it a little longer."""
    last = _observe.thread_count()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        now = _observe.thread_count()
        if now >= last:
            return now
        last = now
    return last


async def _storm(n: int, peer: bool) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    threads0, fds0 = await _settled_threads(), _observe.fd_count()
    r, w = os.pipe()
    if peer:
        executor: concurrent.futures.ThreadPoolExecutor = (
            concurrent.futures.ThreadPoolExecutor(max_workers=n))
        loop.set_default_executor(executor)
        start: Callable[..., Awaitable[bytes]] = asyncio.to_thread
        read: Callable[[int, int], bytes] = os.read
    else:
        executor = aiocancel.install(loop, aiocancel.Executor(max_workers=n))
        start, read = aiocancel.to_thread, syscalls.read
    try:
        tasks = [asyncio.ensure_future(start(read, r, 1), loop=loop) for _ in range(n)]
        await until(lambda: _observe.count_blocked_in("read", r) >= n,
                    f"{n} workers to block in read()", pause=0.005)
        t0 = time.perf_counter()
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        released = time.perf_counter() - t0
        cancelled = sum(isinstance(x, asyncio.CancelledError) for x in results)
        still_blocked = _observe.count_blocked_in("read", r)
        if still_blocked:
            os.write(w, bytes(still_blocked))      # the only way to free them
        t1 = time.perf_counter()
        executor.shutdown(wait=True)
        shutdown = time.perf_counter() - t1
    finally:
        os.close(r)
        os.close(w)
    await until(lambda: _observe.thread_count() <= threads0, "exited workers to go",
                limit=5.0, pause=0.005, fail=False)
    return {"released_ms": released * 1e3, "cancelled": cancelled,
            "still_blocked": still_blocked, "shutdown_ms": shutdown * 1e3,
            "threads_delta": await _settled_threads() - threads0,
            "fds_delta": _observe.fd_count() - fds0}


def _measure(n: int, peer: bool) -> dict[str, Any]:
    return asyncio.run(_storm(n, peer))


def run(cfg: Config) -> list[Row]:
    rows = []
    per_task: dict[int, float] = {}
    for n in cfg.p4_sizes:
        if not aiocancel.SUPPORTED:
            rows.append(Row(f"P4/{n}/aiocancel.to_thread", "P4",
                            f"aiocancel.to_thread, N={n}", None, "ms",
                            note="n/a (fallback mode: a blocked read is not interruptible)"))
        else:
            runs = [_measure(n, False) for _ in range(cfg.p4_repeats)]
            ms = median([x["released_ms"] for x in runs])
            last = runs[-1]
            per_task[n] = ms * 1e3 / n
            rows.append(Row(
                f"P4/{n}/aiocancel.to_thread", "P4", f"aiocancel.to_thread, N={n}", ms, "ms",
                detail=(f"{per_task[n]:.0f} us/task; cancelled {last['cancelled']}/{n}, "
                        f"workers still blocked {last['still_blocked']}; after shutdown "
                        f"({last['shutdown_ms']:.0f} ms): threads {last['threads_delta']:+d}, "
                        f"fds {last['fds_delta']:+d} vs baseline"),
                extra={"runs": runs, "n": n}))
        peer = _measure(n, True)
        rows.append(Row(
            f"P4/{n}/asyncio.to_thread", "P4",
            f"asyncio.to_thread (ThreadPoolExecutor({n})), N={n}", peer["released_ms"], "ms",
            detail=(f"tasks released, threads STILL BLOCKED: {peer['still_blocked']}/{n} "
                    f"(freed by writing {peer['still_blocked']} bytes)"),
            extra={"runs": [peer], "n": n}))
    if len(per_task) > 1:
        small, big = min(per_task), max(per_task)
        growth = per_task[big] / per_task[small]
        rows.append(Row("P4/growth", "P4", f"growth of aiocancel's time per task, "
                        f"N={small} -> N={big}", growth, "x",
                        detail="1.0 = linear in N"))
    return rows
