"""Cancellable threading waits: `Condition`, `Event`, and `wait`.

``threading.Condition.wait`` blocks each waiting thread on a private lock
(its "waiter") until ``notify()`` releases it. Here the waiter is a `Waiter`,
a futex-based lock whose blocking acquire goes through aiocancel's
trampoline, so in a registered thread in MASKED or ENABLE state (an aiocancel
worker's job) the wait is a cancellation point:

* a request that arrives while the thread waits makes ``wait`` re-acquire the
  condition's lock and raise `aiocancel.Cancelled` (MASKED) or
  `aiocancel.ThreadCancelled` (ENABLE), like any cancellable syscall;
* a notify is never lost to a cancellation: if the waiter was released by
  ``notify()`` before the request acted, ``wait`` returns True and the
  request stays pending for the next cancellation point; if ``notify()``
  chose this waiter after it gave up, the wake-up is passed on to another
  waiter (``notify()`` once more) so that no other thread misses it.

Elsewhere (unregistered threads, DISABLE state) the waits behave exactly like
the stdlib's. `aiocancel.patch()` routes ``threading.Condition.wait`` (hence
``threading.Event.wait``, ``queue.Queue.get``/``put``, ``Semaphore``,
``Barrier`` and ``concurrent.futures`` waits) through `wait` in workers.
"""
from __future__ import annotations

import threading as _threading
from typing import Any

from ._core import futex as _futex

__all__ = ["Waiter", "Condition", "Event", "wait"]

Waiter = _futex.Waiter


def wait(cond: _threading.Condition, timeout: float | None = None) -> bool:
    """``cond.wait(timeout)`` with a cancellable `Waiter`: return True once
    notified, False on timeout; raise `Cancelled` / `ThreadCancelled` if a
    cancel request acts while waiting (the condition's lock is then held
    again, as after any wait). `cond` is a ``threading.Condition``."""
    if not cond._is_owned():   # type: ignore[attr-defined]
        raise RuntimeError("cannot wait on un-acquired lock")
    waiter = Waiter()
    waiter.acquire()
    cond._waiters.append(waiter)   # type: ignore[attr-defined]
    saved_state = cond._release_save()   # type: ignore[attr-defined]
    gotit = False
    interrupted = True
    try:
        if timeout is None:
            gotit = waiter.acquire()
        elif timeout > 0:
            gotit = waiter.acquire(True, timeout)
        else:
            gotit = waiter.acquire(False)
        interrupted = False
        return gotit
    finally:
        cond._acquire_restore(saved_state)   # type: ignore[attr-defined]
        if not gotit:
            try:
                cond._waiters.remove(waiter)   # type: ignore[attr-defined]
            except ValueError:
                # notify() released this waiter after the wait was cancelled
                # (between the cancel and re-acquiring the lock): that wake-up
                # was meant for a waiting thread, so hand it to another one.
                if interrupted:
                    cond.notify()


class Condition(_threading.Condition):
    """``threading.Condition`` whose `wait` (and so ``wait_for``) is a
    cancellation point; see the module docstring."""

    def wait(self, timeout: float | None = None) -> bool:
        return wait(self, timeout)


class Event(_threading.Event):
    """``threading.Event`` whose ``wait`` is a cancellation point."""

    def __init__(self) -> None:
        super().__init__()
        self._cond: Any = Condition(_threading.Lock())
