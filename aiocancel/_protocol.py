"""A library call that speaks a request/response protocol: cancelled by the
library's own cancel, never interrupted.

Inside `protocol_call(cancel, discard)` no cancellation point acts (the
thread is in DISABLE state, so neither patch mode nor transparent mode
interrupts the library's socket waits mid-protocol), and a cancel request
made for the job starts `cancel` instead: the library's out-of-band cancel
(PostgreSQL's cancel request), which makes the call fail with the library's
own error while the connection stays in step. A request pending at entry
stops the job before anything is sent. If an aiocancel cancellation still
escapes from the call (it was not entered through here), the library object
is in an unknown state: `discard` closes it, so that later use fails
clearly instead of reading another request's reply.
"""
from __future__ import annotations

import errno
import logging
import threading
from contextlib import nullcontext
from typing import Any, Callable, ContextManager

from ._core import cancel as _cancel
from ._errors import Cancelled, ThreadCancelled
from ._on_cancel import current_job, on_cancel

__all__ = ["protocol_call"]

_log = logging.getLogger("aiocancel")

# First and last pause between two out-of-band cancels of the same call: a
# cancel that reaches the server before the query does is dropped there, so
# it is repeated (doubling) until the call ends.
_FIRST_RETRY = 0.05
_LAST_RETRY = 1.0

_NOTHING = nullcontext()


def _interrupted(exc: BaseException) -> bool:
    """Whether `exc` is an aiocancel cancellation (not the library's error)."""
    return isinstance(exc, (Cancelled, ThreadCancelled)) or (
        isinstance(exc, OSError) and exc.errno == errno.ECANCELED)


class _ProtocolCall:
    __slots__ = ("cancel", "discard", "old_state", "registration", "lock",
                 "ended")

    def __init__(self, cancel: Callable[[], object],
                 discard: Callable[[], object]) -> None:
        self.cancel = cancel
        self.discard = discard
        self.lock = threading.Lock()
        self.ended = threading.Event()

    def __enter__(self) -> None:
        # A request already made: stop before a byte is sent.
        _cancel.testcancel()
        self.old_state = _cancel.setcancelstate(_cancel.CANCEL_DISABLE)
        self.registration = on_cancel(self._start)

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.registration.remove()
        # Under the lock: no cancel of this call is sent once it has ended,
        # so none can reach the connection's next query.
        with self.lock:
            self.ended.set()
        _cancel.setcancelstate(self.old_state)
        if exc is not None and _interrupted(exc):
            _log.warning("aiocancel: %r interrupted mid-protocol; closing it",
                         self.discard)
            try:
                self.discard()
            except Exception:      # noqa: BLE001 - the original error wins
                _log.exception("aiocancel: discarding failed")

    def _start(self) -> None:
        # In the cancelling thread (often an event loop): the library's
        # cancel does network I/O, so it runs on a helper thread.
        threading.Thread(target=self._cancel_until_ended, daemon=True,
                         name="aiocancel-protocol-cancel").start()

    def _cancel_until_ended(self) -> None:
        delay = _FIRST_RETRY
        while True:
            with self.lock:
                if self.ended.is_set():
                    return
                try:
                    self.cancel()
                except Exception:  # noqa: BLE001 - e.g. the server is gone
                    _log.exception("aiocancel: out-of-band cancel %r failed",
                                   self.cancel)
                    return
            if self.ended.wait(delay):
                return
            delay = min(delay * 2, _LAST_RETRY)


def protocol_call(cancel: Callable[[], object],
                  discard: Callable[[], object]) -> ContextManager[None]:
    """Context manager around one protocol exchange of a library object
    (see the module docstring); does nothing outside an aiocancel job."""
    if current_job() is None:
        return _NOTHING
    return _ProtocolCall(cancel, discard)
