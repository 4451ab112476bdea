"""Built-in cancellation for database drivers whose protocol must not be
interrupted: psycopg2 and psycopg (3).

A libpq connection waiting for a query's result must not have that wait
failed under it: the result arrives later and is read as the reply to the
next query (psycopg2 then returns the cancelled query's rows for the next
``SELECT``; psycopg 3 reports "another command is already in progress"
forever). Each blocking driver call therefore runs inside
`aiocancel._protocol.protocol_call`: no cancellation point acts in it, and a
cancel request sends PostgreSQL's cancel request (``conn.cancel()``) instead,
so the call fails with ``QueryCanceled`` and the connection stays usable.

`activate` (called by every ``install()`` and when an `aiocancel.Executor` is
made) hooks the drivers without application code, now if they are imported,
or else as soon as they are:

* psycopg 3: ``psycopg.Connection.wait``, through which every blocking
  operation of a connection and its cursors goes (execute, fetch from
  server-side cursors, COPY, commit, pipelines).
* psycopg2 (a C extension, whose types cannot be patched):
  ``psycopg2.connect`` returns connections of a subclass of the requested
  ``connection_factory`` whose cursors are subclasses of the requested
  ``cursor_factory``, with execute, executemany, callproc, the copy methods,
  commit, rollback, the two-phase commit calls and the fetches of named
  (server-side) cursors guarded. Connections opened before activation, or
  not through ``psycopg2.connect``, are not covered, nor large objects.
"""
from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import sys
import threading
from types import ModuleType
from typing import Any, Callable, Sequence

from ._protocol import protocol_call

__all__ = ["activate", "KNOWN"]

# The libraries whose cancellation aiocancel knows (README lists them).
KNOWN = ("psycopg2", "psycopg")

_lock = threading.Lock()
_active = False


# ---- psycopg 3 -------------------------------------------------------------

def _patch_psycopg(module: ModuleType) -> None:
    connection = module.Connection
    original = connection.wait
    if getattr(original, "_aiocancel", False):
        return

    @functools.wraps(original)
    def wait(self: Any, gen: Any, *args: Any, **kwargs: Any) -> Any:
        # cancel_safe (psycopg 3.2+) also cancels over encrypted connections.
        cancel = getattr(self, "cancel_safe", None) or self.cancel
        with protocol_call(cancel, self.pgconn.finish):
            return original(self, gen, *args, **kwargs)

    wait._aiocancel = True  # type: ignore[attr-defined]
    connection.wait = wait


# ---- psycopg2 --------------------------------------------------------------

def _guarded(hook: type, name: str) -> Callable[..., Any]:
    """`hook`'s method `name`: the C type's `name` inside protocol_call."""
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        conn = getattr(self, "connection", self)
        with protocol_call(conn.cancel, conn.close):
            return getattr(super(hook, self), name)(*args, **kwargs)
    method.__name__ = name
    method.__qualname__ = f"{hook.__name__}.{name}"
    return method


_CURSOR_IO = ("execute", "executemany", "callproc", "copy_expert",
              "copy_from", "copy_to")
_NAMED_CURSOR_IO = _CURSOR_IO + ("fetchone", "fetchmany", "fetchall",
                                 "scroll", "close", "__next__")
_CONNECTION_IO = ("commit", "rollback", "tpc_prepare", "tpc_commit",
                  "tpc_rollback", "tpc_recover", "reset", "set_session",
                  "set_client_encoding")


def _hook(name: str, base: type, methods: Sequence[str]) -> type:
    """A subclass of psycopg2's C type `base` guarding `methods`."""
    hook = type(name, (base,), {"__module__": __name__})
    for method in methods:
        setattr(hook, method, _guarded(hook, method))
    return hook


# (base, hook) -> subclass: one class per factory, so isinstance checks and
# pickling see a stable type (a plain dict: stubtest cannot see through
# functools.lru_cache's wrapper).
_SUBCLASSES: dict[tuple[type, type], type] = {}


def _subclass(base: type, hook: type) -> type:
    key = (base, hook)
    if key not in _SUBCLASSES:
        _SUBCLASSES[key] = _make_subclass(base, hook)
    return _SUBCLASSES[key]


def _make_subclass(base: type, hook: type) -> type:
    """`base` (the application's factory) with `hook` just above the C type
    in its MRO: the application's overrides run first and reach the guard
    through super(), as they would reach the C method."""
    c_type = hook.__base__
    assert c_type is not None
    if (not isinstance(base, type) or issubclass(base, hook)
            or not issubclass(base, c_type)):
        return base            # a wrong factory: psycopg2 reports it
    if base is c_type:
        return hook
    return type(base.__name__, (base, hook), {"__module__": base.__module__})


def _patch_psycopg2(module: ModuleType) -> None:
    original = module.connect
    if getattr(original, "_aiocancel", False):
        return
    ext = module.extensions
    cursor_hook = _hook("cursor", ext.cursor, _CURSOR_IO)
    named_hook = _hook("cursor", ext.cursor, _NAMED_CURSOR_IO)
    connection_hook = _hook("connection", ext.connection, _CONNECTION_IO)

    def cursor(self: Any, name: Any = None, cursor_factory: Any = None,
               withhold: bool = False, scrollable: Any = None) -> Any:
        base = cursor_factory or self.cursor_factory or ext.cursor
        factory = _subclass(base, cursor_hook if name is None else named_hook)
        return ext.connection.cursor(self, name, factory, withhold, scrollable)

    connection_hook.cursor = cursor  # type: ignore[attr-defined]

    @functools.wraps(original)
    def connect(dsn: Any = None, connection_factory: Any = None,
                cursor_factory: Any = None, **kwargs: Any) -> Any:
        factory = _subclass(connection_factory or ext.connection, connection_hook)
        return original(dsn, connection_factory=factory,
                        cursor_factory=cursor_factory, **kwargs)

    connect._aiocancel = True  # type: ignore[attr-defined]
    module.connect = connect  # type: ignore[attr-defined]


# ---- activation ------------------------------------------------------------

_PATCHERS: dict[str, Callable[[ModuleType], None]] = {
    "psycopg": _patch_psycopg,
    "psycopg2": _patch_psycopg2,
}


class _PatchingLoader(importlib.abc.Loader):
    """Runs the module's own loader, then patches the module."""

    def __init__(self, loader: Any, patcher: Callable[[ModuleType], None]) -> None:
        self.loader = loader
        self.patcher = patcher

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        self.patcher(module)

    def __getattr__(self, name: str) -> Any:
        # get_source, get_resource_reader, is_package...: the real loader's
        # (the module's __loader__ is this object).
        return getattr(self.loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader the other finders return for
    the driver packages."""

    def find_spec(self, fullname: str, path: Any = None,
                  target: Any = None) -> importlib.machinery.ModuleSpec | None:
        patcher = _PATCHERS.get(fullname)
        if patcher is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader, patcher)
                return spec
        return None


def activate() -> None:
    """Hook the known drivers (idempotent, cheap after the first call)."""
    global _active
    if _active:
        return
    with _lock:
        if _active:
            return
        for name, patcher in _PATCHERS.items():
            module = sys.modules.get(name)
            if module is not None:
                patcher(module)
        sys.meta_path.insert(0, _Finder())
        _active = True
