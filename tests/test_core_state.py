"""Cancel state semantics of the core (the 2015 MASKED-mode post).

Every test that touches cancel state runs in a fresh thread (run_in_thread /
the runner fixture), so the pytest main thread never registers.
"""
from __future__ import annotations

import errno
import os
import signal
import threading

import pytest

import aiocancel
from aiocancel import _cancel as core
from aiocancel import syscalls
from conftest import pipe_pending, requires_core, run_in_thread, wait_blocked

pytestmark = requires_core


# ---- constants, exceptions ---------------------------------------------------

def test_constants_are_distinct_ints():
    states = {aiocancel.CANCEL_ENABLE, aiocancel.CANCEL_DISABLE, aiocancel.CANCEL_MASKED}
    assert len(states) == 3
    assert all(type(s) is int for s in states)


def test_cancelled_is_oserror_with_ecanceled():
    exc = aiocancel.Cancelled()
    assert isinstance(exc, OSError)
    assert exc.errno == errno.ECANCELED
    assert not issubclass(aiocancel.ThreadCancelled, Exception)
    assert issubclass(aiocancel.ThreadCancelled, BaseException)


def test_cancel_signal_is_a_free_realtime_signal():
    sig = aiocancel.cancel_signal()
    assert signal.SIGRTMIN <= sig <= signal.SIGRTMAX


# ---- state get/set -------------------------------------------------------------

def test_unregistered_thread_reports_enable_and_nothing_pending():
    def body():
        return aiocancel.getcancelstate(), core._pending()
    assert run_in_thread(body) == (aiocancel.CANCEL_ENABLE, False)


def test_setcancelstate_returns_previous_state():
    def body():
        seen = [aiocancel.setcancelstate(aiocancel.CANCEL_MASKED)]
        seen.append(aiocancel.setcancelstate(aiocancel.CANCEL_DISABLE))
        seen.append(aiocancel.setcancelstate(aiocancel.CANCEL_ENABLE))
        seen.append(aiocancel.getcancelstate())
        return seen
    assert run_in_thread(body) == [aiocancel.CANCEL_ENABLE, aiocancel.CANCEL_MASKED,
                                   aiocancel.CANCEL_DISABLE, aiocancel.CANCEL_ENABLE]


def test_setcancelstate_rejects_bad_values():
    def body():
        aiocancel.setcancelstate(aiocancel.CANCEL_MASKED)
        for bad in (99, -1, 3):
            with pytest.raises(ValueError):
                aiocancel.setcancelstate(bad)
        with pytest.raises(TypeError):
            aiocancel.setcancelstate("masked")
        with pytest.raises(TypeError):
            aiocancel.setcancelstate(None)
        return aiocancel.getcancelstate()
    # A rejected value leaves the state alone.
    assert run_in_thread(body) == aiocancel.CANCEL_MASKED


def test_masked_context_manager_sets_and_restores():
    def body():
        aiocancel.setcancelstate(aiocancel.CANCEL_DISABLE)
        seen = []
        with aiocancel.masked():
            seen.append(aiocancel.getcancelstate())
            aiocancel.setcancelstate(aiocancel.CANCEL_ENABLE)
            with aiocancel.masked():
                seen.append(aiocancel.getcancelstate())
            seen.append(aiocancel.getcancelstate())
        seen.append(aiocancel.getcancelstate())
        return seen
    M, D, E = aiocancel.CANCEL_MASKED, aiocancel.CANCEL_DISABLE, aiocancel.CANCEL_ENABLE
    assert run_in_thread(body) == [M, M, E, D]


def test_masked_restores_on_exception():
    def body():
        aiocancel.setcancelstate(aiocancel.CANCEL_DISABLE)
        with pytest.raises(KeyError):
            with aiocancel.masked():
                raise KeyError
        return aiocancel.getcancelstate()
    assert run_in_thread(body) == aiocancel.CANCEL_DISABLE


# ---- cancel_thread targets ---------------------------------------------------

def test_cancel_thread_unknown_or_unregistered_ident_is_false():
    assert aiocancel.cancel_thread(0) is False
    assert aiocancel.cancel_thread(-5) is False
    assert aiocancel.cancel_thread(1 << 200) is False
    with pytest.raises(TypeError):
        aiocancel.cancel_thread("1")
    with pytest.raises(TypeError):
        aiocancel.cancel_thread(1.0)
    # The pytest main thread never registered.
    assert aiocancel.cancel_thread(threading.main_thread().ident) is False

    # A live thread that never registered is not a target either.
    go = threading.Event()
    t = threading.Thread(target=go.wait, args=(10,), daemon=True)
    t.start()
    try:
        assert aiocancel.cancel_thread(t.ident) is False
    finally:
        go.set()
        t.join(10)
    assert not t.is_alive()


