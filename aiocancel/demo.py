"""``python -m aiocancel demo``: cancel a thread blocked in a read."""
from __future__ import annotations

import argparse
import os
import threading
import time

import aiocancel
from aiocancel import syscalls


def blocked_read() -> float:
    """Block a thread in `syscalls.read` on an empty pipe, cancel it, and
    return the seconds from `cancel_thread` to the thread seeing ECANCELED."""
    r, w = os.pipe()
    started = threading.Event()
    seen: dict[str, float | BaseException] = {}

    def worker() -> None:
        seen["ident"] = threading.get_ident()
        with aiocancel.masked():
            started.set()
            try:
                syscalls.read(r, 1)
            except aiocancel.Cancelled as exc:
                seen["at"] = time.perf_counter()
                seen["exc"] = exc

    thread = threading.Thread(target=worker, name="demo-reader")
    thread.start()
    started.wait()
    _wait_blocked(thread)
    t0 = time.perf_counter()
    aiocancel.cancel_thread(thread.ident)
    thread.join()
    os.write(w, b"!")           # the pipe is still open and usable
    assert os.read(r, 1) == b"!"
    os.close(r)
    os.close(w)
    return seen["at"] - t0


def _wait_blocked(thread: threading.Thread, limit: float = 5.0) -> None:
    """Wait until the thread sleeps in the kernel (so the demo cancels a
    really blocked call, not one that has not started)."""
    path = f"/proc/self/task/{thread.native_id}/stat"
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "S":
                    return
        except OSError:
            return
        time.sleep(0.001)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiocancel demo")
    parser.parse_args(argv)
    mode = ("trampoline, signal %d" % aiocancel.cancel_signal()
            if aiocancel.SUPPORTED else "fallback (no trampoline here)")
    print(f"aiocancel {mode}")
    if not aiocancel.SUPPORTED:
        print("blocked calls are not interruptible on this platform")
        return 0
    took = blocked_read()
    print(f"read() blocked on an empty pipe: cancelled, ECANCELED after "
          f"{took * 1e6:.0f} us; the pipe is still usable")
    return 0
