"""Observable states of this process, and waiting for them: what /proc says
(threads blocked in a syscall, thread and fd counts, resident memory), and
`until` / `wait_for` a predicate holds. The bench (aiocancel/bench/) and the
demo (aiocancel/demo.py) wait on these instead of sleeping and hoping.

Internal, shared by both: not public API. A wait that times out raises
TimeoutError (reaching `LIMIT` means the caller is broken, not slow).
"""
from __future__ import annotations

import asyncio
import os
import time
from typing import Callable

from ._numbering import numbering

LIMIT = 60.0    # seconds; reaching it means the bench is broken, not slow

# Syscall numbers, to check WHICH call a thread sleeps in.
_NR = {
    "x86_64": {"read": 0, "accept4": 288, "accept": 43, "ppoll": 271},
    "aarch64": {"read": 63, "accept4": 242, "ppoll": 73},
}


def _nr() -> dict[str, int]:
    """The table /proc uses here (the host's under qemu-user)."""
    return _NR.get(numbering()[0], {})

_PAGE = os.sysconf("SC_PAGE_SIZE")


def blocked_in(native_id: int, syscall: str, arg0: int | None = None) -> bool:
    """Whether thread `native_id` sleeps in `syscall` (with first argument
    `arg0` if given). False if it is gone, or if this machine's syscall
    numbers are unknown (callers then fall back to `sleeping`)."""
    nr = _nr().get(syscall)
    if nr is None:
        return sleeping(native_id)
    base = f"/proc/self/task/{native_id}"
    try:
        with open(f"{base}/syscall") as f:
            fields = f.read().split()
        if not fields or fields[0] in ("running", "-1") or int(fields[0]) != nr:
            return False
        if arg0 is not None and int(fields[1], 16) != arg0 & 0xFFFFFFFFFFFFFFFF:
            return False
        return _state(base) == "S"
    except (OSError, ValueError, IndexError):
        return False


def sleeping(native_id: int) -> bool:
    """Whether thread `native_id` sleeps (state 'S') in the kernel."""
    try:
        return _state(f"/proc/self/task/{native_id}") == "S"
    except OSError:
        return False


def _state(base: str) -> str:
    with open(f"{base}/stat") as f:
        stat = f.read()
    return stat[stat.rindex(")") + 2:].split()[0]


def count_blocked_in(syscall: str, arg0: int | None = None) -> int:
    """How many threads of this process sleep in `syscall` (on `arg0`)."""
    return sum(blocked_in(int(tid), syscall, arg0) for tid in os.listdir("/proc/self/task"))


def thread_count() -> int:
    """Kernel threads of this process (not only the ones threading knows)."""
    return len(os.listdir("/proc/self/task"))


def fd_count() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def rss() -> int:
    """Resident set size in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE

def wait_for(predicate: Callable[[], object], what: str, limit: float = LIMIT) -> None:
    """Poll `predicate` from a thread (50 us pauses hand the GIL over)."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench: timed out after {limit} s waiting for {what}")
        time.sleep(50e-6)


async def until(predicate: Callable[[], object], what: str, limit: float = LIMIT,
                pause: float = 0.0, fail: bool = True) -> bool:
    """Poll `predicate` from a coroutine, letting the loop run in between
    (a front end may need a few iterations to hand the job over).

    ``pause=0`` polls every loop iteration, with a 20 us sleep that hands the
    GIL to workers: for latency runs, where the state comes fast. Returns
    whether it became true; raises TimeoutError after `limit` unless `fail`
    is false."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            if fail:
                raise TimeoutError(f"bench: timed out after {limit} s waiting for {what}")
            return False
        if pause:
            await asyncio.sleep(pause)
        else:
            await asyncio.sleep(0)
            time.sleep(20e-6)
    return True