# ---- pending before the call ------------------------------------------------

def test_pending_request_fails_write_without_entering_kernel(pipe):
    """A request made before the call: the call fails with Cancelled and
    the syscall never ran (the write that would have succeeded wrote
    nothing)."""
    r, w = pipe

    def body():
        aiocancel.setcancelstate(aiocancel.CANCEL_MASKED)
        assert aiocancel.cancel_thread(threading.get_ident()) is True
        assert core._pending()
        with pytest.raises(aiocancel.Cancelled) as info:
            syscalls.write(w, b"must not be written")
        return info.value.errno, aiocancel.getcancelstate()

    assert run_in_thread(body) == (errno.ECANCELED, aiocancel.CANCEL_DISABLE)
    assert pipe_pending(r) == b""


@pytest.mark.parametrize("call", ["read", "readinto", "pread", "pwrite", "poll", "sleep",
                                  "recv", "send", "accept", "waitpid"])
def test_pending_request_fails_every_call_before_the_syscall(call, pipe):
    """Pending-before-call holds for every wrapper: nothing is consumed or
    produced, even where the syscall would have returned at once."""
    import socket
    import tempfile
    r, w = pipe
    os.write(w, b"data")
    a, b = socket.socketpair()
    b.sendall(b"sock")
    lst = socket.socket(socket.AF_UNIX)
    lst.bind("")          # autobind (abstract)
    lst.listen(4)
    cli = socket.socket(socket.AF_UNIX)
    cli.connect(lst.getsockname())
    tmp = tempfile.TemporaryFile()
    tmp.write(b"file")
    tmp.flush()
    calls = {
        "read": lambda: syscalls.read(r, 100),
        "readinto": lambda: syscalls.readinto(r, bytearray(100)),
        "pread": lambda: syscalls.pread(tmp.fileno(), 100, 0),
        "pwrite": lambda: syscalls.pwrite(tmp.fileno(), b"XXXX", 0),
        "poll": lambda: syscalls.poll([(r, 1)], 0),
        "sleep": lambda: syscalls.sleep(0),
        "recv": lambda: syscalls.recv(a, 100),
        "send": lambda: syscalls.send(a, b"x"),
        "accept": lambda: syscalls.accept(lst),
        "waitpid": lambda: syscalls.waitpid(-1, os.WNOHANG),
    }

    def body():
        with aiocancel.masked():
            aiocancel.cancel_thread(threading.get_ident())
            with pytest.raises(aiocancel.Cancelled):
                calls[call]()
            return aiocancel.getcancelstate()

    try:
        before = os.listdir("/proc/self/fd")
        assert run_in_thread(body) == aiocancel.CANCEL_DISABLE
        assert os.listdir("/proc/self/fd") == before       # accept made no fd
        assert pipe_pending(r) == b"data"
        assert os.pread(tmp.fileno(), 100, 0) == b"file"
        b.setblocking(False)
        with pytest.raises(BlockingIOError):
            b.recv(10)                                     # send sent nothing
        a.setblocking(False)
        assert a.recv(100) == b"sock"
        lst.setblocking(False)
        conn, _ = lst.accept()                             # still queued
        conn.close()
    finally:
        for s in (a, b, lst, cli, tmp):
            s.close()


# ---- one-off -----------------------------------------------------------------

def test_one_off_state_disable_after_cancelled_and_next_call_runs(pipe):
    r, w = pipe

    def body():
        aiocancel.setcancelstate(aiocancel.CANCEL_MASKED)
        aiocancel.cancel_thread(threading.get_ident())
        with pytest.raises(aiocancel.Cancelled):
            syscalls.read(r, 10)
        state = aiocancel.getcancelstate()
        # The request stays pending (it is not consumed) but the state is
        # DISABLE, so the following calls behave as plain syscalls.
        wrote = syscalls.write(w, b"xyz")
        got = syscalls.read(r, 10)
        return state, wrote, got, core._pending()

    assert run_in_thread(body) == (aiocancel.CANCEL_DISABLE, 3, b"xyz", True)


def test_one_off_blocking_call_after_cancelled_is_not_interrupted(pipe, runner):
    """After Cancelled the thread may block in cleanup: a second request does
    not interrupt it (state is DISABLE)."""
    r, w = pipe

    def body():
        aiocancel.setcancelstate(aiocancel.CANCEL_MASKED)
        aiocancel.cancel_thread(threading.get_ident())
        with pytest.raises(aiocancel.Cancelled):
            syscalls.read(r, 10)
        return syscalls.read(r, 10)

    t = runner(body)
    wait_blocked(t.native_id, "read", r, alive=t.alive)
    assert aiocancel.cancel_thread(t.ident) is True
    os.write(w, b"late")
    assert t.outcome() == b"late"


