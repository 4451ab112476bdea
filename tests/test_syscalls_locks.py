"""flock conversions under cancellation, and fcntl's int argument wrapped as
the stdlib wraps it (issue 11)."""
from __future__ import annotations

import fcntl
import os

import pytest
from conftest import requires_core
from syscall_fixtures import assert_cancelled, cancel_when_blocked, same_outcome

from aiocancel import syscalls


@requires_core
def test_cancelled_flock_upgrade_leaves_no_lock(tmp_path):
    """LOCK_SH held, LOCK_EX requested while another description also holds
    LOCK_SH, cancelled: Cancelled is raised, and Linux has already dropped
    the shared lock (the conversion removes the old lock before it waits).
    Proof: the other holder can now take LOCK_EX without waiting, which it
    could not while ours was held."""
    path = tmp_path / "lock"
    path.touch()
    with open(path) as ours, open(path) as other:
        fcntl.flock(ours, fcntl.LOCK_SH)
        fcntl.flock(other, fcntl.LOCK_SH)
        with pytest.raises(BlockingIOError):   # ours blocks it: both shared
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_SH)      # (the failed upgrade dropped it)
        run = cancel_when_blocked(syscalls.flock, ours, fcntl.LOCK_EX,
                                  syscall="flock", arg0=ours.fileno())
        assert_cancelled(run)
        # Our shared lock is gone: the other description upgrades at once.
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_UN)
        # And ours can be taken again, as the docstring says to.
        syscalls.flock(ours, fcntl.LOCK_SH | fcntl.LOCK_NB)


def _closing(fn):
    """fn(), closing a returned fd at once: F_DUPFD's result is the lowest
    free fd, so the second call must not see the first one's."""
    def call():
        result = fn()
        if isinstance(result, int) and result > 2:
            os.close(result)
        return result
    return call


@pytest.mark.parametrize("arg", [-1, 0x80000000, 0xFFFFFFFF, 2**40 + 1, -2**40, 2**64])
@pytest.mark.parametrize("cmd", ["F_GETFD", "F_SETFD", "F_DUPFD", "F_DUPFD_CLOEXEC"])
def test_fcntl_int_arg_wraps_like_the_stdlib(pipe, cmd, arg):
    r, _ = pipe
    code = getattr(fcntl, cmd)
    wrap = _closing if cmd.startswith("F_DUPFD") else (lambda fn: fn)
    same_outcome(wrap(lambda: syscalls.fcntl(r, code, arg)),
                 wrap(lambda: fcntl.fcntl(r, code, arg)))
    if cmd == "F_SETFD":
        # Both set the same flags: compare what the kernel holds now.
        assert fcntl.fcntl(r, fcntl.F_GETFD) == (arg & 0xFFFFFFFF & fcntl.FD_CLOEXEC)


def test_fcntl_f_setfl_with_minus_one_matches(pipe):
    r, _ = pipe
    before = fcntl.fcntl(r, fcntl.F_GETFL)
    try:
        same_outcome(lambda: syscalls.fcntl(r, fcntl.F_SETFL, -1),
                     lambda: fcntl.fcntl(r, fcntl.F_SETFL, -1))
        ours_flags = fcntl.fcntl(r, fcntl.F_GETFL)
        fcntl.fcntl(r, fcntl.F_SETFL, before)
        fcntl.fcntl(r, fcntl.F_SETFL, -1)
        assert fcntl.fcntl(r, fcntl.F_GETFL) == ours_flags
    finally:
        fcntl.fcntl(r, fcntl.F_SETFL, before)
