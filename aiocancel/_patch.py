"""`aiocancel.patch()` / `aiocancel.unpatch()`: make the stdlib's blocking
calls cancellation points in aiocancel workers, process-wide.

Each patched callable is replaced by a stand-in that asks the calling
thread's cancellation state (one C call) and then:

* in a registered thread in MASKED or ENABLE state (an aiocancel worker
  running a job, or a ``masked()`` block): calls the cancellable version
  from `aiocancel.syscalls` / `aiocancel.threading`, a cancellation point;
* in a job that a cancellation point already acted on (state DISABLE, the
  request still pending): raises `aiocancel.Cancelled` at once. Libraries
  commonly treat the first error as a dropped connection and retry (redis-py
  and urllib3 do, with back-off sleeps); without this the retry would block
  again, uncancellable, and the worker would never be freed. Reaping a child
  (``os.waitpid``, ``os.waitid``) and ``os.fsync``/``os.fdatasync`` are
  exempt: they are what cleanup needs (subprocess kills its child on error,
  then waits for it). ``aiocancel.syscalls`` calls themselves keep the
  one-off MASKED rule, for cleanup code that must block;
* everywhere else: calls the original, so behaviour is the stdlib's.

What is covered:

* ``time.sleep``;
* ``socket.socket``: recv, recv_into, recvfrom, recvfrom_into, recvmsg,
  send, sendall, sendto, sendmsg, accept (through ``_accept``), connect,
  connect_ex. Socket timeouts and non-blocking sockets keep their stdlib
  behaviour (``TimeoutError``, ``BlockingIOError``). ``ssl.SSLSocket`` I/O
  runs inside OpenSSL and is not covered (its TCP connect is);
* ``os``: read, write, readv, writev, pread, pwrite, preadv, pwritev,
  waitpid, waitid, fsync, fdatasync;
* ``select.select``, ``select.poll`` and ``select.epoll`` objects' ``poll``,
  and the ``selectors`` classes built on them (``DefaultSelector``, and
  ``PollSelector`` which ``subprocess`` uses). Objects created before
  ``patch()`` keep the stdlib class and are not cancellable;
* ``fcntl.flock``, ``fcntl.lockf``, and ``fcntl.fcntl`` lock waits
  (F_SETLKW, F_OFD_SETLKW);
* ``signal.sigtimedwait`` and ``signal.sigwaitinfo``;
* ``threading.Condition.wait``, hence ``threading.Event.wait``,
  ``queue.Queue.get``/``put``, semaphores, barriers and
  ``concurrent.futures`` waits (see `aiocancel.threading`);
* ``builtins.input`` (see `aiocancel.ainput`): in a worker it reads the line
  with a cancellable read of stdin, without line editing.

Hence ``subprocess.run(...)`` (with or without ``timeout=``) and
``Popen.wait()`` / ``communicate()`` in a worker are cancellable; ``run``
then kills and reaps the child, as it does on KeyboardInterrupt.

Functions bound before ``patch()`` by ``from time import sleep`` keep the
original: patch early (``aiocancel.install(patch=True)`` at start-up).
"""
from __future__ import annotations

import _thread
import builtins
import errno
import functools
import math
import operator
import select
import selectors
import socket
import threading
import types
from typing import Any, Callable

from . import _table
from . import syscalls as _sc
from . import threading as _athreading
from ._core import cancel as _cancel
from ._core import standin as _standin
from ._errors import Cancelled, ThreadCancelled

try:
    import fcntl
except ImportError:             # Windows: nothing of fcntl's to patch
    fcntl = None  # type: ignore[assignment]

__all__ = ["patch", "unpatch", "is_patched"]

_cp_mode = _cancel._cp_mode
_LIVE, _CANCELLED = 1, 2

# None where the platform has no such call (epoll: macOS; poll: Windows):
# patch() then leaves that name alone.
_select_poll = getattr(select, "poll", None)
_select_epoll = getattr(select, "epoll", None)
_POLL_DEFAULT = (getattr(select, "POLLIN", 1) | getattr(select, "POLLPRI", 2)
                 | getattr(select, "POLLOUT", 4))


def _live() -> bool:
    """True: use the cancellable version; False: the original. Raises
    Cancelled in a job that a cancellation already acted on (see patch)."""
    mode = _cp_mode()
    if mode == _CANCELLED:
        raise Cancelled()
    return mode == _LIVE


def _divert(original: Callable[..., Any], cancellable: Callable[..., Any]) -> Any:
    """A stand-in for `original` that calls `cancellable` (same arguments)
    where `_live()` says so (compiled: this is the cost every patched call
    pays outside workers)."""
    return _standin.StandIn(original, cancellable)