# ---- DISABLE and ENABLE -----------------------------------------------------

def test_disable_keeps_request_pending_then_masked_delivers(pipe):
    r, w = pipe
    os.write(w, b"ab")

    def body():
        aiocancel.setcancelstate(aiocancel.CANCEL_DISABLE)
        assert aiocancel.cancel_thread(threading.get_ident()) is True
        got = syscalls.read(r, 1)                  # completes normally
        aiocancel.testcancel()                     # not a cancellation point now
        pending = core._pending()
        aiocancel.setcancelstate(aiocancel.CANCEL_MASKED)
        with pytest.raises(aiocancel.Cancelled):
            syscalls.read(r, 1)                    # delivered at the next call
        return got, pending, aiocancel.getcancelstate()

    assert run_in_thread(body) == (b"a", True, aiocancel.CANCEL_DISABLE)
    assert pipe_pending(r) == b"b"


def test_enable_raises_thread_cancelled_state_disable_after(pipe):
    r, w = pipe
    os.write(w, b"x")

    def body():
        aiocancel.setcancelstate(aiocancel.CANCEL_ENABLE)
        aiocancel.cancel_thread(threading.get_ident())
        cleanup = []
        try:
            try:
                syscalls.read(r, 1)
            except Exception:          # ThreadCancelled is not an Exception
                return "caught by except Exception"
            finally:
                cleanup.append(aiocancel.getcancelstate())
        except aiocancel.ThreadCancelled:
            pass
        else:
            return "not cancelled"
        # cleanup code may now run cancellation points freely
        return cleanup, aiocancel.getcancelstate(), syscalls.read(r, 1)

    assert run_in_thread(body) == ([aiocancel.CANCEL_DISABLE], aiocancel.CANCEL_DISABLE, b"x")


def test_testcancel_in_each_state():
    def body():
        out = []
        aiocancel.testcancel()                            # unregistered: no-op
        aiocancel.setcancelstate(aiocancel.CANCEL_MASKED)
        aiocancel.testcancel()                            # nothing pending
        aiocancel.cancel_thread(threading.get_ident())
        with pytest.raises(aiocancel.Cancelled):
            aiocancel.testcancel()
        out.append(aiocancel.getcancelstate())
        aiocancel.testcancel()                            # DISABLE: no-op
        aiocancel.setcancelstate(aiocancel.CANCEL_ENABLE)
        with pytest.raises(aiocancel.ThreadCancelled):
            aiocancel.testcancel()
        out.append(aiocancel.getcancelstate())
        return out
    assert run_in_thread(body) == [aiocancel.CANCEL_DISABLE, aiocancel.CANCEL_DISABLE]


# ---- worker protocol basics ----------------------------------------------------

def test_job_protocol_basics(pipe):
    r, w = pipe
    os.write(w, b"12")

    def body():
        assert core._job_end() is False               # unregistered: no job
        slot = core._worker_slot()
        assert isinstance(slot, int) and slot >= 0
        assert aiocancel.getcancelstate() == aiocancel.CANCEL_DISABLE
        s1, g1 = core._job_begin()
        assert s1 == slot
        assert aiocancel.getcancelstate() == aiocancel.CANCEL_MASKED
        assert not core._pending()
        assert syscalls.read(r, 1) == b"1"
        assert core._job_end() is False               # nothing acted
        assert aiocancel.getcancelstate() == aiocancel.CANCEL_DISABLE
        _, g2 = core._job_begin()
        assert g2 != g1
        assert core._cancel_job(slot, g2) is True
        assert core._cancel_job(slot, g2) is True      # already flagged: still True
        with pytest.raises(aiocancel.Cancelled):
            syscalls.read(r, 1)
        assert core._job_end() is True                # a cancellation point acted
        _, g3 = core._job_begin()
        assert not core._pending()                    # the flag does not leak
        got = syscalls.read(r, 1)
        assert core._job_end() is False
        assert core._worker_slot() == slot            # stable per thread
        return g1 < g2 < g3, got

    assert run_in_thread(body) == (True, b"2")


def test_cancel_job_bad_slot_is_false():
    assert core._cancel_job(10 ** 6, 1) is False
    assert core._cancel_job(-1, 1) is False
    with pytest.raises(OverflowError):
        core._cancel_job(0, -1)
