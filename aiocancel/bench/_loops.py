"""The event loops and thread front ends the bench compares."""
from __future__ import annotations

import asyncio
import importlib
from types import ModuleType
from typing import Any, Awaitable, Callable, Coroutine

uvloop: ModuleType | None
anyio: ModuleType | None
try:
    import uvloop
except ImportError:                       # optional extra
    uvloop = None

try:
    import anyio
    import anyio.to_thread
except ImportError:                       # optional extra
    anyio = None

__all__ = ["uvloop", "anyio", "loop_kinds", "run_on", "aiocancel_anyio", "anyio_missing"]


def loop_kinds() -> list[str]:
    """The loops to measure on: asyncio's default, and uvloop if installed."""
    return ["asyncio"] + (["uvloop"] if uvloop is not None else [])


def run_on(kind: str, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run `main()` on a fresh loop of the given kind."""
    if kind == "uvloop":
        assert uvloop is not None, "loop_kinds() offers uvloop only if installed"
        return uvloop.run(main())
    return asyncio.run(main())


def aiocancel_anyio() -> tuple[Any, str]:
    """(aiocancel.anyio module or None, why it is missing)."""
    if anyio is None:
        return None, "anyio not installed"
    try:
        return importlib.import_module("aiocancel.anyio"), ""
    except ImportError as exc:
        if getattr(exc, "name", None) in ("aiocancel.anyio", None):
            return None, "aiocancel.anyio not available"
        return None, f"aiocancel.anyio not available ({exc})"


def anyio_missing() -> str:
    return "" if anyio is not None else "anyio not installed"


Dispatch = Callable[..., Awaitable[Any]]
