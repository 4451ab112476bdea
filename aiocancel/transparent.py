"""Transparent mode: blocking syscalls inside unmodified C code become
cancellation points.

Patch mode and `aiocancel.syscalls` reach calls that go through aiocancel's
trampoline. OpenSSL, libpq and most C extensions call libc's ``read``,
``recvfrom``, ``poll``... directly. In transparent mode, a cancel request
aimed at a worker also acts on those calls, under the trampoline's rule —
only where the kernel has produced nothing yet:

* a call stopped on its syscall instruction (before it ran, or rewound by the
  kernel to restart it after our signal) whose number is on the allow-list
  (reads, receives, writes and sends that moved no byte, accept, connect,
  wait4/waitid, openat, flock, fcntl F_SETLKW) fails with ECANCELED without
  running;
* an EINTR-style wait (poll, select, epoll_wait, nanosleep, clock_nanosleep)
  that the canceller saw the thread blocked in (/proc/self/task/TID/syscall)
  has its -EINTR turned into -ECANCELED, if the interrupted context still
  shows that very call (return address, stack pointer and argument
  registers; on aarch64 the number too). glibc >= 2.41 and musl return every
  cancellable call, CPython's GIL and lock futex waits included, through one
  ``syscall`` instruction: the return address alone would have turned a
  futex's EINTR into ECANCELED, which makes glibc abort.

A request that arrives while a foreign signal handler runs on top of the
job's call (the interrupted context blocks signals the job's mask does not)
is deferred as the trampoline path defers it: the handler's own syscalls are
not touched, and the request acts on the job's call when the handler
returns.

libc then returns -1 with errno ECANCELED to the foreign code, which fails as
it fails on any I/O error (``OSError``, ``requests.ConnectionError``...).
A cancelled TLS read raises ``OSError(ECANCELED)`` on CPython 3.13; 3.11 and
3.12 report it as an unexpected EOF, ``ssl.SSLEOFError``, which an
``SSLSocket`` with the default ``suppress_ragged_eofs=True`` returns as
``b""`` — the cancelled ``recv`` then looks like the peer closing, the job
*returns*, and `aiocancel.to_thread` hands ``b""`` to the task with the
cancellation left pending for its next ``await``. The thread is in DISABLE state from then
on (one-off), so code that retries does not spin; `aiocancel.to_thread`,
`Executor` futures and the anyio backends count a job that raised after that
as cancelled. A request that lands elsewhere (in Python code, in a futex wait)
does nothing and is re-sent with a back-off (1 ms doubling to 50 ms) until
the job acts on it or ends, never while an earlier instance is still pending
(a job that blocks the cancel signal holds exactly one). Never touched: futex waits (CPython's own locks;
glibc aborts on unexpected futex errors) and close.

Off by default. Turn it on with ``aiocancel.install(transparent=True)``,
``Executor(transparent=True)``, or `enable` in a worker's initializer.

x86_64 only for now: on aarch64 turning it on raises `NotImplementedError`
(see `UNSUPPORTED_REASON`). The canceller decides what a blocked thread is
doing from /proc/self/task/TID/syscall; under qemu-user — the only aarch64
this project has tested on — that file comes from the host kernel and shows
the host's syscall numbers, so the decision cannot be shown correct there,
and it has not been shown on aarch64 hardware or full-system emulation yet.
Everything else (syscalls, patch mode, executors) works on aarch64.
"""
from __future__ import annotations

from typing import Any, Callable

from ._arch import machine
from ._core import cancel as _cancel

__all__ = ["enable", "enabled", "initializer", "UNSUPPORTED_REASON"]

# Why transparent mode refuses on this machine, or None where it is supported.
UNSUPPORTED_REASON: str | None = (
    "transparent mode is not supported on aarch64 yet: it reads syscall "
    "numbers from /proc/self/task/TID/syscall, which qemu-user reports in "
    "the host's numbering, and it has not been shown on aarch64 hardware"
    if machine() == "aarch64" else None)


def _require_supported() -> None:
    """Raise NotImplementedError (with `UNSUPPORTED_REASON`) where
    transparent mode cannot be turned on."""
    if UNSUPPORTED_REASON is not None:
        raise NotImplementedError(UNSUPPORTED_REASON)


def enable(on: bool = True) -> None:
    """Switch transparent mode for the calling thread's cancellable jobs.

    Meant for worker threads (executor initializers); registers the thread.
    A no-op in fallback mode, where nothing can be interrupted. Raises
    NotImplementedError where transparent mode is not supported (aarch64,
    see `UNSUPPORTED_REASON`); switching it off always works."""
    if on:
        _require_supported()
    _cancel._set_transparent(bool(on))


def enabled() -> bool:
    """Whether the calling thread is in transparent mode."""
    return bool(_cancel._transparent())


class initializer:
    """A thread initializer that enables transparent mode, then calls
    ``inner(*initargs)`` if given (for ThreadPoolExecutor's `initializer`)."""

    __slots__ = ("inner",)

    def __init__(self, inner: Callable[..., object] | None = None) -> None:
        # Refuse here, in the caller's thread (Executor(transparent=True)),
        # rather than in each worker's initializer, which would break the pool.
        _require_supported()
        self.inner = inner

    def __call__(self, *initargs: Any) -> None:
        enable(True)
        if self.inner is not None:
            self.inner(*initargs)
