"""The one table of aiocancel's cancellable syscalls.

One `Syscall` entry per function of `aiocancel.syscalls`. From it come
``aiocancel.syscalls.__all__``, the fallback's pass-throughs
(`aiocancel._fallback`: a cancellation point, then the stdlib callable named
in ``stdlib``) and the stand-ins `aiocancel.patch()` installs for the plain
cases (``patch``). tests/test_syscall_table.py checks the rest against it:
that ``aiocancel.syscalls`` takes each name from the compiled module named in
``module``, that one compiled stub (``aiocancel/_*.pyi``) declares it with
``params``, that ``aiocancel.aio`` has its awaitable and that the fallback
has it with the same parameters.

Adding a syscall: its entry here, its Cython body and stub, its line in
aiocancel/syscalls.py (what type checkers read), its ``aio`` awaitable, its
tests; the test above says which of these is missing.
"""
from __future__ import annotations

import ast
import importlib
import inspect
from typing import Any, Literal, NamedTuple

Patch = Literal["divert", "cleanup"] | None


class Syscall(NamedTuple):
    """One cancellable call."""

    name: str
    """Its name in `aiocancel.syscalls` (and in the compiled module)."""
    module: str
    """The `aiocancel._core` attribute (compiled module) that implements it."""
    params: str
    """Its parameters as a ``def`` writes them; a default is a literal, or
    ``...`` where the fallback writes the function by hand."""
    aio: str | None
    """Its `aiocancel.aio` awaitable, or None."""
    stdlib: str | None
    """The stdlib callable it behaves as (``os.read``, ``socket.socket.recv``)
    when nothing cancels it, dotted from a module; the fallback's
    pass-through calls it (unless it is `HAND_WRITTEN`). None: the stdlib
    has no such call (a fallback without it raises OSError(ENOSYS)), or it
    is a method of an object the call creates (``select.poll().poll``)."""
    patch: Patch = None
    """How `aiocancel.patch()` replaces ``stdlib`` by a stand-in calling this
    function: "divert" (a cancelled job gets `Cancelled` at once), "cleanup"
    (a cancelled job's cleanup may still block in it), None (not patched
    this way: patch() handles it by hand, or not at all)."""


_S = Syscall
TABLE: tuple[Syscall, ...] = (
    # ---- files and pipes --------------------------------------------------
    _S("read", "syscalls", "fd, n", "read", "os.read", "divert"),
    _S("readinto", "syscalls", "fd, buffer", "readinto", None),
    _S("write", "syscalls", "fd, data", "write", "os.write", "divert"),
    _S("pread", "syscalls", "fd, n, offset", "pread", "os.pread", "divert"),
    _S("pwrite", "syscalls", "fd, data, offset", "pwrite", "os.pwrite", "divert"),
    _S("readv", "files", "fd, buffers", "readv", "os.readv", "divert"),
    _S("writev", "files", "fd, buffers", "writev", "os.writev", "divert"),
    _S("preadv", "files", "fd, buffers, offset, flags=0", "preadv", "os.preadv",
       "divert"),
    _S("pwritev", "files", "fd, buffers, offset, flags=0", "pwritev", "os.pwritev",
       "divert"),
    _S("open", "files", "path, flags, mode=..., *, dir_fd=...", "open", "os.open"),
    _S("openat", "files", "dir_fd, path, flags, mode=...", "openat", None),
    _S("flock", "files", "fd, operation", "flock", "fcntl.flock", "divert"),
    _S("lockf", "files", "fd, cmd, len=0, start=0, whence=0", "lockf", "fcntl.lockf",
       "divert"),
    _S("fcntl", "files", "fd, cmd, arg=0", "fcntl", "fcntl.fcntl"),
    _S("fsync", "files", "fd", "fsync", "os.fsync", "cleanup"),
    _S("fdatasync", "files", "fd", "fdatasync", "os.fdatasync", "cleanup"),
    # ---- sockets ------------------------------------------------------------
    _S("recv", "syscalls", "sock, n, flags=0", "recv", "socket.socket.recv", "divert"),
    _S("recv_into", "syscalls", "sock, buffer, nbytes=0, flags=0", "recv_into",
       "socket.socket.recv_into", "divert"),
    _S("send", "syscalls", "sock, data, flags=0", "send", "socket.socket.send", "divert"),
    _S("sendall", "syscalls", "sock, data, flags=0", "sendall",
       "socket.socket.sendall", "divert"),
    _S("accept", "syscalls", "sock, flags=...", "accept", "socket.socket._accept",
       "divert"),
    _S("connect", "syscalls", "sock, address", "connect", "socket.socket.connect",
       "divert"),
    _S("recvfrom", "sockets", "sock, n, flags=0", "recvfrom",
       "socket.socket.recvfrom", "divert"),
    _S("recvfrom_into", "sockets", "sock, buffer, nbytes=0, flags=0", "recvfrom_into",
       "socket.socket.recvfrom_into", "divert"),
    _S("recvmsg", "sockets", "sock, bufsize, ancbufsize=0, flags=0", "recvmsg",
       "socket.socket.recvmsg", "divert"),
    _S("sendto", "sockets", "sock, data, *args", "sendto", "socket.socket.sendto",
       "divert"),
    _S("sendmsg", "sockets", "sock, buffers, ancdata=..., flags=..., address=...",
       "sendmsg", "socket.socket.sendmsg", "divert"),
    # ---- waiting ------------------------------------------------------------
    _S("poll", "syscalls", "fds, timeout=...", "poll", None),
    _S("ppoll", "syscalls", "fds, timeout=..., sigmask=...", "ppoll", None),
    _S("select", "waits", "rlist, wlist, xlist, timeout=None", "select",
       "select.select", "divert"),
    _S("epoll_wait", "waits", "epfd, timeout=..., maxevents=...", "epoll_wait", None),
    _S("sleep", "syscalls", "seconds", "sleep_blocking", "time.sleep", "divert"),
    _S("waitpid", "syscalls", "pid, options", "waitpid", "os.waitpid", "cleanup"),
    _S("waitid", "waits", "idtype, id, options", "waitid", "os.waitid", "cleanup"),
    _S("sigtimedwait", "waits", "sigset, timeout", "sigtimedwait",
       "signal.sigtimedwait", "divert"),
    _S("sigwaitinfo", "waits", "sigset", "sigwaitinfo", "signal.sigwaitinfo", "divert"),
    # ---- futex and System V message queues: no stdlib counterpart ---------
    _S("futex_wait", "futex", "buffer, expected, timeout=None, *, offset=0, private=True",
       "futex_wait", None),
    _S("futex_wake", "futex", "buffer, n=1, *, offset=0, private=True",
       "futex_wake", None),
    _S("msgsnd", "ipc", "msqid, mtype, data, flags=0", "msgsnd", None),
    _S("msgrcv", "ipc", "msqid, maxsize, mtype=0, flags=0", "msgrcv", None),
)

