"""What /proc says about this process: threads blocked in a syscall, thread
and fd counts, resident memory. The bench and the demo wait on these
observable states instead of sleeping and hoping."""
from __future__ import annotations

import os
import platform

# Syscall numbers, to check WHICH call a thread sleeps in.
_NR = {
    "x86_64": {"read": 0, "accept4": 288, "accept": 43, "ppoll": 271},
    "aarch64": {"read": 63, "accept4": 242, "ppoll": 73},
}
_MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}.get(
    platform.machine().lower(), platform.machine().lower())
NR: dict[str, int] = _NR.get(_MACHINE, {})

_PAGE = os.sysconf("SC_PAGE_SIZE")


def blocked_in(native_id: int, syscall: str, arg0: int | None = None) -> bool:
    """Whether thread `native_id` sleeps in `syscall` (with first argument
    `arg0` if given). False if it is gone, or if this machine's syscall
    numbers are unknown (callers then fall back to `sleeping`)."""
    nr = NR.get(syscall)
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
