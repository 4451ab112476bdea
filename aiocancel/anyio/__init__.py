"""anyio integration: cancel scopes that free worker threads.

``anyio.to_thread.run_sync`` runs functions on anyio's own worker threads:
cancellation either waits for the thread (the default) or abandons it,
still blocked. This package provides anyio backends (asyncio, uvloop and
trio) whose worker threads are aiocancel workers: the function runs in
MASKED state, and cancelling the enclosing cancel scope interrupts its
`aiocancel.syscalls` calls, so the thread is freed.

* `install` / `uninstall`: every ``anyio.to_thread.run_sync`` in the process
  (Starlette's ``run_in_threadpool`` included) uses the aiocancel backends.
* `run_sync`: one such call, without installing anything.
* `AsyncIOBackend`, `TrioBackend`: the backend classes.

Supported anyio: `SUPPORTED_ANYIO` (the backends rely on anyio's private
layout; other versions raise `UnsupportedAnyioError`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._compat import SUPPORTED_ANYIO, SUPPORTED_TRIO, UnsupportedAnyioError
from ._registry import get_executor, install, uninstall
from ._run import run_sync

if TYPE_CHECKING:       # at run time: imported on first use, see __getattr__
    from ._asyncio import AsyncIOBackend
    from ._trio import TrioBackend

__all__ = ["install", "uninstall", "run_sync", "get_executor",
           "AsyncIOBackend", "TrioBackend",
           "SUPPORTED_ANYIO", "SUPPORTED_TRIO", "UnsupportedAnyioError"]


def __getattr__(name: str) -> Any:
    # The classes subclass anyio's (and trio's) private backends: import
    # them, and check their layout, only when asked for.
    if name == "AsyncIOBackend":
        from ._asyncio import AsyncIOBackend
        return AsyncIOBackend
    if name == "TrioBackend":
        from ._trio import TrioBackend
        return TrioBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
