"""Helpers shared by tests/test_syscalls_*.py, test_patch*.py and
test_clients*.py: block a thread in a given syscall, cancel it, and compare
aiocancel's calls with their stdlib counterparts."""
from __future__ import annotations

import errno
import threading
from typing import Any, Callable

import conftest
from conftest import JOIN_TIMEOUT, Runner, wait_blocked

import aiocancel

# Syscalls conftest's table lacks, so that wait_blocked can name them.
_MORE_NR = {
    "x86_64": dict(readv=19, writev=20, preadv=295, pwritev=296, preadv2=327,
                   pwritev2=328, openat=257, flock=73, fcntl=72, pselect6=270,
                   epoll_wait=232, epoll_pwait=281, waitid=247,
                   rt_sigtimedwait=128, futex=202, recvmsg=47, sendmsg=46,
                   msgsnd=69, msgrcv=70, poll=7, select=23),
    "aarch64": dict(readv=65, writev=66, preadv=69, pwritev=70, preadv2=286,
                    pwritev2=287, openat=56, flock=32, fcntl=25, pselect6=72,
                    epoll_pwait=22, waitid=95, rt_sigtimedwait=137, futex=98,
                    recvmsg=212, sendmsg=211, msgsnd=189, msgrcv=188),
}
for _name, _nr in _MORE_NR.get(conftest.NR_MACHINE, {}).items():
    conftest.NR.setdefault(_name, _nr)


def masked_call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call fn(*args) in MASKED state, as a worker job runs."""
    with aiocancel.masked():
        return fn(*args)


def cancel_when_blocked(fn: Callable[..., Any], *args: Any, syscall: str,
                        arg0: int | None = None,
                        timeout: float = JOIN_TIMEOUT) -> Runner:
    """Run fn(*args) in MASKED state on a fresh thread, wait until that
    thread sleeps in `syscall` (with first argument `arg0`), cancel it, and
    return the joined Runner (its .exc / .result tell what happened)."""
    r = Runner(masked_call, fn, *args).start()
    wait_blocked(r.native_id, syscall, arg0=arg0, alive=r.alive)
    assert aiocancel.cancel_thread(r.ident)
    return r.join(timeout)


def assert_cancelled(r: Runner) -> None:
    """The runner's call ended with Cancelled (ECANCELED), not a result."""
    assert r.exc is not None, f"returned {r.result!r} instead of Cancelled"
    assert isinstance(r.exc, aiocancel.Cancelled), repr(r.exc)
    assert r.exc.errno == errno.ECANCELED


def same_outcome(ours: Callable[[], Any], theirs: Callable[[], Any],
                 message: bool = True) -> Any:
    """Run both; assert equal results (and types) or the same exception
    type, errno and (unless message=False) message. Returns our result (or
    exception)."""
    def outcome(fn):
        try:
            return ("ok", fn())
        except Exception as exc:   # noqa: BLE001 - compared below
            return ("exc", exc)
    a, b = outcome(ours), outcome(theirs)
    assert a[0] == b[0], f"ours: {a[1]!r}, stdlib: {b[1]!r}"
    if a[0] == "ok":
        assert type(a[1]) is type(b[1]), (a[1], b[1])
        assert a[1] == b[1], (a[1], b[1])
    else:
        assert type(a[1]) is type(b[1]), (a[1], b[1])
        assert getattr(a[1], "errno", None) == getattr(b[1], "errno", None)
        if message:
            assert str(a[1]) == str(b[1]), (str(a[1]), str(b[1]))
    return a[1]


class Pending:
    """A thread with a pending request in MASKED state, running calls on
    demand: `run(fn, *args)` returns what the call returned or raised."""

    def __init__(self) -> None:
        self.result: Any = None
        self.exc: BaseException | None = None

    def run(self, fn: Callable[..., Any], *args: Any) -> "Pending":
        def body():
            with aiocancel.masked():
                aiocancel.cancel_thread(threading.get_ident())
                try:
                    self.result = fn(*args)
                except BaseException as exc:   # noqa: BLE001
                    self.exc = exc
        Runner(body).start().join()
        return self