NAMES: tuple[str, ...] = tuple(entry.name for entry in TABLE)

HAND_WRITTEN = frozenset({
    "read", "pread", "readinto", "open", "openat", "accept", "sendmsg", "poll",
    "ppoll", "epoll_wait"})
"""Calls whose fallback `aiocancel._fallback` writes by hand: an argument
check or translation the stdlib call lacks. Every other call's fallback is
generated from ``stdlib``."""

_KINDS = {"posonlyargs": inspect.Parameter.POSITIONAL_ONLY,
          "args": inspect.Parameter.POSITIONAL_OR_KEYWORD,
          "kwonlyargs": inspect.Parameter.KEYWORD_ONLY}


def signature(params: str) -> inspect.Signature:
    """The `inspect.Signature` a ``def`` with these parameters has (a ``...``
    default stays Ellipsis: it marks a default the table does not give)."""
    args = ast.parse(f"def f({params}): pass").body[0].args  # type: ignore[attr-defined]
    positional = args.posonlyargs + args.args
    defaults: list[Any] = [inspect.Parameter.empty] * (
        len(positional) - len(args.defaults)) + [ast.literal_eval(d) for d in args.defaults]
    out = [inspect.Parameter(a.arg, _KINDS["posonlyargs" if a in args.posonlyargs else "args"],
                             default=d) for a, d in zip(positional, defaults)]
    if args.vararg is not None:
        out.append(inspect.Parameter(args.vararg.arg, inspect.Parameter.VAR_POSITIONAL))
    out += [inspect.Parameter(a.arg, _KINDS["kwonlyargs"],
                              default=inspect.Parameter.empty if d is None
                              else ast.literal_eval(d))
            for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    return inspect.Signature(out)


def resolve(dotted: str) -> tuple[Any, str]:
    """``"socket.socket.recv"`` -> (socket.socket, "recv"); the owner is None
    where this platform lacks the module (fcntl on Windows)."""
    path, _, attr = dotted.rpartition(".")
    module_name, _, rest = path.partition(".")
    try:
        owner: Any = importlib.import_module(module_name)
    except ImportError:
        return None, attr
    for part in filter(None, rest.split(".")):
        owner = getattr(owner, part)
    return owner, attr
