"""The errors the running interpreter's stdlib raises for a bad argument,
asked of the stdlib itself at run time.

aiocancel's wrappers promise the stdlib's exceptions for bad input, and
CPython changes their texts between releases (fcntl's "string arg too long"
became "argument 3 is too long" in 3.14 and the limit went away in 3.15;
sendmsg's "3-item sequence" became "3-item tuple"; seconds conversions say
"integer or float" in 3.14 and accept any real number in 3.15; the timestamp
overflow text changed in 3.13 point releases). Hard-coding any of them is
wrong somewhere, so on an error path the wrappers call the stdlib
counterpart with the same bad value, in a way that cannot block or touch the
caller's fds, and raise what it raised.

Only error paths come here (never a fast path); every probe fd is private
and closed before returning. The probes call the stdlib's own functions even
under `aiocancel.patch()`, whose stand-ins would lead straight back here:
`_original` follows ``__wrapped__`` to the function a stand-in replaced, and
methods are taken from the C types (``_socket.socket``, ``select.epoll``),
which patch mode cannot change.
"""
from __future__ import annotations

import _socket
import _thread
import fcntl as _fcntl
import operator
import os
import select
import signal
import socket
import time
from typing import Any, Callable

__all__ = ["raised_by", "fcntl_arg_error", "open_path_error",
           "sendmsg_item_error", "seconds", "lock_timeout", "sleep_seconds",
           "select_probe", "epoll_probe", "sigtimedwait_probe"]


def _original(fn: Any) -> Any:
    """The function a patch-mode stand-in (or any wrapper) replaced."""
    while hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    return fn


def raised_by(fn: Callable[..., Any], *args: Any) -> Exception | None:
    """The exception ``fn(*args)`` raises, or None if it returns."""
    try:
        fn(*args)
    except Exception as exc:    # noqa: BLE001 - handed back to be re-raised
        return exc
    return None


def fcntl_arg_error(arg: Any) -> Exception | None:
    """What ``fcntl.fcntl`` raises for `arg` as its third argument, or None
    if it accepts it. Asked with F_GETFD on a private pipe, which is harmless
    when the argument is accepted."""
    r, w = os.pipe()
    try:
        return raised_by(_original(_fcntl.fcntl), r, _fcntl.F_GETFD, arg)
    finally:
        os.close(r)
        os.close(w)


def open_path_error(path: Any) -> Exception | None:
    """What ``os.open`` raises for `path` (one it must refuse: a NUL in it),
    or None if it opened it after all (the fd is closed at once)."""
    try:
        fd = _original(os.open)(path, os.O_RDONLY | os.O_CLOEXEC)
    except Exception as exc:    # noqa: BLE001 - handed back to be re-raised
        return exc
    os.close(fd)
    return None


def sendmsg_item_error(item: Any) -> Exception | None:
    """What ``socket.sendmsg`` raises for `item` as an ancillary data item,
    or None if it accepts it (then an empty message went to a private
    socket pair, closed at once)."""
    a, b = socket.socketpair()
    with a, b:
        return raised_by(_socket.socket.sendmsg, a, [], [item])


def _as_float(value: Any) -> float:
    """An accepted timeout as a float (real numbers, or integers by
    __index__)."""
    try:
        return float(value)
    except TypeError:
        return float(operator.index(value))


def seconds(value: Any, probe: Callable[[Any], Any] | None = None) -> float:
    """Convert a timeout the callers' fast path (float, int in range) did
    not take: return it in seconds if the stdlib accepts it, else raise the
    stdlib's exception — that of `probe` when given (a stdlib call taking
    the value, e.g. ``lambda v: select.select([], [], [], v)``, for its own
    TypeError text). `probe` is only called once the conversion itself is
    known to reject `value`, so it cannot block. None is refused here:
    callers for which None means "no timeout" handle it before."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with sock:
        # settimeout converts exactly as time.sleep, select and Lock.acquire
        # do, and never waits.
        exc = raised_by(_socket.socket.settimeout, sock, value)
    # (None means "no timeout" to settimeout only: a refusal for the others.)
    if (exc is None and value is not None) or (
            isinstance(exc, ValueError) and value == value and value < 0):
        # Accepted (3.15 takes any real number); a negative value is the
        # caller's to judge.
        return _as_float(value)
    if probe is not None:
        exc = raised_by(probe, value) or exc
    raise exc or TypeError(f"timeout must be a number, not {type(value).__name__}")


def lock_timeout(blocking: Any, timeout: Any) -> float:
    """Validate `blocking`/`timeout` exactly as ``_thread.lock.acquire``
    does (checks, order and texts), on a fresh lock that is free, so the
    probe never waits; return the timeout in seconds."""
    lock = _original(_thread.allocate_lock)()
    exc = raised_by(lock.acquire, blocking, timeout)
    if exc is not None:
        raise exc
    return _as_float(timeout)


def sleep_seconds(value: Any) -> float:
    """A sleep length as ``time.sleep`` takes it, or raise what it raises
    (type, NaN, overflow, negative); never sleeps: time.sleep is only called
    with a value it is known to refuse."""
    sleep = _original(time.sleep)
    secs = seconds(value, sleep)
    if secs < 0:
        raise raised_by(sleep, value) or ValueError(
            "sleep length must be non-negative")
    return secs


# `seconds` probes for the calls whose TypeError text is their own. Only
# called with a value the conversion refuses: they raise before waiting.
def select_probe(timeout: Any) -> None:
    """select.select's outcome for `timeout`."""
    _original(select.select)([], [], [], timeout)


def epoll_probe(timeout: Any) -> None:
    """select.epoll.poll's outcome for `timeout`."""
    with select.epoll() as ep:
        select.epoll.poll(ep, timeout)


def sigtimedwait_probe(timeout: Any) -> None:
    """signal.sigtimedwait's outcome for `timeout` (an empty set)."""
    _original(signal.sigtimedwait)((), timeout)
