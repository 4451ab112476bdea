"""P3: how long cancelling a worker blocked in read() takes.

A task awaits a front end running ``read(fd, 1)`` on an empty pipe; once the
worker sleeps in the kernel (checked in /proc), either the task is cancelled
(latency: ``task.cancel()`` -> the task sees CancelledError) or a byte is
written (latency: ``os.write`` -> the task has the byte, the natural
completion: two cross-thread wake-ups, the floor any front end pays). The two
kinds of tries alternate. aiocancel's front ends interrupt the read and free
the worker before the task resumes; asyncio.to_thread and anyio's
``abandon_on_cancel=True`` release the task but leave the worker blocked:
the bench counts it, then frees it with a byte that the abandoned read
swallows."""
from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import aiocancel
from aiocancel import syscalls

from .. import _observe
from .._observe import until
from . import _loops
from ._config import Config
from ._report import Row
from ._stats import median, percentile

TITLE = ("cancel latency: task blocked in <front end>(read) on an empty pipe; "
         "us from task.cancel() (or os.write) to the task resuming")
TARGET = 1.2


@dataclass
class Contender:
    name: str
    loop: str
    start: Callable[[Callable[[], bytes]], Any]   # awaitable from a job
    read: Callable[[int, int], bytes]
    interrupts: bool                              # cancellation frees the worker
    why_not: str = ""                             # set: cannot measure cancel


@dataclass
class Result:
    cancel_us: list[float] = field(default_factory=list)
    natural_us: list[float] = field(default_factory=list)
    freed: int = 0          # cancels after which the worker was already free
    swallowed: int = 0      # bytes written to free a worker, eaten by it


def contenders() -> tuple[list[Contender], dict[str, str]]:
    out = []
    fallback = "" if aiocancel.SUPPORTED else "fallback mode: a blocked read is not interruptible"
    for kind in _loops.loop_kinds():
        out.append(Contender("aiocancel.to_thread", kind, aiocancel.to_thread,
                             syscalls.read, True, fallback))
    out.append(Contender("asyncio.to_thread", "asyncio", asyncio.to_thread, os.read, False))
    missing = {}
    if _loops.anyio is not None:
        start = functools.partial(_loops.anyio.to_thread.run_sync, abandon_on_cancel=True)
        out.append(Contender("anyio.to_thread.run_sync(abandon_on_cancel=True)",
                             "asyncio", start, os.read, False))
    else:
        missing["anyio.to_thread.run_sync(abandon_on_cancel=True)"] = _loops.anyio_missing()
    module, why = _loops.aiocancel_anyio()
    if module is not None:
        out.append(Contender("aiocancel.anyio.run_sync", "asyncio", module.run_sync,
                             syscalls.read, True, fallback))
    else:
        missing["aiocancel.anyio.run_sync"] = why
    return out, missing


async def _try(c: Contender, r: int, w: int, cancel: bool, res: Result) -> None:
    tid = [0]
    returned: list[float] = []
    seen: list[Any] = []

    def job() -> bytes:
        tid[0] = threading.get_native_id()
        try:
            return c.read(r, 1)
        finally:
            returned.append(time.perf_counter())

    async def awaiter() -> None:
        try:
            result = await c.start(job)
        except asyncio.CancelledError:
            seen[:] = [time.perf_counter(), None, bool(returned)]
            return
        seen[:] = [time.perf_counter(), result, bool(returned)]

    task = asyncio.ensure_future(awaiter())
    await until(lambda: tid[0] and _observe.blocked_in(tid[0], "read", r),
                 f"{c.name} to block in read()")
    t0 = time.perf_counter()
    if cancel:
        task.cancel()
    else:
        os.write(w, b"x")
    await task
    at, result, worker_done = seen
    if not cancel:
        if result != b"x":
            raise AssertionError(f"{c.name}: natural completion returned {result!r}")
        res.natural_us.append((at - t0) * 1e6)
        return
    if result is not None:
        raise AssertionError(f"{c.name}: a cancelled read returned {result!r}")
    res.cancel_us.append((at - t0) * 1e6)
    if worker_done:
        res.freed += 1
    else:
        # The task is gone but its thread still sleeps in read(): only data
        # wakes it, and the abandoned read eats that data.
        os.write(w, b"x")
        await until(lambda: returned, f"{c.name}'s abandoned worker to return")
        res.swallowed += 1


def _measure(c: Contender, tries: int) -> Result:
    async def main() -> Result:
        res = Result()
        r, w = os.pipe()
        try:
            for i in range(tries):
                kinds = [True, False] if i % 2 == 0 else [False, True]
                for cancel in kinds:
                    if cancel and c.why_not:
                        continue
                    await _try(c, r, w, cancel, res)
            return res
        finally:
            os.close(r)
            os.close(w)
    result: Result = _loops.run_on(c.loop, main)
    return result


def _block_ratios(cancel: list[float], natural: list[float]) -> list[float]:
    """p50(cancel) / p50(natural) over blocks of consecutive tries: the two
    kinds alternate, so each block is measured side by side."""
    n = min(len(cancel), len(natural))
    size = max(10, n // 20)
    return [median(cancel[i:i + size]) / median(natural[i:i + size])
            for i in range(0, n - size + 1, size)]


def run(cfg: Config) -> list[Row]:
    found, missing = contenders()
    rows = []
    for c in found:
        tries = cfg.p3_tries if c.interrupts else cfg.p3_peer_tries
        res = _measure(c, tries)
        where = f"{c.name} ({c.loop})"
        key = f"P3/{c.loop}/{c.name}"
        nat = Row(key + "/natural", "P3", f"{where}: natural completion",
                  median(res.natural_us), "us",
                  detail=f"p99 {percentile(res.natural_us, 99):.0f} us over "
                         f"{len(res.natural_us)} tries",
                  extra={"samples_us": res.natural_us})
        if c.why_not:
            rows.append(Row(key + "/cancel", "P3", f"{where}: cancel", None, "us",
                            note=f"n/a ({c.why_not})"))
            rows.append(nat)
            continue
        n = len(res.cancel_us)
        ratios = _block_ratios(res.cancel_us, res.natural_us)
        p99 = percentile(res.cancel_us, 99)
        if c.interrupts:
            state = f"worker free when the task resumed: {res.freed}/{n}"
        else:
            state = (f"task released, worker STILL BLOCKED: {n - res.freed}/{n} "
                     f"(each freed by a written byte it then swallowed)")
        row = Row(key + "/cancel", "P3", f"{where}: cancel", median(res.cancel_us), "us",
                  detail=f"p99 {p99:.0f} us ({p99 / percentile(res.natural_us, 99):.2f}x "
                         f"natural's p99); {state}",
                  ratio=median(ratios), versus="natural",
                  spread=(percentile(ratios, 25), percentile(ratios, 75)),
                  extra={"samples_us": res.cancel_us, "freed": res.freed,
                         "swallowed": res.swallowed})
        if c.interrupts:
            row.target = TARGET
        rows += [row, nat]
    for name, why in missing.items():
        rows.append(Row(f"P3/asyncio/{name}/cancel", "P3", f"{name}: cancel", None,
                        "us", note=f"n/a ({why})"))
    return rows
