"""trio: ``trio.to_thread.run_sync`` on cancellable workers.

Code that uses trio directly (not through anyio) calls
``trio.to_thread.run_sync``: a cancelled scope either waits for the thread
(the default) or abandons it still blocked (``abandon_on_cancel=True``).
After `install`, the function runs on an aiocancel worker in MASKED state,
with trio's semantics kept:

* the default: when the enclosing cancel scope is cancelled, the job gets a
  cancel request (acting at its next cancellation point), and the task
  raises ``trio.Cancelled`` once the worker is free, or returns the result
  if the call completed first;
* ``abandon_on_cancel=True``: the task raises ``trio.Cancelled`` at once, as
  in trio, and the request still frees the worker at its next cancellation
  point (a result produced anyway is dropped);
* the ``limiter`` (trio's default thread limiter unless given) holds a token
  while the worker is busy, and ``trio.from_thread.run``/``run_sync``/
  ``check_cancelled`` work inside the call as in trio's own threads.

``thread_name`` is accepted and ignored (the workers are aiocancel's). This
reuses the worker runner of aiocancel's anyio trio backend, so anyio must be
installed.
"""
from __future__ import annotations

from typing import Any, Callable, TypeVar

__all__ = ["install", "uninstall", "is_installed", "run_sync"]

T = TypeVar("T")

_original: Any = None


async def run_sync(sync_fn: Callable[..., T], *args: Any,
                   thread_name: str | None = None,
                   abandon_on_cancel: bool = False,
                   limiter: Any = None) -> T:
    """``trio.to_thread.run_sync`` on an aiocancel worker (see the module
    docstring); what `install` puts in its place."""
    import trio

    from .anyio._trio import TrioBackend, run_in_worker

    if limiter is None:
        limiter = trio.to_thread.current_default_thread_limiter()
    return await run_in_worker(TrioBackend, sync_fn, args, abandon_on_cancel,
                               limiter, None)


def install() -> None:
    """Make ``trio.to_thread.run_sync`` itself run on cancellable workers
    (for code calling it through the module attribute, as is usual)."""
    global _original
    import trio

    from ._drivers import activate
    activate()     # before the app opens connections: the pool comes lazily
    if _original is None:
        _original = trio.to_thread.run_sync
        trio.to_thread.run_sync = run_sync  # type: ignore[assignment]


def uninstall() -> None:
    """Restore trio's own ``trio.to_thread.run_sync``."""
    global _original
    import trio

    if _original is not None:
        trio.to_thread.run_sync = _original
        _original = None


def is_installed() -> bool:
    """Whether `install` is in effect."""
    return _original is not None