def _divert_for_cleanup(original: Callable[..., Any],
                        cancellable: Callable[..., Any]) -> Any:
    """As `_divert`, but a cancelled job's cleanup may still block in it:
    reaping a child (subprocess kills it, then waits), syncing a file."""
    return _standin.StandIn(original, cancellable, False)


def _connect_ex(original: Callable[..., Any]) -> Callable[..., Any]:
    """socket.connect_ex returns an errno instead of raising; a cancellation
    still raises, so that it is not mistaken for a refused connection."""
    def connect_ex(self: socket.socket, address: Any) -> int:
        if not _live():
            result: int = original(self, address)
            return result
        try:
            _sc.connect(self, address)
        except (Cancelled, ThreadCancelled, socket.gaierror):
            raise
        except TimeoutError:
            return errno.EWOULDBLOCK        # what connect_ex reports on timeout
        except OSError as exc:
            if exc.errno is None:
                raise
            return exc.errno
        return 0
    functools.update_wrapper(connect_ex, original)
    return connect_ex


def _fcntl(original: Callable[..., Any]) -> Callable[..., Any]:
    """Only the lock waits block: other commands keep the original."""
    waits = {fcntl.F_SETLKW, getattr(fcntl, "F_OFD_SETLKW", fcntl.F_SETLKW)}

    def stand_in(*args: Any) -> Any:
        if len(args) >= 2 and args[1] in waits and _live():
            return _sc.fcntl(*args)
        return original(*args)
    functools.update_wrapper(stand_in, original)
    return stand_in


_INT_MAX = 2**31 - 1


def _poll_seconds(ms: Any) -> float | None:
    """select.poll's millisecond timeout as syscalls.poll's seconds, with
    select.poll's checks."""
    if ms is None:
        return None
    if not isinstance(ms, float):
        try:
            ms = operator.index(ms)
        except TypeError:
            raise TypeError("timeout must be an integer or None") from None
    elif ms != ms:
        raise ValueError("Invalid value NaN (not a number)")
    if not -_INT_MAX - 1 <= math.ceil(ms) <= _INT_MAX:
        raise OverflowError("timeout is too large")
    return None if ms < 0 else ms / 1000.0


class _Poll:
    """What ``select.poll()`` returns under patch(): a real poll object,
    whose ``poll`` in a worker waits with the cancellable
    `aiocancel.syscalls.poll` on the same registrations. As with the stdlib
    type, only ``select.poll()`` creates them."""

    __slots__ = ("_poll", "_events", "_busy")
    _poll: Any                          # a select.poll object
    _events: dict[int, int]
    _busy: _thread.LockType

    def __new__(cls, *args: Any, **kwargs: Any) -> "_Poll":
        raise TypeError(f"cannot create '{cls.__module__}.{cls.__name__}' instances")

    @classmethod
    def _create(cls) -> "_Poll":
        obj = object.__new__(cls)
        assert _select_poll is not None     # patch() skips poll where absent
        obj._poll = _select_poll()
        obj._events = {}
        obj._busy = _thread.allocate_lock()
        return obj

    def register(self, fd: Any, eventmask: int = _POLL_DEFAULT) -> None:
        self._poll.register(fd, eventmask)
        self._events[fd if isinstance(fd, int) else fd.fileno()] = eventmask

    def modify(self, fd: Any, eventmask: int) -> None:
        self._poll.modify(fd, eventmask)
        self._events[fd if isinstance(fd, int) else fd.fileno()] = eventmask

    def unregister(self, fd: Any) -> None:
        self._poll.unregister(fd)
        del self._events[fd if isinstance(fd, int) else fd.fileno()]

    def poll(self, timeout: Any = None) -> list[tuple[int, int]]:
        # Both paths count as one object's poll, which must not run twice.
        if not self._busy.acquire(False):
            raise RuntimeError("concurrent poll() invocation")
        try:
            if not _live():
                ready: list[tuple[int, int]] = self._poll.poll(timeout)
                return ready
            return _sc.poll(list(self._events.items()), _poll_seconds(timeout))
        finally:
            self._busy.release()


