"""Which syscall numbering /proc/self/task/TID/syscall uses in this process.

Natively it is this machine's own. Under qemu-user (an aarch64 program on an
x86_64 host, as in CI's arm64 Debian root) the file comes from the HOST
kernel, which sees qemu's own host syscalls: a guest thread blocked in
read(2) shows x86_64's read, 0, not aarch64's 63. Code that waits for a
thread to block in a given call (the demo, the bench, the test harness)
asks here which table to use. Found once, by looking: a helper thread
blocks in read(2) on a private pipe and the number shown for it is matched
against the known tables.
"""
from __future__ import annotations

import os
import threading
import time

from ._arch import machine

__all__ = ["MACHINE", "numbering"]

MACHINE = machine()

# read(2) in each table this package knows: enough to tell them apart.
_READ = {"x86_64": 0, "aarch64": 63}


def _reported_read_number(timeout: float = 10.0) -> int | None:
    """The number shown for a thread of this process blocked in read(2) on
    an empty private pipe (arg0 pins it down), or None if not seen."""
    r, w = os.pipe()
    tid: list[int] = []
    ready = threading.Event()

    def reader() -> None:
        tid.append(threading.get_native_id())
        ready.set()
        os.read(r, 1)

    t = threading.Thread(target=reader, name="aiocancel-numbering-probe",
                         daemon=True)
    t.start()
    try:
        ready.wait()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/self/task/{tid[0]}/syscall") as f:
                    fields = f.read().split()
            except OSError:
                return None
            if (len(fields) > 1 and fields[0].isdigit()
                    and int(fields[1], 16) == r):
                return int(fields[0])
            time.sleep(0.001)
        return None
    finally:
        os.write(w, b"x")
        t.join()
        os.close(r)
        os.close(w)


_NUMBERING: list[tuple[str, bool]] = []   # the answer, once probed


def numbering() -> tuple[str, bool]:
    """The machine whose syscall numbers /proc shows here, and whether that
    is not this machine (emulated). This machine's own when nothing else
    matches or nothing was seen. Probed once (a thread blocked in read)."""
    if not _NUMBERING:
        _NUMBERING.append(_probe_numbering())
    return _NUMBERING[0]


def _probe_numbering() -> tuple[str, bool]:
    seen = _reported_read_number()
    if seen is None or seen == _READ.get(MACHINE):
        return MACHINE, False
    for machine, number in _READ.items():
        if number == seen:
            return machine, True
    return MACHINE, False
