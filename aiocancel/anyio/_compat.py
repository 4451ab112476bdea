"""Which anyio (and trio) releases the backends can plug into, and the check.

anyio has no public hook for replacing how ``to_thread.run_sync`` starts
threads, so the backends rely on private layout that has been stable over
the supported range (read from anyio's history):

* ``anyio._core._eventloop.loaded_backends``, the name -> class registry that
  ``get_async_backend`` consults first: added in anyio 4.4.0.
* ``run_sync_in_worker_thread(func, args, abandon_on_cancel, limiter)`` on
  the backend classes: this signature since anyio 4.1.0.
* ``claim_worker_thread(backend_class, token)`` and
  ``threadlocals.current_cancel_scope``, which ``anyio.from_thread`` reads in
  a worker thread: unchanged from 4.4.0 to 4.16.
* trio's ``trio._threads.PARENT_TASK_DATA`` and its ``Run``/``RunSync``
  messages, which ``trio.from_thread`` uses: since trio 0.23.0 (the oldest
  trio that anyio 4.4 accepts).

anyio 5 may change any of it, so it is refused until checked.
"""
from __future__ import annotations

import importlib
import inspect
import re
from importlib import metadata

__all__ = ["SUPPORTED_ANYIO", "SUPPORTED_TRIO", "UnsupportedAnyioError",
           "require", "require_trio"]

SUPPORTED_ANYIO = ">=4.4,<5"
SUPPORTED_TRIO = ">=0.23"
_ANYIO_MIN, _ANYIO_END = (4, 4), (5,)
_TRIO_MIN = (0, 23)
_WORKER_PARAMS = ["func", "args", "abandon_on_cancel", "limiter"]


class UnsupportedAnyioError(ImportError, RuntimeError):
    """The installed anyio (or trio) is outside the range whose private
    layout aiocancel.anyio was written against.

    An ImportError (a dependency problem) and a RuntimeError (raised by
    `install` and `run_sync` when they are called, not at import)."""


def _version(dist: str) -> str:
    return metadata.version(dist)


def _release(version: str) -> tuple[int, ...]:
    """Leading release numbers: 4.16.0 -> (4, 16, 0), 5.0.0rc1 -> (5, 0, 0)."""
    match = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(n) for n in match.group().split(".")) if match else ()


def _fail(what: str, version: str, detail: str) -> UnsupportedAnyioError:
    return UnsupportedAnyioError(
        f"aiocancel.anyio supports anyio {SUPPORTED_ANYIO} (with trio "
        f"{SUPPORTED_TRIO} for the trio backend); found {what} {version}: "
        f"{detail}")


def _check_anyio() -> None:
    try:
        version = _version("anyio")
    except metadata.PackageNotFoundError:
        raise _fail("anyio", "(not installed)", "pip install 'anyio>=4.4,<5'") from None
    if not _ANYIO_MIN <= _release(version) < _ANYIO_END:
        raise _fail("anyio", version, "version outside the supported range")
    try:
        eventloop = importlib.import_module("anyio._core._eventloop")
        asyncio_backend = importlib.import_module("anyio._backends._asyncio")
        missing = [name for name in ("loaded_backends", "get_async_backend",
                                     "claim_worker_thread", "threadlocals")
                   if not hasattr(eventloop, name)]
        if not isinstance(getattr(eventloop, "loaded_backends", None), dict):
            missing.append("loaded_backends (a dict)")
        params = list(inspect.signature(
            asyncio_backend.backend_class.run_sync_in_worker_thread).parameters)
    except (ImportError, AttributeError) as exc:
        raise _fail("anyio", version, f"private layout differs ({exc})") from exc
    if params != _WORKER_PARAMS:
        missing.append(f"run_sync_in_worker_thread{tuple(_WORKER_PARAMS)} "
                       f"(found {tuple(params)})")
    if missing:
        raise _fail("anyio", version, "private layout differs: missing "
                    + ", ".join(missing))


def _check_trio() -> None:
    version = _version("trio")
    if _release(version) < _TRIO_MIN:
        raise _fail("trio", version, "version outside the supported range")
    threads = importlib.import_module("trio._threads")
    missing = [name for name in ("PARENT_TASK_DATA", "Run", "RunSync")
               if not hasattr(threads, name)]
    if missing:
        raise _fail("trio", version, "private layout differs: missing trio._threads."
                    + ", trio._threads.".join(missing))


_checked: set[str] = set()


def require() -> None:
    """Raise `UnsupportedAnyioError` unless the installed anyio fits (checked
    once per process)."""
    if "anyio" not in _checked:
        _check_anyio()
        _checked.add("anyio")


def require_trio() -> None:
    """As `require`, plus trio's layout (ImportError if trio is missing)."""
    require()
    if "trio" not in _checked:
        _check_trio()
        _checked.add("trio")
