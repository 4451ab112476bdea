"""P1: what a cancellation point costs when nothing is cancelled.

`aiocancel.syscalls.read(fd, 1)` against `os.read(fd, 1)` and against what
one writes by hand to make a read interruptible (poll the fd together with an
eventfd that a canceller would signal, then read), on a pipe that always
holds data, in a thread in MASKED state (where jobs run)."""
from __future__ import annotations

import fcntl
import gc
import itertools
import os
import select
import threading
import time
from typing import Any, Callable

import aiocancel
from aiocancel import syscalls

from ._config import Config
from ._report import Row
from ._stats import median, paired_ratios, percentile, rotations

TITLE = "per-call overhead: read(fd, 1) on a pipe holding data, MASKED thread"
TARGET = 1.05
_F_SETPIPE_SZ, _F_GETPIPE_SZ = 1031, 1032


def _handwritten(fd: int, efd: int) -> Callable[[int, int], bytes]:
    """The usual hand-made cancellable read: a canceller writes to `efd`."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    poller.register(efd, select.POLLIN)

    def read(fd: int, n: int) -> bytes:
        for ready, _ in poller.poll():
            if ready == efd:
                raise aiocancel.Cancelled()
        return os.read(fd, n)
    return read


def _batch(fn: Callable[[int, int], bytes], fd: int, calls: int) -> float:
    loop = itertools.repeat(None, calls)
    t0 = time.perf_counter_ns()
    for _ in loop:
        fn(fd, 1)
    return (time.perf_counter_ns() - t0) / calls


def _measure(cfg: Config) -> dict[str, list[float]]:
    r, w = os.pipe()
    efd = os.eventfd(0)
    try:
        try:
            fcntl.fcntl(w, _F_SETPIPE_SZ, 1 << 20)
        except OSError:
            pass        # fs.pipe-max-size: keep the default 64 KiB
        calls = min(cfg.p1_calls, fcntl.fcntl(r, _F_GETPIPE_SZ))
        contenders = {"os.read": os.read, "aiocancel.syscalls.read": syscalls.read,
                      "poll(fd, eventfd) + os.read": _handwritten(r, efd)}
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        payload = bytes(calls)
        gc.collect()
        gc.disable()
        try:
            with aiocancel.masked():
                for name in contenders:          # warm-up, not recorded
                    os.write(w, payload)
                    _batch(contenders[name], r, calls)
                for order in rotations(list(contenders), cfg.p1_rounds):
                    for name in order:
                        os.write(w, payload)
                        samples[name].append(_batch(contenders[name], r, calls))
        finally:
            gc.enable()
        return samples
    finally:
        for fd in (r, w, efd):
            os.close(fd)


def run(cfg: Config) -> list[Row]:
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["samples"] = _measure(cfg)
        except BaseException as exc:    # reported in the calling thread
            out["error"] = exc

    # A fresh thread: registering it (masked()) leaves the caller alone.
    thread = threading.Thread(target=target, name="aiocancel-bench-p1")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    samples = out["samples"]
    base = samples["os.read"]
    rows = []
    for name, values in samples.items():
        row = Row(key=f"P1/{name}", section="P1", case=name,
                  value=median(values), unit="ns/call",
                  extra={"samples_ns": values})
        if name != "os.read":
            ratios = paired_ratios(values, base)
            row.ratio, row.versus = median(ratios), "os.read"
            row.spread = (percentile(ratios, 25), percentile(ratios, 75))
        if name == "aiocancel.syscalls.read":
            row.target = TARGET
            if not aiocancel.SUPPORTED:
                row.note = "fallback mode: testcancel() + os.read"
        rows.append(row)
    return rows
