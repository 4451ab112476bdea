"""The exceptions a cancellation point raises."""
from __future__ import annotations

import errno
import os

__all__ = ["Cancelled", "ThreadCancelled"]

# Computed once: every cancellation raises one (strerror made it 3x dearer).
_DEFAULT_ARGS = (errno.ECANCELED, os.strerror(errno.ECANCELED))


class Cancelled(OSError):
    """A cancellation point acted on a request in MASKED state.

    An ``OSError`` with ``errno == errno.ECANCELED``, so code that already
    handles I/O errors cleans up as it would for any failed call. The thread's
    state is DISABLE afterwards (one-off), so that cleanup code may block.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(args or _DEFAULT_ARGS))


class ThreadCancelled(BaseException):
    """A cancellation point acted on a request in ENABLE state.

    The Python analogue of POSIX unwinding: it is not an ``Exception``, so it
    runs ``finally`` blocks and leaves ``except Exception`` handlers alone.
    """
