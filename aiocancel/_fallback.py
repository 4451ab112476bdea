"""Fallback core: no trampoline on this platform (or AIOCANCEL_FALLBACK=1).

What the compiled modules offer, in Python: the per-thread cancellation
state machine (ENABLE, DISABLE, MASKED, the job numbering the executor uses),
the classes (`masked`, `Waiter`, `StandIn`) and every `aiocancel.syscalls`
function, mapped to its stdlib counterpart by the syscall table
(`aiocancel._table`). Nothing interrupts a blocked call here: a cancel
request only sets the thread's pending flag, and it acts at the next
cancellation point that is *entered* (``testcancel()`` or the start of an
``aiocancel.syscalls`` call), or is seen by the executor when the job
returns. Results are never lost: a call that started always returns what the
kernel produced. A call the platform's stdlib lacks (``os.preadv`` on macOS,
``fcntl`` on Windows; futex and System V message queues everywhere, which
only the compiled core offers) raises OSError(ENOSYS) when called, so that
this module imports on every platform.
"""
from __future__ import annotations

import _socket
import _thread
import errno
import functools
import os
import select as _select
import signal
import socket
import sys
import threading
import types
from typing import Any, Callable, Literal, NoReturn

from . import _table
from ._errors import Cancelled, ThreadCancelled

# mypy: disable-error-code="no-any-return"
# (The stdlib callables are looked up by name, as some are missing on some
# platforms, so their results are Any here. The typed interface of what this
# module provides is the compiled modules' stubs: _cancel.pyi, _syscalls.pyi...)


def _unavailable(name: str, where: str = f"on {sys.platform}") -> Callable[..., NoReturn]:
    """What a call this platform's stdlib lacks becomes: an OSError(ENOSYS)
    when called, so that importing aiocancel never fails for it."""
    def call(*args: object, **kwargs: object) -> NoReturn:
        raise OSError(errno.ENOSYS, f"{name} is not available {where}")
    call.__name__ = call.__qualname__ = name.rpartition(".")[2]
    return call


def _bind(dotted: str) -> Any:
    """The stdlib callable `dotted` names, as it is now; socket methods are
    the C base class's (``socket.socket``'s may be patched later)."""
    owner, attr = _table.resolve(dotted)
    if owner is socket.socket:
        owner = _socket.socket
    found = getattr(owner, attr, None) if owner is not None else None
    return found if found is not None else _unavailable(dotted)


# The stdlib calls this module makes, bound at import: aiocancel.patch() later
# points the stdlib's attributes at stand-ins that call back into this module.
_std: dict[str, Any] = {entry.name: _bind(entry.stdlib)
                        for entry in _table.TABLE if entry.stdlib is not None}
_poll = _bind("select.poll")
_epoll = getattr(_select, "epoll", None)

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


_lock = threading.Lock()
_slots: dict[int, _Slot] = {}


class _Owner:
    """Lives in the thread's threading.local; its finalizer unregisters the
    thread when the thread's locals are cleared at exit."""

    __slots__ = ("slot",)
    # Held by the class: at interpreter exit the module's globals may already
    # be gone when the last locals are finalized.
    _registry = _slots

    def __init__(self, slot: _Slot) -> None:
        self.slot = slot

    def __del__(self) -> None:
        # No lock: a forked child finalizes the locals of the threads it
        # lost before any at-fork hook runs, and one of them may have held
        # _lock at the fork. dict.pop is atomic; readers take snapshots.
        self._registry.pop(self.slot.index, None)


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


if hasattr(os, "register_at_fork"):           # not on Windows: no fork there
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

    def __exit__(self, *exc_info: object) -> Literal[False]:
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


def _cancel_job(slot: int, generation: int) -> bool:
    with _lock:
        found = _slots.get(slot)
        return _request(found if found is not None and found.generation == generation
                        else None)


def _set_transparent(on: bool) -> None:
    """No foreign syscall can be interrupted in fallback mode: a no-op."""
    _register()


def _transparent() -> bool:
    return False


def _stats() -> dict[str, int]:
    """No signal is ever sent in fallback mode: all counters stay 0."""
    return dict.fromkeys(("sent", "send_esrch", "send_failed", "handled",
                          "redirected", "deferred", "ignored", "foreign"), 0)


def _cp_mode() -> int:
    slot = _self()
    if slot is None:
        return 0
    if slot.state != CANCEL_DISABLE:
        return 1
    return 2 if slot.acted and slot.cancel else 0


def _pending() -> bool:
    slot = _self()
    return bool(slot is not None and slot.cancel)




# ---- syscalls: a cancellation point at entry, then the stdlib call ----------

def _fileno(obj: Any) -> Any:
    """As the compiled calls: an fd, or an object with fileno() (anything
    else goes to the stdlib call, which raises its own TypeError)."""
    fileno = getattr(obj, "fileno", None) if not isinstance(obj, int) else None
    return obj if fileno is None else fileno()


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
    if obj < 0:              # as the compiled calls: the kernel's EBADF
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))
    return socket.socket(fileno=obj)


def _with_sock(obj: Any, method: Callable[..., Any], *args: Any) -> Any:
    """`method` (an unbound _socket.socket method) on `obj`'s socket."""
    sock = _sock(obj)
    try:
        return method(sock, *args)
    finally:
        if sock is not obj:
            sock.detach()


