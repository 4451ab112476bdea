"""Fallback backend: no trampoline on this platform (or AIOCANCEL_FALLBACK=1).

Same API as the compiled ``_cancel`` and ``_syscalls`` modules. Nothing
interrupts a blocked call here: a cancel request only sets the thread's
pending flag, and it acts at the next cancellation point that is *entered*
(``testcancel()`` or the start of an ``aiocancel.syscalls`` call), or is seen
by the executor when the job returns. Results are never lost: a call that
started always returns what the kernel produced.
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
import time
import types
from typing import Any, Callable, Literal, NoReturn

from ._errors import Cancelled, ThreadCancelled

# mypy: disable-error-code="no-any-return"
# (The stdlib callables are bound through _bind, as some are missing on some
# platforms, so their results are Any here. The typed interface of what this
# module provides is the compiled modules' stubs: _cancel.pyi, _syscalls.pyi...)

try:
    import fcntl as _fcntl
except ImportError:             # Windows
    _fcntl = None   # type: ignore[assignment]


def _unavailable(name: str) -> Callable[..., NoReturn]:
    """What a call this platform's stdlib lacks becomes (os.preadv on macOS,
    select.epoll or fcntl on Windows): an OSError(ENOSYS) when called, so
    that importing aiocancel never fails for it."""
    def call(*args: object, **kwargs: object) -> NoReturn:
        raise OSError(errno.ENOSYS, f"{name} is not available on {sys.platform}")
    call.__name__ = name.rpartition(".")[2]
    return call


def _bind(module: Any, name: str) -> Any:
    found = getattr(module, name, None) if module is not None else None
    return found if found is not None else _unavailable(
        f"{getattr(module, '__name__', 'fcntl')}.{name}")


# The stdlib calls this module makes, bound at import: aiocancel.patch() later
# points the module attributes at stand-ins that call back into this module.
_std = types.SimpleNamespace(
    sleep=time.sleep,
    **{name: _bind(_select, name) for name in ("poll", "select")},
    epoll=getattr(_select, "epoll", None),
    **{name: _bind(_fcntl, name) for name in ("flock", "lockf", "fcntl")},
    **{name: _bind(signal, name) for name in ("sigtimedwait", "sigwaitinfo")},
    **{name: _bind(os, name) for name in (
        "read", "write", "readv", "writev", "pread", "pwrite", "preadv",
        "pwritev", "waitpid", "waitid", "fsync", "fdatasync")})

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


def _with_sock(obj: Any, method: str, *args: Any) -> Any:
    testcancel()
    sock = _sock(obj)
    try:
        # _socket.socket's own method: socket.socket's may be patched.
        return getattr(_socket.socket, method)(sock, *args)
    finally:
        if sock is not obj:
            sock.detach()


# accept4's flags where the socket module has no names for them (macOS,
# Windows): Linux's values, so that the default still means close-on-exec.
_SOCK_CLOEXEC: int = getattr(socket, "SOCK_CLOEXEC", 0o2000000)
_SOCK_NONBLOCK: int = getattr(socket, "SOCK_NONBLOCK", 0o4000)


def _nonneg(n: int, what: str) -> None:
    if n < 0:
        raise ValueError(f"negative size in {what}")


def read(fd: int, n: int) -> bytes:
    _nonneg(n, "read")
    testcancel()
    return _std.read(fd, n)


def readinto(fd: int, buffer: Any) -> int:
    testcancel()
    try:
        return _std.readv(fd, [buffer])
    except BufferError:
        raise TypeError("a writable bytes-like object is required") from None


def write(fd: int, data: Any) -> int:
    testcancel()
    return _std.write(fd, data)


def pread(fd: int, n: int, offset: int) -> bytes:
    _nonneg(n, "pread")
    testcancel()
    return _std.pread(fd, n, offset)


def pwrite(fd: int, data: Any, offset: int) -> int:
    testcancel()
    return _std.pwrite(fd, data, offset)


def recv(sock: Any, n: int, flags: int = 0) -> bytes:
    return _with_sock(sock, "recv", n, flags)


def recv_into(sock: Any, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
    return _with_sock(sock, "recv_into", buffer, nbytes, flags)


def send(sock: Any, data: Any, flags: int = 0) -> int:
    return _with_sock(sock, "send", data, flags)


def sendall(sock: Any, data: Any, flags: int = 0) -> None:
    return _with_sock(sock, "sendall", data, flags)


def accept(sock: Any, flags: int = _SOCK_CLOEXEC) -> tuple[int, Any]:
    fd, address = _with_sock(sock, "_accept")
    if flags & _SOCK_NONBLOCK:
        os.set_blocking(fd, False)
    if not flags & _SOCK_CLOEXEC:
        os.set_inheritable(fd, True)
    return fd, address


def connect(sock: Any, address: Any) -> None:
    return _with_sock(sock, "connect", address)


def poll(fds: Any, timeout: float | None = None) -> list[tuple[int, int]]:
    testcancel()
    poller = _std.poll()
    for fd, events in fds:
        if not (isinstance(fd, int) and fd < 0):     # poll(2) ignores those
            poller.register(fd, events)
    ms = None if timeout is None or timeout < 0 else timeout * 1000.0
    return poller.poll(ms)


def sleep(seconds: float) -> None:
    testcancel()
    _std.sleep(seconds)


def waitpid(pid: int, options: int) -> tuple[int, int]:
    testcancel()
    return _std.waitpid(pid, options)


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


# ---- files (aiocancel._files) ------------------------------------------------

def _fileno(obj: Any) -> int:
    return obj if isinstance(obj, int) else obj.fileno()


def readv(fd: Any, buffers: Any) -> int:
    testcancel()
    return _std.readv(_fileno(fd), buffers)


def writev(fd: Any, buffers: Any) -> int:
    testcancel()
    return _std.writev(_fileno(fd), buffers)


def preadv(fd: Any, buffers: Any, offset: int, flags: int = 0) -> int:
    testcancel()
    return _std.preadv(_fileno(fd), buffers, offset, flags)


def pwritev(fd: Any, buffers: Any, offset: int, flags: int = 0) -> int:
    testcancel()
    return _std.pwritev(_fileno(fd), buffers, offset, flags)


def open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: Any = None) -> int:
    testcancel()
    return os.open(path, flags, mode,
                   dir_fd=None if dir_fd is None else _fileno(dir_fd))


def openat(dir_fd: Any, path: Any, flags: int, mode: int = 0o777) -> int:
    return open(path, flags, mode, dir_fd=dir_fd)


def flock(fd: Any, operation: int) -> None:
    testcancel()
    _std.flock(fd, operation)


def lockf(fd: Any, cmd: int, len: int = 0, start: int = 0, whence: int = 0) -> None:
    testcancel()
    _std.lockf(fd, cmd, len, start, whence)


def fcntl(fd: Any, cmd: int, arg: Any = 0) -> Any:
    testcancel()
    return _std.fcntl(fd, cmd, arg)


def fsync(fd: Any) -> None:
    testcancel()
    _std.fsync(fd)


def fdatasync(fd: Any) -> None:
    testcancel()
    _std.fdatasync(fd)


# ---- sockets (aiocancel._sockets) --------------------------------------------

def recvfrom(sock: Any, n: int, flags: int = 0) -> tuple[bytes, Any]:
    return _with_sock(sock, "recvfrom", n, flags)


def recvfrom_into(sock: Any, buffer: Any, nbytes: int = 0,
                  flags: int = 0) -> tuple[int, Any]:
    return _with_sock(sock, "recvfrom_into", buffer, nbytes, flags)


def recvmsg(sock: Any, bufsize: int, ancbufsize: int = 0,
            flags: int = 0) -> tuple[bytes, list[Any], int, Any]:
    return _with_sock(sock, "recvmsg", bufsize, ancbufsize, flags)


def sendto(sock: Any, data: Any, *args: Any) -> int:
    return _with_sock(sock, "sendto", data, *args)


def sendmsg(sock: Any, buffers: Any, ancdata: Any = (), flags: int = 0,
            address: Any = None) -> int:
    if address is None:
        return _with_sock(sock, "sendmsg", buffers, ancdata, flags)
    return _with_sock(sock, "sendmsg", buffers, ancdata, flags, address)


# ---- waits (aiocancel._waits) ------------------------------------------------

def select(rlist: Any, wlist: Any, xlist: Any,
           timeout: float | None = None) -> tuple[list[Any], list[Any], list[Any]]:
    testcancel()
    return _std.select(rlist, wlist, xlist, timeout)


def epoll_wait(epfd: Any, timeout: float | None = None,
               maxevents: int = -1) -> list[tuple[int, int]]:
    testcancel()
    if _std.epoll is None:
        _unavailable("select.epoll")()
    if isinstance(epfd, _std.epoll):
        return epfd.poll(timeout, maxevents)
    # A duplicate fd names the same epoll instance; closing it leaves epfd.
    with _std.epoll.fromfd(os.dup(_fileno(epfd))) as ep:
        return ep.poll(timeout, maxevents)


def waitid(idtype: int, id: int, options: int) -> Any:
    testcancel()
    return _std.waitid(idtype, id, options)


def sigtimedwait(sigset: Any, timeout: float) -> Any:
    testcancel()
    return _std.sigtimedwait(sigset, timeout)


def sigwaitinfo(sigset: Any) -> Any:
    testcancel()
    return _std.sigwaitinfo(sigset)


# ---- futex (aiocancel._futex) ------------------------------------------------

def futex_wait(buffer: Any, expected: int, timeout: float | None = None, *,
               offset: int = 0, private: bool = True) -> bool:
    testcancel()
    return _futex_call(buffer, offset, private, 0, expected, timeout)


def futex_wake(buffer: Any, n: int = 1, *, offset: int = 0,
               private: bool = True) -> int:
    return _futex_call(buffer, offset, private, 1, n, None)


_SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}


def _libc() -> Any:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _libc_error() -> OSError:
    import ctypes
    err = ctypes.get_errno()
    return OSError(err, os.strerror(err))


def _futex_call(buffer: Any, offset: int, private: bool, op: int, value: int,
                timeout: float | None) -> Any:
    """FUTEX_WAIT (op 0) / FUTEX_WAKE (op 1) through ctypes: the fallback
    runs where the compiled core is off, which may still be Linux."""
    import ctypes
    import platform
    import sys
    nr = _SYS_FUTEX.get(platform.machine().lower())
    if not sys.platform.startswith("linux") or nr is None:
        raise OSError(errno.ENOSYS, "futex is Linux-only")
    view = memoryview(buffer)
    if view.readonly:
        raise TypeError("a writable bytes-like object is required")
    if offset < 0 or offset + 4 > view.nbytes:
        raise ValueError(f"offset {offset} leaves no 4-byte futex word")
    c_buf = (ctypes.c_char * view.nbytes).from_buffer(view.cast("B"))
    addr = ctypes.addressof(c_buf) + offset
    if addr % 4:
        raise ValueError("the futex word must be 4-byte aligned")
    ts = None
    if timeout is not None:
        secs = max(float(timeout), 0.0)       # struct timespec: two longs
        ts = (ctypes.c_long * 2)(int(secs), int((secs % 1) * 1e9))
    libc = _libc()
    r = libc.syscall(ctypes.c_long(nr), ctypes.c_void_p(addr),
                     ctypes.c_int(op | (128 if private else 0)),
                     ctypes.c_int(value & 0xFFFFFFFF if op == 0 else value),
                     ctypes.byref(ts) if ts is not None else None, None,
                     ctypes.c_int(0))
    del c_buf
    if r >= 0:
        return True if op == 0 else r
    err = ctypes.get_errno()
    if op == 0 and err == errno.ETIMEDOUT:
        return False
    if op == 0 and err in (errno.EAGAIN, errno.EINTR):
        return True
    raise OSError(err, os.strerror(err))


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


# ---- System V message queues (aiocancel._ipc) ---------------------------------

def msgsnd(msqid: int, mtype: int, data: Any, flags: int = 0) -> None:
    import ctypes
    testcancel()
    payload = bytes(memoryview(data))
    msg = ctypes.create_string_buffer(ctypes.sizeof(ctypes.c_long) + len(payload))
    ctypes.c_long.from_buffer(msg).value = mtype
    ctypes.memmove(ctypes.addressof(msg) + ctypes.sizeof(ctypes.c_long), payload,
                   len(payload))
    if _libc().msgsnd(msqid, msg, ctypes.c_size_t(len(payload)), flags) != 0:
        raise _libc_error()


def msgrcv(msqid: int, maxsize: int, mtype: int = 0, flags: int = 0) -> tuple[int, bytes]:
    import ctypes
    if maxsize < 0:
        raise ValueError("negative maxsize in msgrcv")
    testcancel()
    msg = ctypes.create_string_buffer(ctypes.sizeof(ctypes.c_long) + maxsize)
    libc = _libc()
    libc.msgrcv.restype = ctypes.c_ssize_t
    n = libc.msgrcv(msqid, msg, ctypes.c_size_t(maxsize), ctypes.c_long(mtype), flags)
    if n < 0:
        raise _libc_error()
    head = ctypes.sizeof(ctypes.c_long)
    return ctypes.c_long.from_buffer(msg).value, msg.raw[head:head + n]


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
