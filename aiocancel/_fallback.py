"""Fallback backend: no trampoline on this platform (or AIOCANCEL_FALLBACK=1).

Same API as the compiled ``_cancel`` and ``_syscalls`` modules. Nothing
interrupts a blocked call here: a cancel request only sets the thread's
pending flag, and it acts at the next cancellation point that is *entered*
(``testcancel()`` or the start of an ``aiocancel.syscalls`` call), or is seen
by the executor when the job returns. Results are never lost: a call that
started always returns what the kernel produced.
"""
from __future__ import annotations

import os
import select
import socket
import threading
import time
from typing import Any

from ._errors import Cancelled, ThreadCancelled

CANCEL_ENABLE = 0
CANCEL_DISABLE = 1
CANCEL_MASKED = 2


class _Slot:
    __slots__ = ("index", "ident", "state", "cancel", "generation", "acted",
                 "__weakref__")

    def __init__(self, index: int, ident: int) -> None:
        self.index = index
        self.ident = ident
        self.state = CANCEL_ENABLE
        self.cancel = False
        self.generation = 0
        self.acted = False


class _Owner:
    """Lives in the thread's threading.local; its finalizer unregisters the
    thread when the thread's locals are cleared at exit."""

    __slots__ = ("slot",)

    def __init__(self, slot: _Slot) -> None:
        self.slot = slot

    def __del__(self) -> None:
        # No lock: a forked child finalizes the locals of the threads it
        # lost before any at-fork hook runs, and one of them may have held
        # _lock at the fork. dict.pop is atomic; readers take snapshots.
        _slots.pop(self.slot.index, None)


_lock = threading.Lock()
_slots: dict[int, _Slot] = {}
_next_index = 0
_local = threading.local()


def _self() -> _Slot | None:
    owner = getattr(_local, "owner", None)
    return owner.slot if owner is not None else None


def _after_fork_in_child() -> None:
    """Only the forking thread exists in a forked child: forget the other
    threads' registrations, and drop a request aimed at the parent's thread
    (the child starts clean, as with the compiled core). The lock may have
    been held by a thread that is gone: make a new one."""
    global _lock
    _lock = threading.Lock()
    me = _self()
    _slots.clear()
    if me is not None:
        me.cancel = False
        me.generation += 1
        _slots[me.index] = me


os.register_at_fork(after_in_child=_after_fork_in_child)


def _register() -> _Slot:
    global _next_index
    slot = _self()
    if slot is None:
        with _lock:
            slot = _Slot(_next_index, threading.get_ident())
            _slots[_next_index] = slot
            _next_index += 1
        _local.owner = _Owner(slot)
    return slot


def cancel_signal() -> int:
    """No signal is used in fallback mode: 0."""
    return 0


def setcancelstate(state: int) -> int:
    if not isinstance(state, int):
        raise TypeError(f"an integer is required, not {type(state).__name__}")
    if state not in (CANCEL_ENABLE, CANCEL_DISABLE, CANCEL_MASKED):
        raise ValueError(f"invalid cancel state {state!r}")
    slot = _register()
    old, slot.state = slot.state, state
    return old


def getcancelstate() -> int:
    slot = _self()
    return CANCEL_ENABLE if slot is None else slot.state


class masked:
    """Context manager: run the block in CANCEL_MASKED state, then restore."""

    def __enter__(self) -> "masked":
        self._old = setcancelstate(CANCEL_MASKED)
        return self

    def __exit__(self, *exc_info: object) -> bool:
        setcancelstate(self._old)
        return False


def _request(slot: _Slot | None) -> bool:
    if slot is None:
        return False
    slot.cancel = True
    return True


def cancel_thread(ident: int) -> bool:
    if not isinstance(ident, int):
        raise TypeError(f"thread ident must be an int, not {type(ident).__name__}")
    with _lock:
        return _request(next((s for s in list(_slots.values()) if s.ident == ident),
                             None))


def testcancel() -> None:
    slot = _self()
    if slot is None or slot.state == CANCEL_DISABLE or not slot.cancel:
        return
    how, slot.state, slot.acted = slot.state, CANCEL_DISABLE, True
    raise ThreadCancelled() if how == CANCEL_ENABLE else Cancelled()


def _worker_slot() -> int:
    slot = _register()
    slot.state = CANCEL_DISABLE
    return slot.index


