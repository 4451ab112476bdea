"""Memory: resident bytes per idle worker and per blocked job.

Each figure comes from a fresh interpreter (glibc caches thread stacks and
malloc arenas, so a second pool in the same process would look cheaper):
M workers are made to exist (M jobs meet at a barrier) and go idle, then M
tasks block in a read through the pool; the RSS steps divided by M are the
figures. The peer is a plain ThreadPoolExecutor with asyncio.to_thread."""
from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import aiocancel
from aiocancel import syscalls

from .. import _observe
from .._observe import LIMIT, until, wait_for
from ._config import Config
from ._report import Row

TITLE = "memory: RSS per idle worker and per blocked job (fresh process each)"


def _settled_rss() -> int:
    gc.collect()
    return _observe.rss()


async def _measure(aio: bool, m: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    base = _settled_rss()
    executor = (aiocancel.Executor(max_workers=m) if aio
                else concurrent.futures.ThreadPoolExecutor(max_workers=m))
    barrier = threading.Barrier(m, timeout=LIMIT)
    for future in [executor.submit(barrier.wait) for _ in range(m)]:
        future.result()
    wait_for(lambda: _sleeping_threads() >= m, f"{m} idle workers")
    idle = _settled_rss()
    r, w = os.pipe()
    try:
        if isinstance(executor, aiocancel.Executor):
            aiocancel.install(loop, executor)
            tasks = [loop.create_task(aiocancel.to_thread(syscalls.read, r, 1))
                     for _ in range(m)]
        else:
            loop.set_default_executor(executor)
            tasks = [loop.create_task(asyncio.to_thread(os.read, r, 1))
                     for _ in range(m)]
        await until(lambda: _observe.count_blocked_in("read", r) >= m,
                    f"{m} blocked reads", pause=0.005)
        blocked = _settled_rss()
        # Freed with data, the one way that works everywhere (fallback too).
        os.write(w, bytes(m))
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        os.close(r)
        os.close(w)
    executor.shutdown(wait=True)
    return {"idle_worker": (idle - base) / m, "blocked_job": (blocked - idle) / m}


def _sleeping_threads() -> int:
    return sum(_observe.sleeping(int(t)) for t in os.listdir("/proc/self/task"))


def measure(kind: str, m: int) -> dict[str, float]:
    """In this process: bytes per idle worker and per blocked job."""
    return asyncio.run(_measure(kind == "aiocancel", m))


def _in_subprocess(kind: str, m: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "aiocancel.bench.memory", kind, str(m)],
                         capture_output=True, text=True, timeout=LIMIT * 2)
    if out.returncode != 0:
        raise RuntimeError(f"memory bench ({kind}) failed:\n{out.stderr}")
    figures: dict[str, float] = json.loads(out.stdout)
    return figures


def run(cfg: Config) -> list[Row]:
    m = cfg.mem_workers
    rows = []
    peer = _in_subprocess("threadpool", m)
    mine = _in_subprocess("aiocancel", m)
    for what, label in (("idle_worker", "idle worker"), ("blocked_job", "blocked job")):
        rows.append(Row(f"MEM/{what}/aiocancel", "MEM", f"aiocancel: per {label}",
                        mine[what] / 1024, "KiB", detail=f"M={m}",
                        ratio=mine[what] / peer[what] if peer[what] > 0 else None,
                        versus="ThreadPoolExecutor"))
        rows.append(Row(f"MEM/{what}/threadpool", "MEM",
                        f"ThreadPoolExecutor{' + asyncio.to_thread' if what == 'blocked_job' else ''}: per {label}",
                        peer[what] / 1024, "KiB", detail=f"M={m}"))
    return rows


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], int(sys.argv[2]))))
