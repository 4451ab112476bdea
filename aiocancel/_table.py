"""The one table of aiocancel's cancellable syscalls.

One `Syscall` entry per function of `aiocancel.syscalls`, one line each in
the data file `aiocancel/syscalls.tbl` (as the kernel keeps its syscall
table: a table reads best as one). From it come
``aiocancel.syscalls.__all__``, the fallback's pass-throughs
(`aiocancel._fallback`: a cancellation point, then the stdlib callable named
in ``stdlib``) and the stand-ins `aiocancel.patch()` installs for the plain
cases (``patch``). tests/test_syscall_table.py checks the rest against it:
that ``aiocancel.syscalls`` takes each name from the compiled module named in
``module``, that one compiled stub (``aiocancel/_*.pyi``) declares it with
``params``, that ``aiocancel.aio`` has its awaitable and that the fallback
has it with the same parameters.

Adding a syscall: its line in syscalls.tbl, its Cython body and stub, its line in
aiocancel/syscalls.py (what type checkers read), its ``aio`` awaitable, its
tests; the test above says which of these is missing.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import os
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


TABLE_FILE = "syscalls.tbl"
"""The table itself, a data file in this package: one call a line, columns
as in `Syscall` (``params`` last, to the end of the line), ``-`` for None."""


_PATCHES: dict[str, Patch] = {"divert": "divert", "cleanup": "cleanup", "-": None}


def _field(value: str) -> str | None:
    return None if value == "-" else value


def parse(text: str) -> tuple[Syscall, ...]:
    """The entries of a table in `TABLE_FILE`'s format (comments and blank
    lines skipped); ValueError names a line that does not fit."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(None, 5)
        if len(fields) != 6 or fields[4] not in _PATCHES:
            raise ValueError(f"{TABLE_FILE}, line {number}: expected name, module, "
                             f"aio, stdlib, patch (divert, cleanup or -) and "
                             f"params, got {line!r}")
        name, module, aio, stdlib, patch, params = fields
        entries.append(Syscall(name, module, params.strip(), _field(aio),
                               _field(stdlib), _PATCHES[patch]))
    return tuple(entries)


# A plain open(), not importlib.resources: on 3.14 that imports tempfile and
# shutil, which fallback mode's platforms (the simulated Windows module set)
# must not need; the package is never imported from a zip (it has extensions).
with open(os.path.join(os.path.dirname(__file__), TABLE_FILE), encoding="utf-8") as _file:
    TABLE: tuple[Syscall, ...] = parse(_file.read())

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
