"""The exceptions a cancellation point raises."""
from __future__ import annotations

import errno
import os

__all__ = ["Cancelled", "ThreadCancelled"]


class Cancelled(OSError):
    """A cancellation point acted on a request in MASKED state.

    An ``OSError`` with ``errno == errno.ECANCELED``, so code that already
    handles I/O errors cleans up as it would for any failed call. The thread's
    state is DISABLE afterwards (one-off), so that cleanup code may block.
    """

    def __init__(self, *args: object) -> None:
        if not args:
            args = (errno.ECANCELED, os.strerror(errno.ECANCELED))
        super().__init__(*args)


class ThreadCancelled(BaseException):
    """A cancellation point acted on a request in ENABLE state.

    The Python analogue of POSIX unwinding: it is not an ``Exception``, so it
    runs ``finally`` blocks and leaves ``except Exception`` handlers alone.
    """
