"""P2: the round trip of handing a no-op to a worker thread and awaiting it.

`await aiocancel.to_thread(noop)` against `asyncio.to_thread(noop)` and
`anyio.to_thread.run_sync(noop)` (and aiocancel's anyio front end when it is
there), each with its default pool, on asyncio's loop and on uvloop, with 1
and with 64 tasks awaiting concurrently; and, as the floor any of them could
reach, a bare thread serving a SimpleQueue. Wall time and CPU time (user+sys of
the whole process, i.e. every thread) per call: a front end must not buy
latency by spinning."""
from __future__ import annotations

import asyncio
import gc
import queue
import threading
import time
from typing import Any

import aiocancel

from .. import _observe
from . import _loops
from ._config import Config
from ._report import Row
from ._stats import median, paired_ratios, percentile, rotations

TITLE = "dispatch round trip: await <front end>(noop); us/call, CPU us/call"
TARGET = 0.8
BASELINE = "asyncio.to_thread"
FLOOR = "floor: one bare thread + SimpleQueue"


def _noop() -> None:
    pass


class BareThread:
    """The floor of a thread hop, for reference: one thread, a SimpleQueue,
    ``call_soon_threadsafe`` back. No pool, no context copy, no
    cancellation, no error handling: only fit for P2's no-op."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def __call__(self, fn: Any) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, daemon=True,
                                            name="aiocancel-bench-bare")
            self._thread.start()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((loop, future, fn))
        await future

    def _serve(self) -> None:
        get = self._queue.get
        while (item := get()) is not None:
            loop, future, fn = item
            fn()
            loop.call_soon_threadsafe(future.set_result, None)

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None


def contenders() -> tuple[dict[str, Any], dict[str, str]]:
    """(name -> awaitable-returning callable, name -> why it is missing)."""
    calls: dict[str, Any] = {"aiocancel.to_thread": aiocancel.to_thread,
                             "asyncio.to_thread": asyncio.to_thread,
                             FLOOR: BareThread()}
    missing: dict[str, str] = {}
    if _loops.anyio is not None:
        calls["anyio.to_thread.run_sync"] = _loops.anyio.to_thread.run_sync
    else:
        missing["anyio.to_thread.run_sync"] = _loops.anyio_missing()
    module, why = _loops.aiocancel_anyio()
    if module is not None:
        calls["aiocancel.anyio.run_sync"] = module.run_sync
    else:
        missing["aiocancel.anyio.run_sync"] = why
    return calls, missing


async def _batch(call: Any, concurrency: int, n: int) -> tuple[float, float]:
    per = max(1, n // concurrency)

    async def awaiter() -> None:
        for _ in range(per):
            await call(_noop)

    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    if concurrency == 1:
        await awaiter()
    else:
        await asyncio.gather(*[awaiter() for _ in range(concurrency)])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall / (per * concurrency), cpu / (per * concurrency)


def _measure(kind: str, cfg: Config, calls: dict[str, Any]) -> dict[int, Any]:
    """Each round on a fresh loop with fresh pools: where the scheduler puts
    a pool's threads (the loop's CPU or the other one) sticks to the thread
    and changes a round trip several-fold on VMs, so fresh threads each
    round keep one placement from deciding a contender's figures."""
    out: dict[int, Any] = {}
    for conc in cfg.p2_concurrency:
        wall: dict[str, list[float]] = {name: [] for name in calls}
        cpu: dict[str, list[float]] = {name: [] for name in calls}
        # Threads started by a timed batch (a pool that keeps growing).
        spawned = {name: 0 for name in calls}

        async def one_round(order: list[str]) -> None:
            for name in order:          # warm-up: this round's threads start
                await _batch(calls[name], conc, max(conc, 32))
            for name in order:
                before = _observe.thread_count()
                w, c = await _batch(calls[name], conc, cfg.p2_calls)
                spawned[name] += max(0, _observe.thread_count() - before)
                wall[name].append(w)
                cpu[name].append(c)
            # asyncio.run / uvloop.run end the loop's default executor and
            # anyio's workers; the module-level aiocancel pool is ours to end.
            aiocancel.get_executor().shutdown(wait=True)
            calls[FLOOR].stop()

        for order in rotations(list(calls), cfg.p2_rounds):
            _loops.run_on(kind, lambda: one_round(order))
        out[conc] = (wall, cpu, spawned)
    return out


def run(cfg: Config) -> list[Row]:
    calls, missing = contenders()
    rows = []
    for kind in _loops.loop_kinds():
        results = _measure(kind, cfg, calls)
        for conc, (wall, cpu, spawned) in results.items():
            where = f"{kind}, {conc} awaiter{'s' if conc > 1 else ''}"
            for name in list(calls) + list(missing):
                key = f"P2/{kind}/{conc}/{name}"
                if name in missing:
                    rows.append(Row(key, "P2", f"{name} ({where})", None, "us/call",
                                    note=f"n/a ({missing[name]})"))
                    continue
                us = [x * 1e6 for x in wall[name]]
                row = Row(key, "P2", f"{name} ({where})", median(us), "us/call",
                          detail=f"{1e6 / median(us):,.0f} calls/s, "
                                 f"cpu {median(cpu[name]) * 1e6:.1f} us/call, "
                                 f"{spawned[name]} threads started by timed calls",
                          extra={"wall_us": us, "cpu_us": [x * 1e6 for x in cpu[name]],
                                 "threads_started": spawned[name]})
                if name != BASELINE:
                    _compare(row, wall[name], wall[BASELINE], BASELINE)
                if name == "aiocancel.to_thread":
                    row.target = TARGET
                rows.append(row)
                if name == "aiocancel.to_thread":
                    cpu_us = [x * 1e6 for x in cpu[name]]
                    cpu_row = Row(key + "/cpu", "P2", f"  cpu of aiocancel.to_thread ({where})",
                                  median(cpu_us), "us/call", target=1.0)
                    _compare(cpu_row, cpu[name], cpu[BASELINE], f"{BASELINE}'s cpu")
                    rows.append(cpu_row)
    return rows


def _compare(row: Row, values: list[float], base: list[float], versus: str) -> None:
    ratios = paired_ratios(values, base)
    row.ratio, row.versus = median(ratios), versus
    row.spread = (percentile(ratios, 25), percentile(ratios, 75))