def _job_begin() -> tuple[int, int]:
    slot = _register()
    with _lock:
        slot.generation += 1
        slot.cancel = False
    slot.acted = False
    slot.state = CANCEL_MASKED
    return slot.index, slot.generation


def _job_end() -> bool:
    slot = _self()
    if slot is None:
        return False
    acted, slot.acted, slot.state = slot.acted, False, CANCEL_DISABLE
    with _lock:
        slot.generation += 1
    return acted


def _cancel_job(index: int, generation: int) -> bool:
    with _lock:
        slot = _slots.get(index)
        return _request(slot if slot is not None and slot.generation == generation else None)


def _set_transparent(on: bool) -> None:
    """No foreign syscall can be interrupted in fallback mode: a no-op."""
    _register()


def _transparent() -> bool:
    return False


def _stats() -> dict[str, int]:
    """No signal is ever sent in fallback mode: all counters stay 0."""
    return dict.fromkeys(("sent", "send_esrch", "send_failed", "handled",
                          "redirected", "deferred", "ignored", "foreign"), 0)


def _pending() -> bool:
    slot = _self()
    return bool(slot is not None and slot.cancel)


# ---- syscalls: a cancellation point at entry, then the stdlib call ----------

def _sock(obj: Any) -> socket.socket:
    if isinstance(obj, socket.socket):
        return obj
    if not isinstance(obj, int):
        # As the compiled module: an fd or an object with fileno(). (Above
        # all not None: socket.socket(fileno=None) makes a NEW socket, which
        # _with_sock would then detach and leak.)
        fileno = getattr(obj, "fileno", None)
        if fileno is None:
            raise TypeError(f"expected a file descriptor (int) or an object "
                            f"with fileno(), not {type(obj).__name__}")
        obj = fileno()
        if not isinstance(obj, int):
            raise TypeError("fileno() returned a non-integer")
    return socket.socket(fileno=obj)


def _with_sock(obj: Any, method: str, *args: Any) -> Any:
    testcancel()
    sock = _sock(obj)
    try:
        return getattr(sock, method)(*args)
    finally:
        if sock is not obj:
            sock.detach()


def _nonneg(n: int, what: str) -> None:
    if n < 0:
        raise ValueError(f"negative size in {what}")


def read(fd: int, n: int) -> bytes:
    _nonneg(n, "read")
    testcancel()
    return os.read(fd, n)


def readinto(fd: int, buffer: Any) -> int:
    testcancel()
    try:
        return os.readv(fd, [buffer])
    except BufferError:
        raise TypeError("a writable bytes-like object is required") from None


def write(fd: int, data: Any) -> int:
    testcancel()
    return os.write(fd, data)


def pread(fd: int, n: int, offset: int) -> bytes:
    _nonneg(n, "pread")
    testcancel()
    return os.pread(fd, n, offset)


def pwrite(fd: int, data: Any, offset: int) -> int:
    testcancel()
    return os.pwrite(fd, data, offset)


def recv(sock: Any, n: int, flags: int = 0) -> bytes:
    return _with_sock(sock, "recv", n, flags)


def recv_into(sock: Any, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
    return _with_sock(sock, "recv_into", buffer, nbytes, flags)


def send(sock: Any, data: Any, flags: int = 0) -> int:
    return _with_sock(sock, "send", data, flags)


def sendall(sock: Any, data: Any, flags: int = 0) -> None:
    return _with_sock(sock, "sendall", data, flags)


def accept(sock: Any, flags: int = socket.SOCK_CLOEXEC) -> tuple[int, Any]:
    fd, address = _with_sock(sock, "_accept")
    if flags & socket.SOCK_NONBLOCK:
        os.set_blocking(fd, False)
    return fd, address


def connect(sock: Any, address: Any) -> None:
    return _with_sock(sock, "connect", address)


def poll(fds: Any, timeout: float | None = None) -> list[tuple[int, int]]:
    testcancel()
    poller = select.poll()
    for fd, events in fds:
        poller.register(fd, events)
    ms = None if timeout is None or timeout < 0 else timeout * 1000.0
    return poller.poll(ms)


def sleep(seconds: float) -> None:
    testcancel()
    time.sleep(seconds)


def waitpid(pid: int, options: int) -> tuple[int, int]:
    testcancel()
    return os.waitpid(pid, options)
