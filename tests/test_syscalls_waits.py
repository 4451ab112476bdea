"""aiocancel.syscalls waits: select, epoll_wait, ppoll, waitid,
sigtimedwait, sigwaitinfo.

Results and bad-input errors match select.select, select.epoll.poll,
select.poll, os.waitid and signal.sigtimedwait/sigwaitinfo; a wait blocked in
the kernel is cancelled without consuming anything (the fd's data, the
child's status, the signal stay for the next wait)."""
from __future__ import annotations

import errno
import os
import select
import signal
import subprocess
import threading

import pytest
from conftest import JOIN_TIMEOUT, Runner, requires_core, wait_blocked
from syscall_fixtures import (Pending, assert_cancelled, cancel_when_blocked,
                              same_outcome)

import aiocancel
from aiocancel import Cancelled, syscalls


class Named:
    """An object with fileno(), as select accepts."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


# ---- select -------------------------------------------------------------------

def test_select_matches_select(pipe):
    r, w = pipe
    nr, nw = Named(r), Named(w)
    for timeout in (0, 0.0, 0.001, None):
        if timeout is None:
            os.write(w, b"x")
        ours = syscalls.select([r, nr], [w, nw], [r], timeout)
        theirs = select.select([r, nr], [w, nw], [r], timeout)
        assert type(ours) is tuple and ours == theirs
        assert all(type(x) is list for x in ours)
    assert ours[0][1] is nr and ours[1][1] is nw        # the objects given


@pytest.mark.parametrize("args", [
    (5, [], []), ([], [], [], "x"), ([-1], [], []), ([4096], [], []),
    ([object()], [], []), ([], [], [], -1), ([], [], [], float("nan")),
    ([], [], [], 1e300)])
def test_select_bad_input_matches_select(args):
    same_outcome(lambda: syscalls.select(*args), lambda: select.select(*args))


def test_select_bad_fd_matches_select():
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    exc = same_outcome(lambda: syscalls.select([r], [], [], 0),
                       lambda: select.select([r], [], [], 0))
    assert exc.errno == errno.EBADF


@requires_core
def test_select_cancelled_while_blocked(pipe):
    r, w = pipe
    run = cancel_when_blocked(syscalls.select, [r], [], [], syscall="pselect6",
                              arg0=r + 1)
    assert_cancelled(run)
    os.write(w, b"x")
    assert syscalls.select([r], [], [], 0) == ([r], [], [])
    assert os.read(r, 1) == b"x"


# ---- epoll_wait ---------------------------------------------------------------

def test_epoll_wait_matches_epoll_poll(pipe):
    r, w = pipe
    with select.epoll() as ep:
        ep.register(r, select.EPOLLIN)
        ep.register(w, select.EPOLLOUT)
        assert syscalls.epoll_wait(ep, 0) == ep.poll(0) == [(w, select.EPOLLOUT)]
        os.write(w, b"x")
        ours = sorted(syscalls.epoll_wait(ep.fileno(), 1))
        assert ours == sorted(ep.poll(1)) == [(r, select.EPOLLIN),
                                               (w, select.EPOLLOUT)]
        assert len(syscalls.epoll_wait(ep, None, 1)) == len(ep.poll(None, 1)) == 1
        for args in [("x",), (1, 0), (1, -2), (1e300,), (10**30,)]:
            same_outcome(lambda: syscalls.epoll_wait(ep, *args),
                         lambda: ep.poll(*args))
        assert syscalls.epoll_wait(ep, -5) == ep.poll(-5)   # negative: no limit
    same_outcome(lambda: syscalls.epoll_wait(ep), lambda: ep.poll())   # closed


@requires_core
def test_epoll_wait_cancelled_while_blocked(pipe):
    r, w = pipe
    with select.epoll() as ep:
        ep.register(r, select.EPOLLIN)
        run = cancel_when_blocked(syscalls.epoll_wait, ep, syscall="epoll_pwait",
                                  arg0=ep.fileno())
        assert_cancelled(run)
        os.write(w, b"x")
        assert syscalls.epoll_wait(ep, 0) == [(r, select.EPOLLIN)]


# ---- ppoll ----------------------------------------------------------------------

def test_ppoll_matches_poll_and_keeps_the_thread_mask(pipe):
    r, w = pipe
    poller = select.poll()
    poller.register(w, select.POLLOUT)
    poller.register(r, select.POLLIN)

    def body():
        before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        got = syscalls.ppoll([(w, select.POLLOUT), (r, select.POLLIN)], 0,
                             [signal.SIGUSR1, signal.SIGUSR2])
        return got, before, signal.pthread_sigmask(signal.SIG_BLOCK, [])
    got, before, after = Runner(body).start().outcome()
    assert got == poller.poll(0) == [(w, select.POLLOUT)]
    assert before == after
    assert syscalls.ppoll([(w, select.POLLOUT)], None, None) == [(w, select.POLLOUT)]
    same_outcome(lambda: syscalls.ppoll([], 0, [0]),
                 lambda: signal.sigtimedwait([0], 0))
    same_outcome(lambda: syscalls.ppoll([], 0, [65]),
                 lambda: signal.sigtimedwait([65], 0))


@requires_core
def test_ppoll_blocking_every_signal_is_still_cancelled(pipe):
    r, w = pipe
    everything = [s for s in range(1, signal.NSIG)
                  if s not in (signal.SIGKILL, signal.SIGSTOP)]
    assert aiocancel.cancel_signal() in everything
    run = cancel_when_blocked(syscalls.ppoll, [(r, select.POLLIN)], None,
                              everything, syscall="ppoll")
    assert_cancelled(run)


# ---- waitid -----------------------------------------------------------------------

def _spawn(*argv: str) -> int:
    return os.posix_spawnp(argv[0], list(argv), os.environ)


def test_waitid_matches_os_waitid():
    a, b = _spawn("sh", "-c", "exit 3"), _spawn("sh", "-c", "exit 3")
    ours = syscalls.waitid(os.P_PID, a, os.WEXITED)
    theirs = os.waitid(os.P_PID, b, os.WEXITED)
    assert type(ours) is type(theirs) is os.waitid_result
    assert (ours.si_pid, ours.si_status, ours.si_code, ours.si_signo,
            ours.si_uid) == (a, 3, os.CLD_EXITED, signal.SIGCHLD, os.getuid())
    assert (ours.si_status, ours.si_code) == (theirs.si_status, theirs.si_code)
    c = _spawn("sleep", "30")
    try:
        assert syscalls.waitid(os.P_PID, c, os.WEXITED | os.WNOHANG) is None
        assert os.waitid(os.P_PID, c, os.WEXITED | os.WNOHANG) is None
    finally:
        os.kill(c, signal.SIGKILL)
        assert syscalls.waitid(os.P_PID, c, os.WEXITED).si_status == signal.SIGKILL
    exc = same_outcome(lambda: syscalls.waitid(os.P_PID, c, os.WEXITED),
                       lambda: os.waitid(os.P_PID, c, os.WEXITED))
    assert isinstance(exc, ChildProcessError)
    same_outcome(lambda: syscalls.waitid(os.P_ALL, 0, 0),
                 lambda: os.waitid(os.P_ALL, 0, 0))


@requires_core
def test_waitid_cancelled_while_blocked_child_status_kept():
    pid = _spawn("sleep", "30")
    try:
        run = cancel_when_blocked(syscalls.waitid, os.P_PID, pid, os.WEXITED,
                                  syscall="waitid", arg0=os.P_PID)
        assert_cancelled(run)
    finally:
        os.kill(pid, signal.SIGTERM)
    result = syscalls.waitid(os.P_PID, pid, os.WEXITED)
    assert result.si_pid == pid and result.si_status == signal.SIGTERM


# ---- sigtimedwait / sigwaitinfo ---------------------------------------------------

def _in_thread_with_sigusr1_blocked(fn):
    def body():
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
        return fn()
    return Runner(body).start().outcome()


def test_sigtimedwait_matches_signal():
    def body():
        me = threading.get_ident()
        out = []
        for wait in (syscalls.sigtimedwait, signal.sigtimedwait):
            signal.pthread_kill(me, signal.SIGUSR1)
            out.append(wait([signal.SIGUSR1], 5))
            out.append(wait([signal.SIGUSR1], 0))          # nothing left
        signal.pthread_kill(me, signal.SIGUSR1)
        out.append(syscalls.sigwaitinfo({signal.SIGUSR1}))
        return out
    ours, ours_none, theirs, theirs_none, info = _in_thread_with_sigusr1_blocked(body)
    assert type(ours) is type(theirs) is signal.struct_siginfo
    assert ours.si_signo == theirs.si_signo == info.si_signo == signal.SIGUSR1
    assert ours.si_pid == theirs.si_pid == os.getpid()
    assert ours_none is None and theirs_none is None
    for args in [([0], 1), ([65], 1), (5, 1), ([1], -1), ([1], "x"),
                 ([1], float("nan")), ([1], 1e300), ([1], 10**30)]:
        same_outcome(lambda: syscalls.sigtimedwait(*args),
                     lambda: signal.sigtimedwait(*args))
    same_outcome(lambda: syscalls.sigwaitinfo([0]), lambda: signal.sigwaitinfo([0]))


@requires_core
@pytest.mark.parametrize("call", ["sigwaitinfo", "sigtimedwait"])
def test_sigwait_cancelled_while_blocked_consumes_nothing(call):
    cancelled, resume = threading.Event(), threading.Event()
    args = ([signal.SIGUSR1, aiocancel.cancel_signal()],) + (
        (60,) if call == "sigtimedwait" else ())

    def body():
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
        with aiocancel.masked():
            try:
                getattr(syscalls, call)(*args)
            except Cancelled:
                cancelled.set()
            else:
                return "not cancelled"
            # DISABLE now (one-off): the next wait is a plain one.
            resume.wait(JOIN_TIMEOUT)
            return syscalls.sigtimedwait([signal.SIGUSR1], JOIN_TIMEOUT)

    run = Runner(body).start()
    wait_blocked(run.native_id, "rt_sigtimedwait", alive=run.alive)
    assert aiocancel.cancel_thread(run.ident)
    assert cancelled.wait(JOIN_TIMEOUT)
    # Only now: a SIGUSR1 queued earlier could have been the wait's result.
    signal.pthread_kill(run.ident, signal.SIGUSR1)
    resume.set()
    info = run.outcome()
    assert info is not None and info.si_signo == signal.SIGUSR1


@pytest.mark.parametrize("call,args", [
    ("select", ([], [], [], 0)), ("epoll_wait", None), ("ppoll", ([], 0, [])),
    ("waitid", (os.P_ALL, 0, os.WEXITED | os.WNOHANG)),
    ("sigtimedwait", ([signal.SIGUSR1], 0)), ("sigwaitinfo", ([signal.SIGUSR1],))])
def test_pending_request_acts_before_the_wait(call, args):
    with select.epoll() as ep:
        run = Pending().run(getattr(syscalls, call), *(args or (ep, 0)))
    assert isinstance(run.exc, Cancelled)