class _Epoll:
    """``select.epoll`` under patch() (the type cannot be subclassed): a real
    epoll object, whose ``poll`` in a worker is `aiocancel.syscalls.epoll_wait`.
    Everything else is the real object's."""

    __slots__ = ("_epoll", "__weakref__")

    _epoll: Any                         # a select.epoll object

    def __init__(self, sizehint: int = -1, flags: int = 0) -> None:
        assert _select_epoll is not None    # patch() skips epoll where absent
        self._epoll = _select_epoll(sizehint, flags)

    @classmethod
    def fromfd(cls, fd: int) -> "_Epoll":
        assert _select_epoll is not None
        obj = cls.__new__(cls)
        obj._epoll = _select_epoll.fromfd(fd)
        return obj

    def __getattr__(self, name: str) -> Any:
        if name == "_epoll":
            raise AttributeError(name)
        return getattr(self._epoll, name)

    def poll(self, timeout: float | None = None, maxevents: int = -1) -> list[tuple[int, int]]:
        if not _live():
            ready: list[tuple[int, int]] = self._epoll.poll(timeout, maxevents)
            return ready
        return _sc.epoll_wait(self._epoll, timeout, maxevents)

    def __enter__(self) -> "_Epoll":
        self._epoll.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._epoll.__exit__(*exc_info)

    def __repr__(self) -> str:
        return f"<aiocancel patched {self._epoll!r}>"


def _new_poll() -> _Poll:
    return _Poll._create()


# Named as the stdlib's: they stand in for select.poll and select.epoll.
if _select_poll is not None:
    functools.update_wrapper(_new_poll, _select_poll)
_Poll.__name__ = _Poll.__qualname__ = "poll"
_Epoll.__name__ = _Epoll.__qualname__ = "epoll"
_Poll.__module__ = _Epoll.__module__ = "select"


def _input(original: Callable[..., Any]) -> Any:
    from ._stdin import worker_input
    return _divert(original, worker_input)


_Target = tuple[Any, str, Callable[[Any], Any]]


def _same(name: str) -> Callable[[Any], Any]:
    """Makes the stand-in for an original named as its aiocancel.syscalls
    counterpart."""
    return lambda orig: _divert(orig, getattr(_sc, name))


def _for_cleanup(name: str) -> Callable[[Any], Any]:
    return lambda orig: _divert_for_cleanup(orig, getattr(_sc, name))


def _table_targets() -> list[_Target]:
    """The plain cases, from the syscall table: each entry's stdlib callable
    (``os.read``, ``socket.socket._accept``...) diverted to its
    aiocancel.syscalls function (the owner is None where this platform lacks
    the module: patch() skips it)."""
    make = {"divert": _same, "cleanup": _for_cleanup}
    out: list[_Target] = []
    for entry in _table.TABLE:
        if entry.patch is not None and entry.stdlib is not None:
            owner, attr = _table.resolve(entry.stdlib)
            out.append((owner, attr, make[entry.patch](entry.name)))
    return out


def _targets() -> list[_Target]:
    """(owner, attribute, make-stand-in-from-original) for everything patched."""
    out = _table_targets()
    out += [
        (socket.socket, "connect_ex", _connect_ex),
        (select, "poll", lambda orig: _new_poll),
        (select, "epoll", lambda orig: _Epoll),
        (selectors.PollSelector, "_selector_cls", lambda orig: staticmethod(_new_poll)),
        (selectors.EpollSelector, "_selector_cls", lambda orig: _Epoll),
        (selectors.SelectSelector, "_select",
         lambda orig: staticmethod(_divert(orig, _sc.select))),
        (fcntl, "fcntl", _fcntl),
        (threading.Condition, "wait",
         lambda orig: _divert(orig, _athreading.wait)),
        (builtins, "input", _input),
    ]
    return out


_lock = threading.Lock()
# (owner, name) -> (original or _ABSENT, stand-in); empty when unpatched.
_saved: dict[tuple[Any, str], tuple[Any, Any]] = {}
_ABSENT = object()


def patch() -> None:
    """Install the stand-ins (see the module docstring). Idempotent and
    thread-safe; `unpatch` undoes it."""
    with _lock:
        if _saved:
            return
        for owner, name, make in _targets():
            if owner is None or not hasattr(owner, name):
                continue                # not on this platform
            original = owner.__dict__.get(name, _ABSENT)
            current = getattr(owner, name)
            stand_in = make(current)
            if isinstance(owner, types.ModuleType) and callable(stand_in):
                # pydoc and the stdlib's tests expect a module's Python-level
                # functions to name it (signal's C functions say "_signal").
                stand_in.__module__ = owner.__name__
            _saved[(owner, name)] = (original, stand_in)
            setattr(owner, name, stand_in)


def unpatch() -> None:
    """Put the originals back. Idempotent and thread-safe. An attribute that
    someone else replaced after `patch` is left as they set it."""
    with _lock:
        for (owner, name), (original, stand_in) in _saved.items():
            if owner.__dict__.get(name) is not stand_in:
                continue
            if original is _ABSENT:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        _saved.clear()


def is_patched() -> bool:
    """Whether `patch` is in effect."""
    return bool(_saved)
