"""The one after-fork hook of aiocancel's Python layers.

Only the forking thread exists in a forked child. Every layer that keeps a
thread, or a lock such a thread may have held, forgets it there: each calls
`after_fork_in_child` once, at import, and this module runs them, in the
order they were registered, from a single ``os.register_at_fork`` hook.

Order in a child, bottom to top:

1. The C core's ``pthread_atfork`` child handler (``cysrc/cancel_core.c:
   aioc_atfork_child``, which also resets transparent mode's re-sender) runs
   inside ``fork()`` itself, before the interpreter runs any Python hook.
   In fallback mode the fallback core (``aiocancel/_fallback.py``) stands in
   for it with its own ``os.register_at_fork``, made when ``_core`` is
   imported, which happens before this module's (below): CPython runs
   ``after_in_child`` hooks in registration order.
2. Then this module's resets: the watchdog (``_outcome``), the module-level
   pool of the asyncio front end (``_asyncio``), anyio's per-loop pools
   (``anyio/_pool``) - in import order, which is layer order.

A reset must not block and must not touch other threads' state: it runs in a
child in which those threads do not exist.
"""
from __future__ import annotations

import os
from typing import Callable

from . import _core  # noqa: F401 - the core layer's own reset registers first

__all__ = ["after_fork_in_child"]

_resets: list[Callable[[], None]] = []


def after_fork_in_child(reset: Callable[[], None]) -> Callable[[], None]:
    """Run ``reset()`` in every forked child, after the resets registered
    before it. Returns `reset`, so it can be used as a decorator."""
    _resets.append(reset)
    return reset


def _run_resets() -> None:
    for reset in _resets:
        reset()


if hasattr(os, "register_at_fork"):       # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_run_resets)