def _pass_through(entry: _table.Syscall) -> Callable[..., Any]:
    """The fallback of a table entry: the compiled call's parameters, a
    cancellation point at entry, then the stdlib call the table names with
    the same arguments (fd or socket first, as the compiled calls take them).
    A call without a stdlib counterpart is not a cancellation point: it does
    not exist here (OSError(ENOSYS))."""
    sig = _table.signature(entry.params)
    if entry.stdlib is None:
        missing = _unavailable(f"aiocancel.syscalls.{entry.name}",
                               "in fallback mode (only the compiled core has it)")
        missing.__signature__ = sig   # type: ignore[attr-defined]
        return missing
    std = _std[entry.name]
    first = next(iter(sig.parameters))

    def call(*args: Any, **kwargs: Any) -> Any:
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        obj, *rest = bound.args
        testcancel()
        if first == "sock":
            return _with_sock(obj, std, *rest)
        return std(_fileno(obj) if first == "fd" else obj, *rest)

    call.__name__ = call.__qualname__ = entry.name
    call.__doc__ = f"``{entry.stdlib}`` after a cancellation point (fallback mode)."
    call.__signature__ = sig          # type: ignore[attr-defined]
    return call


globals().update({entry.name: _pass_through(entry) for entry in _table.TABLE
                  if entry.name not in _table.HAND_WRITTEN})


# ---- the calls the stdlib does not offer as they are -------------------------

def _nonneg(n: int, what: str) -> None:
    if n < 0:                   # as the compiled calls (os.read says EINVAL)
        raise ValueError(f"negative size in {what}")


def read(fd: Any, n: int) -> bytes:
    _nonneg(n, "read")
    testcancel()
    return _std["read"](_fileno(fd), n)


def pread(fd: Any, n: int, offset: int) -> bytes:
    _nonneg(n, "pread")
    testcancel()
    return _std["pread"](_fileno(fd), n, offset)


def readinto(fd: Any, buffer: Any) -> int:
    testcancel()
    try:
        return _std["readv"](_fileno(fd), [buffer])
    except BufferError:
        raise TypeError("a writable bytes-like object is required") from None


def open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: Any = None) -> int:
    testcancel()
    return _std["open"](path, flags, mode,
                        dir_fd=None if dir_fd is None else _fileno(dir_fd))


def openat(dir_fd: Any, path: Any, flags: int, mode: int = 0o777) -> int:
    return open(path, flags, mode, dir_fd=dir_fd)


# accept4's flags where the socket module has no names for them (macOS,
# Windows): Linux's values, so that the default still means close-on-exec.
_SOCK_CLOEXEC: int = getattr(socket, "SOCK_CLOEXEC", 0o2000000)
_SOCK_NONBLOCK: int = getattr(socket, "SOCK_NONBLOCK", 0o4000)


def accept(sock: Any, flags: int = _SOCK_CLOEXEC) -> tuple[int, Any]:
    testcancel()
    fd, address = _with_sock(sock, _std["accept"])
    if flags & _SOCK_NONBLOCK:
        os.set_blocking(fd, False)
    if not flags & _SOCK_CLOEXEC:
        os.set_inheritable(fd, True)
    return fd, address


def sendmsg(sock: Any, buffers: Any, ancdata: Any = (), flags: int = 0,
            address: Any = None) -> int:
    testcancel()
    extra = () if address is None else (address,)
    return _with_sock(sock, _std["sendmsg"], buffers, ancdata, flags, *extra)


def poll(fds: Any, timeout: float | None = None) -> list[tuple[int, int]]:
    testcancel()
    poller = _poll()
    for fd, events in fds:
        if not (isinstance(fd, int) and fd < 0):     # poll(2) ignores those
            poller.register(fd, events)
    ms = None if timeout is None or timeout < 0 else timeout * 1000.0
    return poller.poll(ms)


def ppoll(fds: Any, timeout: float | None = None,
          sigmask: Any = None) -> list[tuple[int, int]]:
    testcancel()
    if sigmask is None:
        return poll(fds, timeout)
    # Not atomic as ppoll(2) is: good enough where nothing is interrupted.
    old = signal.pthread_sigmask(signal.SIG_SETMASK, sigmask)
    try:
        return poll(fds, timeout)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def epoll_wait(epfd: Any, timeout: float | None = None,
               maxevents: int = -1) -> list[tuple[int, int]]:
    testcancel()
    if _epoll is None:
        _unavailable("select.epoll")()
    if isinstance(epfd, _epoll):
        return epfd.poll(timeout, maxevents)
    # A duplicate fd names the same epoll instance; closing it leaves epfd.
    with _epoll.fromfd(os.dup(_fileno(epfd))) as ep:
        return ep.poll(timeout, maxevents)


class Waiter:
    """Fallback `aiocancel._futex.Waiter`: a plain lock whose blocking
    acquire is a cancellation point at entry only."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if blocking:
            testcancel()
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


# ---- patch-mode stand-ins (aiocancel._standin) -------------------------------

class StandIn:
    """Fallback `aiocancel._standin.StandIn`: the same dispatch, in Python."""

    def __init__(self, original: Any, cancellable: Any,
                 keep_cancelled: bool = True) -> None:
        self.original = original
        self.cancellable = cancellable
        self.keep_cancelled = keep_cancelled
        functools.update_wrapper(self, original)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        mode = _cp_mode()
        if mode == 1:
            return self.cancellable(*args, **kwargs)
        if mode == 2 and self.keep_cancelled:
            raise Cancelled()
        return self.original(*args, **kwargs)

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        return self if obj is None else types.MethodType(self, obj)

    def __reduce__(self) -> str:
        qualname: str = getattr(self, "__qualname__")    # set by update_wrapper
        return qualname
