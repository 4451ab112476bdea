"""Registering the aiocancel backends in anyio's backend registry."""
from __future__ import annotations

import importlib
import sys
import threading
from typing import Any

from .._outcome import DEFAULT_GRACE
from . import _pool
from ..executor import Executor
from ._compat import require, require_trio

__all__ = ["install", "uninstall", "get_executor", "backend_class", "backend_name",
           "NAMES"]

NAMES = ("asyncio", "trio")
_MODULES = {"asyncio": ("._asyncio", "AsyncIOBackend"),
            "trio": ("._trio", "TrioBackend")}

_lock = threading.Lock()
# name -> what anyio's registry held before install() (None: not loaded yet)
_replaced: dict[str, Any] = {}


def get_executor() -> Executor:
    """The `aiocancel.Executor` behind the anyio backends in the running
    event loop (asyncio, uvloop or trio, detected with sniffio).

    It starts a worker only when no idle one is left, so the number of
    threads follows the peak number of concurrent calls, which anyio's
    limiters bound."""
    from anyio._core._eventloop import get_async_backend
    pool: Executor = backend_class(backend_name(get_async_backend())).worker_pool()
    return pool


def backend_class(name: str) -> Any:
    """aiocancel's backend class for anyio backend `name` ("asyncio" or
    "trio"); ImportError if that backend cannot be used."""
    try:
        module_name, class_name = _MODULES[name]
    except KeyError:
        raise LookupError(f"aiocancel.anyio has no backend for {name!r}") from None
    module = importlib.import_module(module_name, __package__)
    return getattr(module, class_name)


def backend_name(backend: type) -> str:
    """The name of the anyio backend that `backend` (anyio's class, a
    subclass, or aiocancel's) implements."""
    for name in NAMES:
        module = sys.modules.get(f"anyio._backends._{name}")
        if module is not None and issubclass(backend, module.backend_class):
            return name
    raise LookupError(f"aiocancel.anyio has no backend for {backend!r}")


def _available() -> dict[str, type]:
    classes = {"asyncio": backend_class("asyncio")}
    try:
        require_trio()
    except ModuleNotFoundError as exc:
        # Only a missing trio is fine: anyio[trio] is optional.
        if exc.name not in ("trio", "outcome"):
            raise
    else:
        classes["trio"] = backend_class("trio")
    return classes


def install(*, transparent: bool = False, patch: bool = False,
            grace: float | None = DEFAULT_GRACE) -> None:
    """Make every ``anyio.to_thread.run_sync`` in the process run on
    aiocancel workers (idempotent; undone by `uninstall`).

    Registers `AsyncIOBackend` and `TrioBackend` (if trio is installed) under
    the names anyio looks backends up by, so that loops started by
    ``anyio.run(..., backend="asyncio")`` (with or without
    ``use_uvloop``), ``backend="trio"``, ``asyncio.run`` or uvloop, and
    libraries calling ``anyio.to_thread.run_sync`` (Starlette's
    ``run_in_threadpool``, FastAPI's sync endpoints) all use them. Calls
    already running keep the backend they started with.

    ``transparent=True`` also makes blocking calls inside foreign C code
    (OpenSSL, C extensions) cancellation points; see aiocancel.transparent.

    ``patch=True`` also calls `aiocancel.patch()`, so that the stdlib calls
    the functions make (``time.sleep``, socket methods, ``queue.Queue.get``...)
    are cancellation points too.

    ``grace`` (seconds, None: unbounded; default `aiocancel.DEFAULT_GRACE`)
    bounds how long a cancelled call waits for a worker that does not reach
    a cancellation point, as for `aiocancel.to_thread`: a deadline is never
    later than anyio's own by more than that (anyio waits for the thread
    without bound unless ``abandon_on_cancel=True``). The worker is then
    reported on the ``aiocancel`` logger and replaced.

    Raises `UnsupportedAnyioError` (naming the supported range) if the
    installed anyio or trio is outside it.
    """
    require()
    if patch:
        from .._patch import patch as _patch_stdlib
        _patch_stdlib()
    _pool.set_grace(grace)
    from .._drivers import activate
    activate()     # before the app opens connections: the pool comes lazily
    _pool.set_transparent(transparent)
    from anyio._core._eventloop import loaded_backends
    classes = _available()
    with _lock:
        for name, cls in classes.items():
            current = loaded_backends.get(name)
            if current is cls:
                continue
            _replaced[name] = current
            loaded_backends[name] = cls


def uninstall() -> None:
    """Give anyio its own backends back (idempotent). A backend that was
    replaced again after `install` is left alone."""
    if not _replaced:
        return
    from anyio._core._eventloop import loaded_backends
    with _lock:
        for name, previous in _replaced.items():
            if loaded_backends.get(name) is not backend_class(name):
                continue
            if previous is None:
                # anyio had not loaded it: it imports its own on next use.
                del loaded_backends[name]
            else:
                loaded_backends[name] = previous
        _replaced.clear()
