"""Django / asgiref: cancellable ``sync_to_async``.

asgiref runs ``sync_to_async`` calls on plain ThreadPoolExecutors that
``aiocancel.install()`` never sees: with ``thread_sensitive=True`` (the
default, and what Django uses for every sync view and ORM call) on the
shared ``SyncToAsync.single_thread_executor``, or on a one-thread executor
per `ThreadSensitiveContext` (one per request under Django's ASGIHandler);
with ``thread_sensitive=False`` on the loop's default executor. A cancelled
call then leaves its thread blocked, and every later thread-sensitive call
queues behind it.

`install` puts those calls on `aiocancel.Executor` workers, keeping asgiref's
one-thread guarantee (each thread-sensitive executor still has exactly one
worker): cancelling the awaiting task (Django cancels the view's task when
the client disconnects; ``asyncio.timeout``) interrupts the call at its next
cancellation point and frees the thread. Not covered: a call that runs on
an outer ``async_to_sync`` thread (asgiref's CurrentThreadExecutor), and a
`ThreadSensitiveContext` given its own executor (the caller's).
"""
from __future__ import annotations

import inspect
import threading
import weakref
from typing import Any

from .executor import Executor

__all__ = ["install", "uninstall", "is_installed"]

_DEFAULT = object()
_lock = threading.Lock()
_state: dict[str, Any] = {}
# Pools handed to thread_sensitive=False calls (SyncToAsync objects keep
# them in their ``_executor``): a later install replaces them there.
_pools: "weakref.WeakSet[Executor]" = weakref.WeakSet()


def _executor_factory(transparent: bool, grace: Any, workers: int | None,
                      prefix: str) -> Any:
    kwargs: dict[str, Any] = {"transparent": transparent}
    if grace is not _DEFAULT:
        # grace= comes with the cancellation-contract work on Executor.
        if "grace" not in inspect.signature(Executor).parameters:
            raise TypeError("this aiocancel.Executor takes no grace= argument")
        kwargs["grace"] = grace

    def make() -> Executor:
        return Executor(workers, prefix, **kwargs)
    return make


def install(*, patch: bool = False, transparent: bool = False,
            grace: Any = _DEFAULT) -> None:
    """Make asgiref's ``sync_to_async`` run on cancellable workers, for
    ``thread_sensitive=True`` (the shared single-thread executor and the
    per-`ThreadSensitiveContext` ones) and ``thread_sensitive=False``
    (unless the call was given its own executor).

    Callable at import time (settings.py, asgi.py): it needs no running
    loop. ``patch=True`` also calls `aiocancel.patch()`, so that the stdlib
    calls views make (socket I/O, ``time.sleep``...) are cancellation
    points; ``transparent=True`` runs the workers in transparent mode (see
    `aiocancel.transparent`); ``grace`` is passed to each `Executor`.
    Calling it again replaces the executors with ones of the new settings.
    """
    from asgiref.sync import SyncToAsync

    single = _executor_factory(transparent, grace, 1, "aiocancel-asgiref")
    shared = _executor_factory(transparent, grace, None, "aiocancel-asgiref-pool")
    if patch:
        from ._patch import patch as _patch_stdlib
        _patch_stdlib()
    with _lock:
        original_call = _state.get("call", SyncToAsync.__call__)
        original_single = _state.get("single", SyncToAsync.single_thread_executor)
        retired = SyncToAsync.single_thread_executor
        pool = shared()
        _pools.add(pool)
        _state.update(call=original_call, single=original_single, pool=pool,
                      new_context_executor=single)
        SyncToAsync.single_thread_executor = single()
        SyncToAsync.__call__ = _make_call(original_call)  # type: ignore[method-assign]
    if retired is not original_single:
        retired.shutdown(wait=False)


def uninstall() -> None:
    """Restore asgiref's own executors. The cancellable single-thread one is
    shut down without waiting; those of contexts still open are left to
    them, and the pool of ``thread_sensitive=False`` calls stays up for the
    SyncToAsync objects that already use it."""
    from asgiref.sync import SyncToAsync
    from concurrent.futures import ThreadPoolExecutor

    with _lock:
        if not _state:
            return
        SyncToAsync.__call__ = _state["call"]  # type: ignore[method-assign]
        replaced = SyncToAsync.single_thread_executor
        original = _state["single"]
        # The original one may have been shut down by an earlier install.
        SyncToAsync.single_thread_executor = (
            ThreadPoolExecutor(max_workers=1) if original._shutdown else original)
        _state.clear()
    replaced.shutdown(wait=False)


def is_installed() -> bool:
    """Whether `install` is in effect."""
    return bool(_state)


def _make_call(original: Any) -> Any:
    async def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
        _choose_executor(self)
        return await original(self, *args, **kwargs)
    __call__.__doc__ = original.__doc__
    __call__.__wrapped__ = original  # type: ignore[attr-defined]
    return __call__


def _choose_executor(call: Any) -> None:
    """Before asgiref picks the executor for `call` (a SyncToAsync), put a
    cancellable one where it will look: the current ThreadSensitiveContext's
    entry (asgiref would create a ThreadPoolExecutor there), or the call's
    own executor for thread_sensitive=False."""
    from asgiref.sync import AsyncToSync, SyncToAsync

    state = _state
    if not state:
        return
    if call._thread_sensitive:
        if getattr(AsyncToSync.executors, "current", None) is not None:
            return             # runs on the outer async_to_sync thread
        context = SyncToAsync.thread_sensitive_context.get(None)
        if (context is None or getattr(context, "_exited", False)
                or context in SyncToAsync.context_to_thread_executor):
            return
        SyncToAsync.context_to_thread_executor[context] = (
            state["new_context_executor"]())
    elif call._executor is None or call._executor in _pools:
        call._executor = state["pool"]
