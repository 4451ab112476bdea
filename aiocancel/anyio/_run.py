"""`run_sync`: one call on an aiocancel worker, without installing."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, TypeVar, TypeVarTuple, Unpack

from .._outcome import close_abandoned
from ._compat import require
from ._registry import backend_class, backend_name

__all__ = ["run_sync"]

T = TypeVar("T")
if TYPE_CHECKING:       # (mypy.stubtest cannot inspect a runtime TypeVarTuple)
    _Ts = TypeVarTuple("_Ts")


# Typed as anyio.to_thread.run_sync: `args` must fit `func` (TypeVarTuple).
async def run_sync(func: Callable[[Unpack[_Ts]], T], /, *args: Unpack[_Ts],
                   abandon_on_cancel: bool = False, limiter: Any = None,
                   on_abandoned_result: Callable[[Any], object] | None = close_abandoned
                   ) -> T:
    """Call ``func(*args)`` on an aiocancel worker and await it, on whichever
    anyio backend is running (asyncio, uvloop or trio).

    Like ``anyio.to_thread.run_sync`` (same `limiter` semantics, same
    ``anyio.from_thread`` support in the worker), but ``func`` runs in MASKED
    state: its `aiocancel.syscalls` calls and `aiocancel.testcancel` are
    cancellation points. When the enclosing cancel scope is cancelled
    (deadline, ``move_on_after``, ``fail_after``, task group), the request
    goes to the worker and the task waits for it (at most the grace period
    of `aiocancel.anyio.install`, default `aiocancel.DEFAULT_GRACE`), then
    raises the backend's cancellation exception, the call's exception
    chained. A result the call produced anyway (it raced the request, or
    came after the grace period) is passed to ``on_abandoned_result``
    (default `aiocancel.close_abandoned`: closes sockets and file objects;
    None drops it, as anyio does). This is `aiocancel.to_thread`'s contract.

    With ``abandon_on_cancel=True`` the task does not wait: it raises the
    cancellation at once and the request is still sent (so the worker is
    freed). The limiter token is returned as the backend replaced returns
    it (asyncio: when the task leaves; trio: when the worker is done).

    Raises `aiocancel.anyio.UnsupportedAnyioError` if the installed anyio is
    outside the supported range.
    """
    require()
    from anyio._core._eventloop import get_async_backend
    backend = backend_class(backend_name(get_async_backend()))
    result: T = await backend.aiocancel_run_sync(func, args, abandon_on_cancel, limiter,
                                                 on_abandoned_result)
    return result
