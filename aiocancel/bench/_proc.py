"""What /proc says about this process: threads blocked in a syscall, thread
and fd counts, resident memory. The bench and the demo wait on these
observable states instead of sleeping and hoping."""
from __future__ import annotations

import os
import platform
import threading
import time

# Syscall numbers, to check WHICH call a thread sleeps in.
_NR = {
    "x86_64": {"read": 0, "accept4": 288, "accept": 43, "ppoll": 271},
    "aarch64": {"read": 63, "accept4": 242, "ppoll": 73},
}
_MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}.get(
    platform.machine().lower(), platform.machine().lower())
_numbers: dict[str, int] | None = None


def _reported_read_number() -> int | None:
    """The number /proc/self/task/TID/syscall shows for a thread of this
    process blocked in read(2) on an empty pipe (None if not seen within
    10 s). Natively, this machine's; under qemu-user (an aarch64 root on an
    x86_64 host) the file comes from the host kernel, which sees qemu's own
    host call: x86_64's read, 0, not aarch64's 63."""
    r, w = os.pipe()
    tid: list[int] = []
    ready = threading.Event()

    def reader() -> None:
        tid.append(threading.get_native_id())
        ready.set()
        os.read(r, 1)

    thread = threading.Thread(target=reader, name="aiocancel-nr-probe", daemon=True)
    thread.start()
    try:
        ready.wait()
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/self/task/{tid[0]}/syscall") as f:
                    fields = f.read().split()
            except OSError:
                return None
            # arg0 is the pipe: that pins down the read (not a futex or a
            # start-up call of the new thread).
            if len(fields) > 1 and fields[0].isdigit() and int(fields[1], 16) == r:
                return int(fields[0])
            time.sleep(0.001)
        return None
    finally:
        os.write(w, b"x")
        thread.join()
        os.close(r)
        os.close(w)


def numbers() -> dict[str, int]:
    """The syscall numbers /proc shows here (probed once): this machine's,
    or under qemu-user emulation the host's, whose calls qemu makes for the
    guest's (a guest read is a host read)."""
    global _numbers
    if _numbers is None:
        seen = _reported_read_number()
        own = _NR.get(_MACHINE, {})
        if seen is None or seen == own.get("read"):
            _numbers = own
        else:
            _numbers = next((t for t in _NR.values() if t["read"] == seen), {})
    return _numbers

_PAGE = os.sysconf("SC_PAGE_SIZE")


def blocked_in(native_id: int, syscall: str, arg0: int | None = None) -> bool:
    """Whether thread `native_id` sleeps in `syscall` (with first argument
    `arg0` if given). False if it is gone, or if this machine's syscall
    numbers are unknown (callers then fall back to `sleeping`)."""
    nr = numbers().get(syscall)
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
